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
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

const appKey, secret = "bench", "bench-secret"

func main() {
	edges := flag.Int("edges", 10, "edges")
	iterations := flag.Int("iterations", 50, "single-URL purges to time")
	paths := flag.Int("paths", 10000, "paths in the large purge")
	standIns := flag.Bool("standins", false, "Go stand-in edges instead of varnishd (always above 20 edges)")
	flag.Parse()
	*standIns = *standIns || *edges > 20
	ctx := context.Background()
	stack, err := harness.Start(ctx, harness.Options{Edges: *edges, StandIns: *standIns, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.PurgeItemInterval = 0 // the benchmark measures latency, not NHN's rate limit
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
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

	// 1. latency of one ITEM purge on every edge.
	lat, seqs := singleURLPurges(stack, domain, *iterations)
	cost := historyCost(ctx, stack, seqs)

	// 2. a large purge against the raw rate of the same PURGEs.
	list := make([]string, *paths)
	for i := range list {
		list[i] = fmt.Sprintf("/big/%d/asset-%d.css", i%50, i)
	}
	start := time.Now()
	var pr struct{ PurgeSeqs []int64 }
	call(stack, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(list, "\n")}, &pr)
	waitDone(stack, domain, pr.PurgeSeqs, 100*time.Millisecond)
	cdnflowDur := time.Since(start)

	fresh, stopRaw, err := rawEdges(ctx, stack, *edges, *standIns)
	defer stopRaw()
	if err != nil {
		log.Fatal(err)
	}
	rawDur, rawFailed := harness.Raw(fresh, "PURGE", domain, list, 16)
	if rawFailed > 0 {
		log.Printf("raw purge: %d failed", rawFailed)
	}
	units := float64(*paths * *edges)
	kind := "varnishd"
	if *standIns {
		kind = "Go stand-in"
	}
	fmt.Printf("purge benchmark: %d %s edges\n", *edges, kind)
	fmt.Printf("  single-URL ITEM purge, API call to progress 100 (%d runs): p50 %s  p99 %s  max %s\n",
		len(lat), pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("  %d-path purge (%d seqs): cdnflow %s = %.0f edge-paths/s; raw PURGEs %s = %.0f edge-paths/s; ratio %.2f\n",
		*paths, len(pr.PurgeSeqs), cdnflowDur.Round(time.Millisecond), units/cdnflowDur.Seconds(),
		rawDur.Round(time.Millisecond), units/rawDur.Seconds(), rawDur.Seconds()/cdnflowDur.Seconds())
	fmt.Printf("  Temporal cost per single-URL purge (%d histories): %s\n", len(seqs), cost)
}

// singleURLPurges times n one-path ITEM purges, from the API call until
// the purge list shows progress 100, and returns the latencies (sorted)
// and the seqs.
func singleURLPurges(stack *harness.Stack, domain string, n int) ([]time.Duration, []int64) {
	var lat []time.Duration
	var seqs []int64
	for i := 0; i < n; i++ {
		start := time.Now()
		var pr struct{ PurgeSeq int64 }
		call(stack, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/single/%d.js", i)}, &pr)
		waitDone(stack, domain, []int64{pr.PurgeSeq}, 5*time.Millisecond)
		lat = append(lat, time.Since(start))
		seqs = append(seqs, pr.PurgeSeq)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, seqs
}

// rawEdges starts fresh edges of the same kind for the raw comparison.
func rawEdges(ctx context.Context, stack *harness.Stack, n int, standIns bool) ([]inventory.Edge, func(), error) {
	if standIns {
		ins, err := harness.StartStandIns(ctx, filepath.Join(stack.Dir, "raw"), "RAW", n)
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
	return fmt.Sprintf("%.1f history events (max %d), %.1f workflow tasks, %.1f activity tasks, %.1f local activities = %.1f tasks",
		float64(events)/k, maxEvents, float64(wfTasks)/k, float64(actTasks)/k, float64(local)/k, float64(wfTasks+actTasks)/k)
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1) * p)
	return d[i].Round(time.Millisecond)
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
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, stack.APIURL+"/v1.5/appKeys/"+appKey+path, rdr)
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var h struct {
		Header struct {
			IsSuccessful  bool
			ResultMessage string
		}
	}
	_ = json.Unmarshal(data, &h)
	if !h.Header.IsSuccessful {
		log.Fatalf("%s %s: %s", method, path, data)
	}
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
}

func atoiMust(s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		log.Fatal(err)
	}
	return n
}
