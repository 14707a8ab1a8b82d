// Command purge measures cdnflow purges on real varnishd edges, in one run:
//
//  1. single-URL ITEM purge on K edges, from the API call until the purge
//     list reports progress 100 (p50, p99 over -iterations);
//
//  2. a -paths ITEM purge on K edges through the API (split into seqs)
//     against sending the same PURGEs directly with a concurrent client.
//
//     go run ./bench/purge -edges 10 -paths 10000
//
//  3. the Temporal cost of each single-URL purge, read from its history:
//     events, workflow tasks, activity tasks (attempts) and local
//     activities — the cost that must not grow with the fleet.
//
// With -standins (the default above 20 edges) the edges are Go stand-ins
// (bench/harness.StartStandIns), so a fleet of hundreds fits two cores:
//
//	go run ./bench/purge -edges 200 -paths 1000
//
// With -cluster BINDIR both run against a local cluster (stack/cluster:
// Temporal on PostgreSQL, workers and API each their own process; `make
// cluster-bins` builds BINDIR=bin), once per worker count of -workers.
//
//	go run ./bench/purge -cluster bin -workers 1,2 -edges 10 -paths 10000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

const appKey, secret = "bench", "bench-secret"

func main() {
	edges := flag.Int("edges", 10, "edges")
	iterations := flag.Int("iterations", 50, "single-URL purges to time")
	warmup := flag.Int("warmup", 5, "single-URL purges sent first and not timed (the stack's start-up work and first connections)")
	paths := flag.Int("paths", 10000, "paths in the large purge")
	standIns := flag.Bool("standins", false, "Go stand-in edges instead of varnishd (always above 20 edges)")
	binDir := flag.String("cluster", "", "run against a local cluster whose binaries are in this directory (make cluster-bins: bin)")
	workers := flag.String("workers", "1,2", "with -cluster: worker counts to measure")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed purges, single-URL and large (the whole in-process stack), to this file")
	memProfile := flag.String("memprofile", "", "write the allocations of the timed single-URL purges to this file (go tool pprof -sample_index=alloc_space -base FILE.base FILE)")
	raw := flag.Bool("raw", true, "compare the large purge with raw PURGEs sent to fresh edges (false: skip them)")
	latency := flag.Duration("latency", 0, "with stand-ins: added to every edge answer")
	loss := flag.Float64("loss", 0, "with stand-ins: share of edge requests dropped")
	flag.Parse()
	fleet = harness.FleetOptions{Latency: *latency, Loss: *loss}
	profilePath, memProfilePath = *cpuProfile, *memProfile
	if *standIns && *binDir != "" {
		log.Fatal("-standins with -cluster: the stand-in fleet runs in this process only; the local cluster starts varnishd edges")
	}
	*standIns = *standIns || *edges > 20
	ctx := context.Background()
	stack, counts := start(ctx, *binDir, *workers, *edges, *standIns)
	defer stack.Stop()
	domain := openDistribution(stack)
	waitSettled(stack, *edges)
	var rawDur time.Duration
	for _, n := range counts {
		if stack.Cluster != nil {
			if err := stack.SetWorkers(ctx, n); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("purge benchmark on a local cluster, %d worker(s), %d edges\n", n, *edges)
		} else if *standIns {
			fmt.Printf("purge benchmark: %d Go stand-in edges\n", *edges)
		} else {
			fmt.Printf("purge benchmark: %d varnishd edges\n", *edges)
		}
		lat, single, seqs, cdnflowDur := measure(stack, domain, fmt.Sprintf("w%d", n), *warmup, *iterations, *paths)
		if rawDur == 0 && *raw {
			rawDur = rawPurge(ctx, stack, domain, *edges, *paths, *standIns)
		}
		units := float64(*paths * *edges)
		fmt.Printf("  single-URL ITEM purge, API call to progress 100 on every edge (%d runs): p50 %s  p99 %s (the %s)  max %s\n",
			len(lat), pct(lat, 0.50), pct(lat, 0.99), rank(len(lat), 0.99), lat[len(lat)-1].Round(time.Millisecond))
		fmt.Printf("  %d-path purge (%d seqs): cdnflow %s = %.0f edge-paths/s", *paths, len(seqs), cdnflowDur.Round(time.Millisecond), units/cdnflowDur.Seconds())
		if rawDur > 0 {
			fmt.Printf("; raw PURGEs %s = %.0f edge-paths/s; ratio %.2f", rawDur.Round(time.Millisecond), units/rawDur.Seconds(), rawDur.Seconds()/cdnflowDur.Seconds())
		}
		fmt.Println()
		if stack.Temporal != nil {
			fmt.Printf("  Temporal cost per single-URL purge (%d histories): %s\n", len(single), historyCost(ctx, stack, single))
			fmt.Printf("  Temporal cost per seq of the %d-path purge (%d histories): %s\n", *paths, len(seqs), historyCost(ctx, stack, seqs))
		}
	}
}

// start brings up the in-process stack, or a local cluster with the most
// workers of workerList (then the counts to measure).
func start(ctx context.Context, binDir, workerList string, edges int, standIns bool) (*harness.Stack, []int) {
	if binDir == "" {
		stack, err := harness.Start(ctx, harness.Options{Edges: edges, StandIns: standIns, Fleet: fleet, Configure: func(c *config.Config) {
			c.AppKeys = map[string]string{appKey: secret}
			c.PurgeItemInterval = 0 // the benchmark measures latency, not NHN's rate limit
		}})
		if err != nil {
			log.Fatal(err)
		}
		return stack, []int{0}
	}
	var counts []int
	for _, w := range strings.Split(workerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			log.Fatalf("-workers %q: want counts like 1,2", workerList)
		}
		counts = append(counts, n)
	}
	stack, err := harness.StartCluster(ctx, harness.ClusterOptions{Edges: edges, Workers: slices.Max(counts), BinDir: binDir,
		ServerEnv: []string{"CDNFLOW_APP_KEYS=" + appKey + ":" + secret, "CDNFLOW_PURGE_ITEM_INTERVAL=0s", "CDNFLOW_MAX_BACKLOG=0", "CDNFLOW_LOG_LEVEL=warn"}})
	if err != nil {
		log.Fatal(err)
	}
	return stack, counts
}

func openDistribution(stack *harness.Stack) string {
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	var created struct {
		Distributions []struct{ Domain string }
	}
	call(stack, "POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": host, "port": atoiMust(port)}},
	}}}, &created)
	domain := created.Distributions[0].Domain
	for {
		var list struct{ Distributions []struct{ Status string } }
		call(stack, "GET", "/distributions?domain="+domain, nil, &list)
		if len(list.Distributions) == 1 && list.Distributions[0].Status == "OPEN" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return domain
}

// waitSettled waits, before anything is timed, until a round of the edge
// sync loop that started after the distribution opened reports every edge
// as desired: no drift healed, no error, the distribution's site in its
// table. Opening a distribution with a referrer rule makes every edge
// compile a new VCL (a C compiler per edge); a round that found nothing
// to change shows those loads are over, so the timings below measure
// purges, not the fleet's start-up work.
func waitSettled(stack *harness.Stack, edges int) {
	opened := time.Now()
	deadline := opened.Add(3 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		var out struct {
			Edges []struct {
				ID   string
				Sync *struct {
					CheckedAt time.Time
					Sites     int
					Drift     []string
					Error     string
				}
			}
		}
		if err := getJSON(stack.APIURL+"/v1/edges", &out); err != nil {
			log.Fatal(err)
		}
		settled, why := 0, ""
		for _, e := range out.Edges {
			s := e.Sync
			if s != nil && s.CheckedAt.After(opened) && s.Sites > 0 && len(s.Drift) == 0 && s.Error == "" {
				settled++
			} else if s != nil {
				why = fmt.Sprintf("%s checked %s: %d sites, drift %v, error %q", e.ID, s.CheckedAt.Format(time.StampMilli), s.Sites, s.Drift, s.Error)
			}
		}
		if settled == edges && len(out.Edges) == edges {
			fmt.Printf("  edges settled %s after the distribution opened (an edge sync round found no drift)\n", time.Since(opened).Round(time.Millisecond))
			return
		}
		last = fmt.Sprintf("%d of %d settled; e.g. %s", settled, edges, why)
		time.Sleep(250 * time.Millisecond)
	}
	log.Fatalf("edges not settled 3 minutes after the distribution opened: %s", last)
}

func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// measure times single-URL purges (API call to progress 100) and one large
// purge; prefix keeps each run's paths apart.
func measure(stack *harness.Stack, domain, prefix string, warmup, iterations, paths int) ([]time.Duration, []int64, []int64, time.Duration) {
	// 1. latency of one ITEM purge on every edge, after warmup untimed ones.
	for i := 0; i < warmup; i++ {
		var pr struct{ PurgeSeq int64 }
		call(stack, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/warmup/%s/%d.js", prefix, i)}, &pr)
		waitDone(stack, domain, []int64{pr.PurgeSeq}, 5*time.Millisecond)
	}
	stopProfile := harness.StartCPUProfile(profilePath)
	defer stopProfile()
	cost := startCost()
	var lat, posted []time.Duration
	var single []int64
	for i := 0; i < iterations; i++ {
		start := time.Now()
		var pr struct{ PurgeSeq int64 }
		call(stack, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/single/%s/%d.js", prefix, i)}, &pr)
		posted = append(posted, time.Since(start))
		waitDone(stack, domain, []int64{pr.PurgeSeq}, 5*time.Millisecond)
		lat = append(lat, time.Since(start))
		single = append(single, pr.PurgeSeq)
	}
	fmt.Printf("  single-URL ITEM purge, whole process (worker, API, Temporal, stand-ins, polls): %s\n", cost.per(iterations))
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(posted, func(i, j int) bool { return posted[i] < posted[j] })
	fmt.Printf("  single-URL ITEM purge, POST /purges answered: p50 %s  p99 %s  max %s\n",
		pct(posted, 0.50), pct(posted, 0.99), posted[len(posted)-1].Round(time.Millisecond))

	// 2. a large purge against the raw rate of the same PURGEs.
	list := bigList(prefix, paths)
	start := time.Now()
	var pr struct{ PurgeSeqs []int64 }
	call(stack, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(list, "\n")}, &pr)
	fmt.Printf("  %d-path purge: POST /purges answered in %s\n", paths, time.Since(start).Round(time.Millisecond))
	waitDone(stack, domain, pr.PurgeSeqs, 100*time.Millisecond)
	return lat, single, pr.PurgeSeqs, time.Since(start)
}

// profilePath is -cpuprofile: where to write the timed purges' profile.
var profilePath string

// fleet shapes the stand-ins (-latency, -loss).
var fleet harness.FleetOptions

func bigList(prefix string, n int) []string {
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("/big/%s/%d/asset-%d.css", prefix, i%50, i)
	}
	return list
}

// rawPurge sends the same PURGEs straight to fresh edges.
func rawPurge(ctx context.Context, stack *harness.Stack, domain string, edges, paths int, standIns bool) time.Duration {
	fresh, stopRaw, err := rawEdges(ctx, stack, edges, standIns)
	defer stopRaw()
	if err != nil {
		log.Fatal(err)
	}
	// 16 connections to each of 1,000 stand-ins in this process would be
	// 32,000 sockets: a fleet that large gets 2 per edge.
	perEdge := 16
	if standIns && edges > 100 {
		perEdge = 2
	}
	rawDur, rawFailed := harness.Raw(fresh, "PURGE", domain, bigList("raw", paths), perEdge)
	if rawFailed > 0 {
		log.Printf("raw purge: %d failed", rawFailed)
	}
	return rawDur
}

// rawEdges starts fresh edges of the same kind for the raw comparison.
func rawEdges(ctx context.Context, stack *harness.Stack, n int, standIns bool) ([]inventory.Edge, func(), error) {
	if standIns {
		ins, err := harness.StartFleet(ctx, filepath.Join(stack.Dir, "raw"), "RAW", n, fleet)
		var edges []inventory.Edge
		for _, in := range ins {
			edges = append(edges, in.Edge)
		}
		return edges, func() {
			for _, in := range ins {
				in.Close()
			}
		}, err
	}
	edges, procs, err := harness.StartEdges(ctx, filepath.Join(stack.Dir, "raw"), "RAW", n, stack.OriginAddr)
	return edges, func() {
		for _, p := range procs {
			_ = p.Stop(context.Background())
		}
	}, err
}

// historyCost reads each purge's workflow history and sums what Temporal
// did for it: history events, workflow tasks, activity task attempts and
// local activities (markers).
func historyCost(ctx context.Context, stack *harness.Stack, seqs []int64) string {
	var events, wfTasks, actTasks, local, maxEvents int
	for _, seq := range seqs {
		it := stack.Temporal.GetWorkflowHistory(ctx, workflows.PurgeWorkflowID(appKey, seq), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				log.Fatalf("history of purge %d: %v", seq, err)
			}
			n++
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
				wfTasks++
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				actTasks += int(ev.GetActivityTaskStartedEventAttributes().GetAttempt())
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
					local++
				}
			}
		}
		events += n
		maxEvents = max(maxEvents, n)
	}
	k := float64(len(seqs))
	return fmt.Sprintf("%.1f history events (max %d), %.1f workflow tasks, %.1f activity tasks, %.1f local activities (%.1f tasks dispatched: workflow + activity)",
		float64(events)/k, maxEvents, float64(wfTasks)/k, float64(actTasks)/k, float64(local)/k, float64(wfTasks+actTasks)/k)
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1) * p)
	return d[i].Round(time.Millisecond)
}

// rank names the sample pct(d, p) picks among n sorted ones, e.g. "29th of
// 30 (slowest but 1)", so a p99 of few runs is read for what it is.
func rank(n int, p float64) string {
	i := int(float64(n-1) * p)
	if i == n-1 {
		return fmt.Sprintf("slowest of %d", n)
	}
	return fmt.Sprintf("%s of %d, slowest but %d", ordinal(i+1), n, n-1-i)
}

// ordinal is n as 1st, 2nd, 3rd, 4th, … 11th, 12th, 13th, 21st.
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

func waitDone(stack *harness.Stack, domain string, seqs []int64, every time.Duration) {
	want := map[int64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var list struct {
			Purges []struct {
				Seq      int64
				Progress int
			}
		}
		call(stack, "GET", fmt.Sprintf("/purges?domain=%s&itemsPerPage=%d", domain, len(seqs)), nil, &list)
		done := 0
		for _, p := range list.Purges {
			if want[p.Seq] && p.Progress == 100 {
				done++
			}
		}
		if done == len(seqs) {
			return
		}
		time.Sleep(every)
	}
	log.Fatalf("purges %v did not finish", seqs)
}

func call(stack *harness.Stack, method, path string, body any, out any) {
	if err := stack.NHN(http.DefaultClient, appKey, secret, method, path, body, out); err != nil {
		log.Fatal(err)
	}
}

func atoiMust(s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		log.Fatal(err)
	}
	return n
}
