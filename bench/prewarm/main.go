// Command prewarm measures, in one run, cdnflow's prewarm throughput against
// the raw limit of the same machine: N URLs × K real varnishd edges through
// the API to COMPLETED, then as many pairs (other URLs, so MISSes too)
// through the same edges with a plain concurrent Go HTTP client. It prints
// pairs/s for both and the ratio.
//
//	go run ./bench/prewarm -urls 20000 -edges 4
//
// With -cluster BINDIR it runs against a local cluster (stack/cluster:
// Temporal on PostgreSQL, each worker and the API its own process; `make
// cluster-bins` builds BINDIR=bin) once per worker count of -workers, with
// fresh URLs each time, and prints the scale-out ratio.
//
//	go run ./bench/prewarm -cluster bin -workers 1,2 -urls 20000 -edges 4
//
// With -lookup it measures the prewarm target lookup instead (lookup.go):
//
//	go run ./bench/prewarm -lookup 10,200
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
)

func main() {
	urls := flag.Int("urls", 20000, "URLs per job")
	edges := flag.Int("edges", 4, "edges")
	conc := flag.Int("concurrency", 64, "the raw client's GETs in flight per edge, and cdnflow's connections per edge unless -connections is set")
	conns := flag.Int("connections", 0, "cdnflow's --prewarm-concurrency: connections per edge per worker, shared by the job's chunks, each carrying -pipeline GETs (0: -concurrency)")
	binDir := flag.String("cluster", "", "run against a local cluster whose binaries are in this directory (make cluster-bins: bin)")
	workers := flag.String("workers", "1,2", "with -cluster: worker counts to measure, one job each")
	withRaw := flag.Bool("raw", true, "also measure the raw client on the same edges (false: cdnflow only, e.g. for the memory and status figures of a long run)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the first cdnflow job (worker, API and embedded Temporal in this process) to this file (with -tiered: FILE.untiered and FILE.tiered, every round of each side); read it with go tool pprof")
	rawProfile := flag.String("rawprofile", "", "write a CPU profile of the raw client's first round to this file, to set beside -cpuprofile")
	pipeline := flag.Int("pipeline", 8, "cdnflow's --prewarm-pipeline: GETs pipelined on one connection to an edge (1: none)")
	rounds := flag.Int("rounds", 3, "rounds, each one cdnflow job and one raw run on fresh URLs (the order alternates); the ratio is over their total time")
	keyFile := flag.String("payload-key-file", "", "seal payloads with this key ring (cdnflow --payload-key-file), to measure encryption's cost")
	lookup := flag.String("lookup", "", "measure the prewarm target lookup instead (docs/performance.md): per prewarm start, Temporal RPCs and wall time at each count of running distributions, e.g. 10,200, beside a scan of every distribution")
	lookupStarts := flag.Int("lookup-starts", 10, "with -lookup: prewarm starts per round, each on another distribution (and as many scans)")
	lookupRounds := flag.Int("lookup-rounds", 3, "with -lookup: rounds per count of distributions")
	tiered := flag.Bool("tiered", false, "measure tiered fill (docs/tiers.md): -edges edges without tiers, then the same edges under one shield; origin fetches per URL and pairs/s of each")
	flag.Parse()
	ctx := context.Background()
	domain := "bench.example.com"
	if *lookup != "" {
		lookupBench(ctx, counts(*lookup), *lookupStarts, *lookupRounds)
		return
	}
	if *tiered {
		tieredBench(ctx, *urls, *edges, cmp.Or(*conns, *conc), *pipeline, *rounds, domain, *cpuProfile)
		return
	}
	if *binDir != "" {
		clusterBench(ctx, *binDir, *workers, *urls, *edges, *conc, cmp.Or(*conns, *conc), *pipeline, domain)
		return
	}

	stack, err := harness.Start(ctx, harness.Options{Edges: *edges, Configure: func(c *config.Config) {
		c.PrewarmConcurrency = cmp.Or(*conns, *conc)
		c.PrewarmPipeline = *pipeline
		c.PayloadKeyFile = *keyFile
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	pairs := *urls * *edges
	fmt.Printf("prewarm benchmark: %d URLs x %d edges = %d pairs (GOMAXPROCS %d), %d round(s)\n", *urls, *edges, pairs, runtime.GOMAXPROCS(0), *rounds)
	var sum [2]time.Duration // cdnflow, raw
	var ratios []float64
	for r := 1; r <= *rounds; r++ {
		list, rawList := urlList(domain, fmt.Sprintf("r%d", r), *urls), urlList(domain, fmt.Sprintf("raw%d", r), *urls)
		var cdn, rw measured
		if !*withRaw {
			cdn = measureJob(stack, domain, list, pick(r == 1, *cpuProfile))
		} else if r%2 == 1 { // alternate the order: drift of the box hits both sides alike
			cdn = measureJob(stack, domain, list, pick(r == 1, *cpuProfile))
			rw = measureRaw(stack, domain, rawList, *conc, pick(r == 1, *rawProfile))
		} else {
			rw = measureRaw(stack, domain, rawList, *conc, pick(r == 1, *rawProfile))
			cdn = measureJob(stack, domain, list, pick(r == 1, *cpuProfile))
		}
		sum[0] += cdn.dur
		fmt.Printf("  round %d cdnflow (API -> Temporal -> worker -> varnishd): %6.0f pairs/s  (%s; %s; %s)\n", r, cdn.rate(pairs), cdn.dur.Round(time.Millisecond), cdn.edgesBusy(), cdn.note)
		if !*withRaw {
			continue
		}
		sum[1] += rw.dur
		ratios = append(ratios, cdn.rate(pairs)/rw.rate(pairs))
		fmt.Printf("  round %d raw concurrent Go client -> varnishd:            %6.0f pairs/s  (%s; %s; %s)\n", r, rw.rate(pairs), rw.dur.Round(time.Millisecond), rw.edgesBusy(), rw.note)
		fmt.Printf("  round %d CPU of this process per pair (origin and connectors included): cdnflow %.0f µs, raw %.0f µs; ratio cdnflow/raw %.2f\n",
			r, cdn.cpuPerPair(pairs), rw.cpuPerPair(pairs), ratios[len(ratios)-1])
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if *withRaw {
		slices.Sort(ratios)
		fmt.Printf("  ratio cdnflow/raw over %d round(s): %.2f (total time), median %.2f, min %.2f, max %.2f\n",
			*rounds, sum[1].Seconds()/sum[0].Seconds(), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
	fmt.Printf("  process heap in use after the job: %d MiB; peak RSS %s (worker, API and embedded Temporal share this process)\n", ms.HeapInuse>>20, peakRSS())
}

// measured is one side's run: elapsed time, CPU of this process, the
// origin's first and last request relative to the start, and a note.
type measured struct {
	dur, cpu, first, last time.Duration
	note                  string
}

func (m measured) rate(pairs int) float64 { return float64(pairs) / m.dur.Seconds() }

func (m measured) cpuPerPair(pairs int) float64 {
	return float64(m.cpu.Microseconds()) / float64(pairs)
}

// edgesBusy says when the edges fetched from the origin: the time before
// the first fetch is the job's start-up, the time after the last one its
// wind-down (last pairs answered, completion seen).
func (m measured) edgesBusy() string {
	return fmt.Sprintf("first origin fetch at %s, last %s before the end", m.first.Round(time.Millisecond), (m.dur - m.last).Round(time.Millisecond))
}

func pick(on bool, path string) string {
	if on {
		return path
	}
	return ""
}

// measureJob runs one prewarm job through the API, profiled to profile
// when set.
func measureJob(stack *harness.Stack, domain string, list []string, profile string) measured {
	stop := harness.StartCPUProfile(profile)
	defer stop()
	stack.Origin.Reset()
	cpu0, t0 := harness.ProcessCPU(), time.Now()
	dur, st, polls := runJob(stack.APIURL, domain, list)
	m := measured{dur: dur, cpu: harness.ProcessCPU() - cpu0, note: fmt.Sprintf("%d status polls, status %s", polls, st)}
	first, last := stack.Origin.Span()
	m.first, m.last = first.Sub(t0), last.Sub(t0)
	return m
}

// measureRaw sends list's URLs (as many as the job's, under their own
// prefix, so every GET is a MISS as the job's are) to the stack's own edges
// with a plain client: the same varnishd processes, configuration and cache
// state as the job's, only the client differs.
func measureRaw(stack *harness.Stack, domain string, list []string, conc int, profile string) measured {
	var edges []inventory.Edge
	for _, id := range stack.Inventory.IDs() {
		e, _ := stack.Inventory.Get(id)
		edges = append(edges, e)
	}
	paths := make([]string, len(list))
	for i, u := range list {
		paths[i] = strings.TrimPrefix(u, "http://"+domain)
	}
	stop := harness.StartCPUProfile(profile)
	defer stop()
	stack.Origin.Reset()
	cpu0, t0 := harness.ProcessCPU(), time.Now()
	dur, failed := harness.Raw(edges, http.MethodGet, domain, paths, conc)
	m := measured{dur: dur, cpu: harness.ProcessCPU() - cpu0, note: fmt.Sprintf("%d failed", failed)}
	first, last := stack.Origin.Span()
	m.first, m.last = first.Sub(t0), last.Sub(t0)
	return m
}

// clusterBench measures one job per worker count on a local cluster.
func clusterBench(ctx context.Context, binDir, workerList string, urls, edges, conc, conns, pipeline int, domain string) {
	var counts []int
	for _, w := range strings.Split(workerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			log.Fatalf("-workers %q: want counts like 1,2", workerList)
		}
		counts = append(counts, n)
	}
	most := slices.Max(counts)
	stack, err := harness.StartCluster(ctx, harness.ClusterOptions{Edges: edges, Workers: most, BinDir: binDir,
		ServerEnv: []string{"CDNFLOW_PREWARM_CONCURRENCY=" + strconv.Itoa(conns), "CDNFLOW_PREWARM_PIPELINE=" + strconv.Itoa(pipeline), "CDNFLOW_MAX_BACKLOG=0", "CDNFLOW_LOG_LEVEL=warn"}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	pairs := urls * edges
	fmt.Printf("prewarm benchmark on a local cluster (Temporal on PostgreSQL, processes apart): %d URLs x %d edges = %d pairs (%d CPUs)\n", urls, edges, pairs, runtime.NumCPU())
	rates := map[int]float64{}
	for _, n := range counts {
		if err := stack.SetWorkers(ctx, n); err != nil {
			log.Fatal(err)
		}
		list := urlList(domain, fmt.Sprintf("w%d", n), urls)
		before := historySize(ctx, stack)
		dur, st, polls := runJob(stack.APIURL, domain, list)
		after := historySize(ctx, stack)
		rates[n] = float64(pairs) / dur.Seconds()
		fmt.Printf("  %d worker(s): %8.0f pairs/s  (%s, %d status polls, status %s); history written %.1f MiB in %d batches (%.0f B/pair)\n",
			n, rates[n], dur.Round(time.Millisecond), polls, st, float64(after[1]-before[1])/(1<<20), after[0]-before[0], float64(after[1]-before[1])/float64(pairs))
	}
	if len(counts) > 1 {
		fmt.Printf("  ratio %d workers / %d worker(s): %.2f\n", counts[len(counts)-1], counts[0], rates[counts[len(counts)-1]]/rates[counts[0]])
	}
	rw := measureRaw(stack, domain, urlList(domain, "raw", urls), conc, "")
	fmt.Printf("  raw concurrent Go client -> varnishd: %8.0f pairs/s  (%s, %s)\n", rw.rate(pairs), rw.dur.Round(time.Millisecond), rw.note)
}

// historySize is the Temporal history in PostgreSQL: event batches and
// bytes (table history_node of the postgres12 schema).
func historySize(ctx context.Context, stack *harness.Stack) [2]int64 {
	out, err := stack.Cluster.Query(ctx, "temporal", "SELECT count(*) || ' ' || coalesce(sum(octet_length(data)), 0) FROM history_node")
	if err != nil {
		log.Fatal(err)
	}
	var n [2]int64
	if _, err := fmt.Sscan(out, &n[0], &n[1]); err != nil {
		log.Fatalf("history size %q: %v", out, err)
	}
	return n
}

func urlList(domain, prefix string, n int) []string {
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("http://%s/%s/%d/file-%d.js", domain, prefix, i%100, i)
	}
	return list
}

// runJob runs one prewarm through the API to its end: elapsed time, final
// status, status polls. A job that does not complete cleanly is fatal.
func runJob(apiURL, domain string, list []string) (time.Duration, string, int) {
	return runJobTo(apiURL, domain, list, "region", "all")
}

// runJobTo is runJob with the job's target (target_type, region).
func runJobTo(apiURL, domain string, list []string, targetType string, region any) (time.Duration, string, int) {
	body, _ := json.Marshal(map[string]any{"url_list": list, "cf_domain": domain, "target_type": targetType, "region": region, "timeout": 3600})
	start := time.Now()
	resp, err := http.Post(apiURL+"/prewarm", "application/json", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	var started struct{ RequestID string }
	_ = json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if started.RequestID == "" {
		log.Fatalf("prewarm not started: HTTP %d", resp.StatusCode)
	}
	var st struct {
		Status                   string
		Total, Completed, Failed int
	}
	var lat []time.Duration
	for {
		t0 := time.Now()
		r, err := http.Get(apiURL + "/status?requestID=" + started.RequestID + "&pageSize=1")
		if err != nil {
			log.Fatal(err)
		}
		_ = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
		lat = append(lat, time.Since(t0))
		if st.Status != "IN_PROGRESS" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	dur := time.Since(start)
	if st.Status != "COMPLETED" || st.Failed != 0 {
		log.Fatalf("prewarm ended %s with %d failed", st.Status, st.Failed)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)].Round(time.Millisecond) }
	return dur, fmt.Sprintf("%s; status latency p50 %s, p99 %s, max %s", st.Status, q(0.5), q(0.99), q(1)), len(lat)
}

// peakRSS reads the process's high-water resident set size (Linux).
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}
