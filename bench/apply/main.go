// Command apply measures how long a distribution change takes to be live
// on real varnishd edges as the number of distributions per edge grows
// (the target: with 1,000 per edge on 3 edges, one change live on every
// edge at p99 ≤ 3 s, 100 created at once all OPEN within 10 s). In one run:
//
//  1. for each size N of -sizes, the distributions are created through the
//     NHN API (POST /distributions, 100 per request) until N exist, timed
//     from the first POST until none is OPENING;
//
//  2. -changes changes of one distribution each (PATCH origins with a new
//     originPath), timed from the PATCH until the distribution is OPEN AND
//     a GET through every edge (a new, never-cached path each poll) shows
//     the origin fetched under the new originPath;
//
//  3. at the last size, -burst distributions created in one POST, timed
//     until every one of them is OPEN.
//
//     go run ./bench/apply -edges 3 -sizes 10,100,1000 -changes 20 -burst 100
//
// It also prints the history events each change added to its
// distribution's workflow (Temporal's work per change). With -standins
// (the default above 20 edges) the edges are the simulated fleet of
// bench/harness.StartFleet (-latency, -loss):
//
//	go run ./bench/apply -edges 1000 -sizes 10 -changes 10 -burst 0
//
// -simulated D adds D simulated distributions (bench/harness.Simulated) to
// every stand-in's table and to the edge sync's desired state, so the
// changes run against tables and sync rounds of a D-distribution fleet
// without D distribution workflows ("sites per edge" counts them):
//
//	go run ./bench/apply -edges 1000 -simulated 10000 -sizes 10 -changes 10 -burst 0
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

const appKey, secret = "bench", "bench-secret"

// perRequest is NHN's limit of distributions in one POST.
const perRequest = service.MaxDistributionsPerRequest

type bench struct {
	stack      *harness.Stack
	originHost string
	originPort int
	domains    []string
	client     *http.Client
	// logPath is the stack's log file (-slow), "" without.
	logPath string
	// live is when each edge first fetched under the last change's
	// originPath, and open when it was OPEN (offsets from the PATCH).
	live map[string]time.Duration
	open time.Duration
}

// row is one size's figures.
type row struct {
	n              int
	created        int
	createDur      time.Duration
	sitesPerEdge   []int
	lat            []time.Duration
	burst          int
	burstDur       time.Duration
	burstSitesEdge []int
	// events are the history events each change added to its
	// distribution's workflow (Temporal's work per change).
	events []int
	// cpu is the benchmark process's CPU time during each change (the
	// worker, Temporal, the API and the stand-ins all run in it).
	cpu []time.Duration
}

func main() {
	edges := flag.Int("edges", 3, "edges: varnishd, or simulated with -standins (always above 20)")
	sizes := flag.String("sizes", "10,100,1000", "distributions per edge to measure at, ascending")
	changes := flag.Int("changes", 20, "single-distribution changes timed at each size")
	burst := flag.Int("burst", 100, "distributions created in one POST at the last size (0: skip)")
	standIns := flag.Bool("standins", false, "simulated edges (bench/harness.StartFleet) instead of varnishd (always above 20 edges)")
	latency := flag.Duration("latency", 0, "with stand-ins: added to every edge answer")
	loss := flag.Float64("loss", 0, "with stand-ins: share of edge requests dropped")
	simulated := flag.Int("simulated", 0, "with stand-ins: simulated distributions in every edge's table and the edge sync's desired state, beside the ones created (bench/harness.Simulated)")
	slow := flag.Duration("slow", 6*time.Second, "a change slower than this prints its workflow's history and the worker's log lines for it (0: never)")
	flag.Parse()
	*standIns = *standIns || *edges > 20
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || (len(ns) > 0 && n < ns[len(ns)-1]) {
			log.Fatalf("-sizes %q: want ascending positive counts", *sizes)
		}
		ns = append(ns, n)
	}
	if *burst > perRequest {
		log.Fatalf("-burst %d: at most %d distributions per POST", *burst, perRequest)
	}
	if *simulated > 0 && !*standIns {
		log.Fatal("-simulated needs -standins")
	}
	logger, logPath, cleanup := stackLogger(*slow > 0)
	defer cleanup()
	stack, err := harness.Start(context.Background(), harness.Options{Edges: *edges, StandIns: *standIns, Simulated: *simulated, Logger: logger,
		Fleet: harness.FleetOptions{Latency: *latency, Loss: *loss}, Configure: func(c *config.Config) {
			c.AppKeys = map[string]string{appKey: secret}
		}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	p, _ := strconv.Atoi(port)
	b := &bench{stack: stack, originHost: host, originPort: p, client: &http.Client{Timeout: 2 * time.Minute}, logPath: logPath}
	var rows []row
	for i, n := range ns {
		r := row{n: n}
		start := time.Now()
		r.created = n - len(b.domains)
		b.domains = append(b.domains, b.create(r.created)...)
		r.createDur = time.Since(start)
		r.sitesPerEdge = b.sitesPerEdge()
		log.Printf("N=%d: %d created in %s; sites per edge %s", n, r.created, r.createDur.Round(time.Millisecond), spread(r.sitesPerEdge))
		b.changes(&r, *changes, *slow)
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
		log.Printf("N=%d: change p50 %s p99 %s", n, pct(r.lat, 0.5), pct(r.lat, 0.99))
		if i == len(ns)-1 && *burst > 0 {
			start := time.Now()
			b.domains = append(b.domains, b.create(*burst)...)
			r.burst, r.burstDur = *burst, time.Since(start)
			r.burstSitesEdge = b.sitesPerEdge()
			log.Printf("N=%d: %d at once all OPEN in %s", n, *burst, r.burstDur.Round(time.Millisecond))
		}
		rows = append(rows, r)
	}
	kind := "varnishd"
	if *standIns {
		kind = "simulated"
	}
	report(*edges, kind, *changes, rows)
}

// changes makes count single-distribution changes at r's size, each
// timed with the process CPU it took; one slower than slow (0: none)
// dumps its history and log lines (dumpSlow).
func (b *bench) changes(r *row, count int, slow time.Duration) {
	n := r.n
	for c := 0; c < count; c++ {
		// Spread the changes over the distributions, a new originPath each.
		d := b.domains[(c*7919)%len(b.domains)]
		events := b.historyEvents(d)
		began, cpu := time.Now(), processCPU()
		r.lat = append(r.lat, b.change(d, fmt.Sprintf("/n%d-c%d", n, c)))
		r.cpu = append(r.cpu, processCPU()-cpu)
		log.Printf("N=%d: change %d of %s live in %s (process CPU %.2f s)", n, c, d, r.lat[len(r.lat)-1].Round(time.Millisecond), r.cpu[len(r.cpu)-1].Seconds())
		if slow > 0 && r.lat[len(r.lat)-1] > slow {
			b.dumpSlow(d, began, time.Now())
		}
		if grew := b.historyEvents(d) - events; grew > 0 { // a continue-as-new in between starts a new count
			r.events = append(r.events, grew)
		}
	}
	log.Printf("N=%d: changes in order (process CPU·s): %s", n, changeList(r.lat, r.cpu))
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// changeList is each change's time and process CPU, in the order made.
func changeList(lat, cpu []time.Duration) string {
	parts := make([]string, len(lat))
	for i := range lat {
		parts[i] = fmt.Sprintf("%s (%.1f)", lat[i].Round(10*time.Millisecond), cpu[i].Seconds())
	}
	return strings.Join(parts, ", ")
}

// stackLogger is the stack's logger: to a temporary file (logPath) when
// on, else none. cleanup removes the file.
func stackLogger(on bool) (logger *zap.Logger, logPath string, cleanup func()) {
	if !on {
		return nil, "", func() {}
	}
	dir, err := os.MkdirTemp("", "cdnflow-apply-log-")
	if err != nil {
		log.Fatal(err)
	}
	logPath = filepath.Join(dir, "stack.log")
	if logger, err = fileLogger(logPath); err != nil {
		log.Fatal(err)
	}
	return logger, logPath, func() { _ = os.RemoveAll(dir) } // a temp dir left behind only costs disk
}

func report(edges int, kind string, changes int, rows []row) {
	fmt.Printf("apply benchmark: %d edges (%s), %d single-distribution changes per size\n", edges, kind, changes)
	fmt.Printf("(N: distributions created; [sites in each edge's table], simulated ones included; a change is live when its\n" +
		" distribution is OPEN and a GET through every edge fetched the new originPath, timed from the PATCH)\n")
	fmt.Printf("%-14s %-28s %-32s\n", "", "", "change live on every edge")
	fmt.Printf("%-14s %-28s %-10s %-10s %-10s\n", "N [sites]", "created (until none OPENING)", "p50", "p99", "max")
	for _, r := range rows {
		fmt.Printf("%-14s %-28s %-10s %-10s %-10s\n", fmt.Sprintf("%d %s", r.n, spread(r.sitesPerEdge)),
			fmt.Sprintf("%d in %s", r.created, r.createDur.Round(time.Millisecond)),
			pct(r.lat, 0.5), pct(r.lat, 0.99), r.lat[len(r.lat)-1].Round(time.Millisecond))
	}
	for _, r := range rows {
		if len(r.events) > 0 {
			sum := 0
			for _, e := range r.events {
				sum += e
			}
			fmt.Printf("N=%d: %.1f history events per change (max %d) on %d edges\n", r.n, float64(sum)/float64(len(r.events)), slices.Max(r.events), edges)
		}
	}
	first, last := rows[0], rows[len(rows)-1]
	if len(rows) > 1 {
		fmt.Printf("p50 ratio N=%d/N=%d: %.2f; p99 ratio: %.2f\n", last.n, first.n,
			pct(last.lat, 0.5).Seconds()/pct(first.lat, 0.5).Seconds(), pct(last.lat, 0.99).Seconds()/pct(first.lat, 0.99).Seconds())
	}
	if last.burst > 0 {
		fmt.Printf("%d created in one POST at N=%d: all OPEN in %s (sites per edge after: %s)\n",
			last.burst, last.n, last.burstDur.Round(time.Millisecond), spread(last.burstSitesEdge))
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1)*p + 0.5)
	return d[i].Round(time.Millisecond)
}

// create opens n distributions (perRequest per POST, sent one after the
// other) and returns their domains once none of them is OPENING.
func (b *bench) create(n int) []string {
	var domains []string
	for len(domains) < n {
		k := min(perRequest, n-len(domains))
		bodies := make([]map[string]any, k)
		for i := range bodies {
			bodies[i] = map[string]any{
				"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
				"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": "/"}},
			}
		}
		var created struct{ Distributions []struct{ Domain string } }
		b.call("POST", "/distributions", map[string]any{"distributions": bodies}, &created)
		for _, d := range created.Distributions {
			domains = append(domains, d.Domain)
		}
	}
	b.waitNoneOpening(domains)
	return domains
}

// waitNoneOpening polls until no distribution is OPENING (the list asks
// each OPENING one for its state, so the polls get cheaper as they open),
// then checks that every one of domains is OPEN.
func (b *bench) waitNoneOpening(domains []string) {
	deadline := time.Now().Add(30 * time.Minute)
	for {
		var list struct{ Distributions []struct{ Domain string } }
		b.call("GET", "/distributions?status=OPENING", nil, &list)
		if len(list.Distributions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("%d distributions still OPENING after 30 min", len(list.Distributions))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Visibility is written after the workflow's own state: a
	// distribution that left OPENING may show in the OPEN list a moment
	// later, so the check waits a few seconds for the list to settle.
	open := map[string]bool{}
	for settle := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var list struct {
			Distributions []struct{ Domain, Status, LastError string }
		}
		b.call("GET", "/distributions?status=OPEN", nil, &list)
		clear(open)
		for _, d := range list.Distributions {
			open[d.Domain] = true
		}
		if allIn(open, domains) || time.Now().After(settle) {
			break
		}
	}
	for _, d := range domains {
		if !open[d] {
			var one struct {
				Distributions []struct{ Status, LastError string }
			}
			b.call("GET", "/distributions?domain="+d, nil, &one)
			log.Fatalf("distribution %s is not OPEN: %+v", d, one.Distributions)
		}
	}
}

// allIn says whether every one of domains is in set.
func allIn(set map[string]bool, domains []string) bool {
	for _, d := range domains {
		if !set[d] {
			return false
		}
	}
	return true
}

// change patches domain's origin to originPath and returns the time until
// the distribution is OPEN and every edge fetches under originPath.
func (b *bench) change(domain, originPath string) time.Duration {
	start := time.Now()
	b.call("PATCH", "/distributions", map[string]any{"domain": domain,
		"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": originPath}}}, nil)
	pending := map[string]inventory.Edge{}
	for _, e := range b.edges() {
		pending[e.ID] = e
	}
	open := false
	b.live, b.open = map[string]time.Duration{}, 0
	for poll := 0; ; poll++ {
		if time.Since(start) > 5*time.Minute {
			log.Fatalf("change of %s to %s: not live after 5 min (open %v, edges left %d)", domain, originPath, open, len(pending))
		}
		if !open {
			var one struct {
				Distributions []struct{ Status, LastError string }
			}
			b.call("GET", "/distributions?domain="+domain, nil, &one)
			if len(one.Distributions) == 1 {
				switch one.Distributions[0].Status {
				case "OPEN":
					open, b.open = true, time.Since(start)
				case "ERROR":
					log.Fatalf("change of %s went to ERROR: %s", domain, one.Distributions[0].LastError)
				}
			}
		}
		for id, e := range pending {
			// A path never asked before: the edge cannot answer from cache.
			if strings.HasPrefix(b.originPathOn(e, domain, fmt.Sprintf("/probe%s/%d.js", originPath, poll)), originPath+"/") {
				delete(pending, id)
				b.live[id] = time.Since(start)
			}
		}
		if open && len(pending) == 0 {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// originPathOn is the path the origin saw for a GET of host+path through
// edge e ("" on failure).
func (b *bench) originPathOn(e inventory.Edge, host, path string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Address+path, nil)
	req.Host = host
	resp, err := b.client.Do(req)
	if err != nil {
		return ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Origin-Path")
}

// edges are the inventory's edges, in ID order.
func (b *bench) edges() []inventory.Edge {
	var out []inventory.Edge
	for _, id := range b.stack.Inventory.IDs() {
		e, _ := b.stack.Inventory.Get(id)
		out = append(out, e)
	}
	return out
}

// sitesPerEdge counts the sites in each edge's table (the admin protocol
// through the edge, as the worker reads it).
func (b *bench) sitesPerEdge() []int {
	var out []int
	for _, e := range b.edges() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.Address+connector.AdminPath, nil)
		req.Host = "edge-admin.cdnflow"
		req.Header.Set(connector.HeaderAdmin, "1")
		token, err := connector.ControlTokenFile(e.SecretFile)
		if err != nil {
			log.Fatalf("site table of %s: %v", e.ID, err)
		}
		req.Header.Set(connector.HeaderControl, token)
		resp, err := b.client.Do(req)
		if err != nil {
			log.Fatalf("site table of %s: %v", e.ID, err)
		}
		var st connector.TableState
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			log.Fatalf("site table of %s: %d: %v", e.ID, resp.StatusCode, err)
		}
		out = append(out, len(st.Sites))
	}
	return out
}

func (b *bench) call(method, path string, body any, out any) {
	if err := b.stack.NHN(b.client, appKey, secret, method, path, body, out); err != nil {
		log.Fatal(err)
	}
}

// spread is counts as "[n]" when all equal, else "[min..max]".
func spread(counts []int) string {
	if len(counts) == 0 {
		return "[]"
	}
	lo, hi := slices.Min(counts), slices.Max(counts)
	if lo == hi {
		return fmt.Sprintf("[%d]", lo)
	}
	return fmt.Sprintf("[%d..%d]", lo, hi)
}

// historyEvents is the length of domain's distribution workflow history
// (its current run).
func (b *bench) historyEvents(domain string) int {
	it := b.stack.Temporal.GetWorkflowHistory(context.Background(), workflows.DistributionWorkflowID(appKey, domain), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			log.Fatalf("history of %s: %v", domain, err)
		}
		n++
	}
	return n
}
