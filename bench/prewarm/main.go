// Command prewarm measures, in one run, cdnflow's prewarm throughput against
// the raw limit of the same machine: N URLs × K real varnishd edges through
// the API to COMPLETED, then the same pairs through K fresh edges with a
// plain concurrent Go HTTP client. It prints pairs/s for both and the ratio.
//
//	go run ./bench/prewarm -urls 20000 -edges 4
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/internal/config"
)

func main() {
	urls := flag.Int("urls", 20000, "URLs per job")
	edges := flag.Int("edges", 4, "edges")
	conc := flag.Int("concurrency", 32, "GETs in flight per chunk activity (cdnflow) and per edge (raw: 2x this)")
	flag.Parse()
	ctx := context.Background()
	domain := "bench.example.com"

	stack, err := harness.Start(ctx, harness.Options{Edges: *edges, Configure: func(c *config.Config) {
		c.PrewarmConcurrency = *conc
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	list := make([]string, *urls)
	for i := range list {
		list[i] = fmt.Sprintf("http://%s/assets/%d/file-%d.js", domain, i%100, i)
	}
	body, _ := json.Marshal(map[string]any{"url_list": list, "cf_domain": domain, "target_type": "region", "region": "all", "timeout": 3600})

	start := time.Now()
	resp, err := http.Post(stack.APIURL+"/prewarm", "application/json", bytes.NewReader(body))
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
	polls := 0
	for {
		r, err := http.Get(stack.APIURL + "/status?requestID=" + started.RequestID + "&pageSize=1")
		if err != nil {
			log.Fatal(err)
		}
		_ = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
		polls++
		if st.Status != "IN_PROGRESS" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	cdnflowDur := time.Since(start)
	if st.Status != "COMPLETED" || st.Failed != 0 {
		log.Fatalf("prewarm ended %s with %d failed", st.Status, st.Failed)
	}
	pairs := *urls * *edges
	cdnflowRate := float64(pairs) / cdnflowDur.Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	// The raw limit: fresh edges, same origin, a plain client, same pairs.
	fresh, procs, err := harness.StartEdges(ctx, filepath.Join(stack.Dir, "fresh"), "RAW", *edges, stack.OriginAddr)
	for _, p := range procs {
		defer p.Stop(context.Background())
	}
	if err != nil {
		log.Fatal(err)
	}
	paths := make([]string, len(list))
	for i, u := range list {
		paths[i] = strings.TrimPrefix(u, "http://"+domain)
	}
	rawDur, rawFailed := harness.Raw(fresh, http.MethodGet, domain, paths, 2**conc)
	rawRate := float64(pairs) / rawDur.Seconds()

	fmt.Printf("prewarm benchmark: %d URLs x %d edges = %d pairs (GOMAXPROCS %d)\n", *urls, *edges, pairs, runtime.GOMAXPROCS(0))
	fmt.Printf("  cdnflow (API -> Temporal -> worker -> varnishd): %8.0f pairs/s  (%s, %d status polls, status %s)\n", cdnflowRate, cdnflowDur.Round(time.Millisecond), polls, st.Status)
	fmt.Printf("  raw concurrent Go client -> varnishd:            %8.0f pairs/s  (%s, %d failed)\n", rawRate, rawDur.Round(time.Millisecond), rawFailed)
	fmt.Printf("  ratio cdnflow/raw: %.2f\n", cdnflowRate/rawRate)
	fmt.Printf("  process heap in use after the job: %d MiB; peak RSS %s (worker, API and embedded Temporal share this process)\n", ms.HeapInuse>>20, peakRSS())
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
