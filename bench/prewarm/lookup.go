package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// The prewarm target lookup benchmark (-lookup): what resolving a prewarm's
// target costs per prewarm start, in Temporal RPCs and wall time, at
// several counts of running distributions (docs/performance.md, "Prewarm
// target lookup"). Each start is service.StartPrewarm on a Service whose
// Temporal client counts its calls, for a URL on the alias of a distinct
// distribution (no cached answer helps); beside it, the baseline: one
// visibility scan of every running distribution, what each uncached
// prewarm start cost before the per-host lookup.

const lookupKey, lookupSecret = "bench", "bench-secret"

// countingClient counts the Temporal calls a prewarm start makes, by
// method; the other methods pass through uncounted.
type countingClient struct {
	client.Client
	mu    sync.Mutex
	calls map[string]int
	// lookupTime is the wall time spent in Query, Describe and List calls.
	lookupTime time.Duration
	// startTime is the wall time spent in Start calls: the same process's
	// latency for a call that does not depend on the distributions, the
	// yardstick of how loaded the box and Temporal were.
	startTime time.Duration
	// byMethod is the wall time spent in each method's calls, total their
	// count, since the benchmark began.
	byMethod map[string]time.Duration
	total    map[string]int
}

// count counts one call of m; the caller defers the func it answers, which
// adds the call's wall time to lookupTime for the lookup methods.
func (c *countingClient) count(m string) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[m]++
	c.total[m]++
	t := time.Now()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.byMethod[m] += time.Since(t)
		switch m {
		case "Query", "Describe", "List":
			c.lookupTime += time.Since(t)
		case "Start":
			c.startTime += time.Since(t)
		}
	}
}

// take answers the calls counted and the lookup time since the last take,
// and starts over.
func (c *countingClient) take() (map[string]int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, d := c.calls, c.lookupTime
	c.calls, c.lookupTime = map[string]int{}, 0
	return got, d
}

// takeStart answers the wall time in Start calls since the last takeStart.
func (c *countingClient) takeStart() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.startTime
	c.startTime = 0
	return d
}

func (c *countingClient) QueryWorkflow(ctx context.Context, id, run, q string, args ...any) (converter.EncodedValue, error) {
	defer c.count("Query")()
	return c.Client.QueryWorkflow(ctx, id, run, q, args...)
}

func (c *countingClient) QueryWorkflowWithOptions(ctx context.Context, r *client.QueryWorkflowWithOptionsRequest) (*client.QueryWorkflowWithOptionsResponse, error) {
	defer c.count("Query")()
	return c.Client.QueryWorkflowWithOptions(ctx, r)
}

func (c *countingClient) DescribeWorkflowExecution(ctx context.Context, id, run string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	defer c.count("Describe")()
	return c.Client.DescribeWorkflowExecution(ctx, id, run)
}

func (c *countingClient) ListWorkflow(ctx context.Context, r *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	defer c.count("List")()
	return c.Client.ListWorkflow(ctx, r)
}

func (c *countingClient) CountWorkflow(ctx context.Context, r *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	defer c.count("Count")()
	return c.Client.CountWorkflow(ctx, r)
}

func (c *countingClient) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	defer c.count("Start")()
	return c.Client.ExecuteWorkflow(ctx, o, wf, args...)
}

// lookupRun is one side's figures at one count of distributions: medians
// over every start (every scan) of the rounds.
type lookupRun struct {
	whole      []time.Duration // wall time of each start (each scan)
	lookupTime []time.Duration // wall time in lookup RPCs of each
	startRPC   []time.Duration // wall time of each start's Start RPC
	calls      map[string]int  // calls of all of them, by method
}

func (r *lookupRun) add(whole time.Duration, calls map[string]int, lookup time.Duration) {
	r.whole, r.lookupTime = append(r.whole, whole), append(r.lookupTime, lookup)
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	for m, n := range calls {
		r.calls[m] += n
	}
}

// lookups is the lookup RPCs (Query, Describe, List) per start (per scan);
// Count and Start are admission and the job's start.
func (r lookupRun) lookups() float64 {
	return float64(r.calls["Query"]+r.calls["Describe"]+r.calls["List"]) / float64(len(r.whole))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func lookupBench(ctx context.Context, counts []int, starts, rounds int) {
	stack, err := harness.Start(ctx, harness.Options{Edges: 1, StandIns: true, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{lookupKey: lookupSecret}
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	cc := &countingClient{Client: stack.Temporal, calls: map[string]int{}, byMethod: map[string]time.Duration{}, total: map[string]int{}}
	svc := service.New(service.Deps{Temporal: cc, Config: stack.Config, Inventory: stack.Inventory, Logger: zap.NewNop(), Store: stack.Payloads})
	fmt.Printf("prewarm target lookup: %d round(s) per count of %d prewarm starts, each on another distribution's alias, then %d scans; medians (one Go stand-in edge, embedded Temporal on SQLite, GOMAXPROCS %d)\n",
		rounds, starts, starts, runtime.GOMAXPROCS(0))
	var aliases []string
	results := map[int][2]lookupRun{}
	for _, n := range counts {
		if n < starts {
			log.Fatalf("-lookup %d: at least -lookup-starts (%d) distributions, one per start", n, starts)
		}
		aliases = append(aliases, createAliased(stack, len(aliases), n-len(aliases))...)
		time.Sleep(5 * time.Second) // the creations settle; visibility caught up
		var per, scan lookupRun
		for range rounds {
			measureStarts(ctx, svc, cc, aliases[len(aliases)-starts:], &per)
			measureScan(ctx, cc, starts, &scan)
		}
		results[n] = [2]lookupRun{per, scan}
		fmt.Printf("  %5d distributions: per-host lookup %7.2f ms in lookup RPCs per start (%.1f RPCs), whole start %7.2f ms; calls %v\n",
			n, ms(median(per.lookupTime)), per.lookups(), ms(median(per.whole)), per.calls)
		fmt.Printf("  %5d distributions: the same starts' Start RPC (load yardstick) %7.2f ms\n", n, ms(median(per.startRPC)))
		fmt.Printf("  %5d distributions: mean per call since the start: %s\n", n, cc.meanPerCall())
		fmt.Printf("  %5d distributions: scan baseline   %7.2f ms in lookup RPCs per scan  (%.1f RPCs); calls %v\n",
			n, ms(median(scan.lookupTime)), scan.lookups(), scan.calls)
	}
	measureBurst(ctx, svc, cc, aliases[0], 50)
	lo := results[counts[0]]
	for _, n := range counts[1:] {
		hi := results[n]
		fmt.Printf("  ratio %d/%d distributions: per-host lookup time %.2f, RPCs %.2f, whole start %.2f; scan time %.2f, RPCs %.2f\n",
			n, counts[0],
			float64(median(hi[0].lookupTime))/float64(median(lo[0].lookupTime)), hi[0].lookups()/lo[0].lookups(),
			float64(median(hi[0].whole))/float64(median(lo[0].whole)),
			float64(median(hi[1].lookupTime))/float64(median(lo[1].lookupTime)), hi[1].lookups()/lo[1].lookups())
		fmt.Printf("  ratio %d/%d distributions: Start RPC (load yardstick) %.2f\n", n, counts[0], float64(median(hi[0].startRPC))/float64(median(lo[0].startRPC)))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measureStarts starts one prewarm per alias, one after another, after a
// pause that lets every cached lookup expire, and adds each to r.
func measureStarts(ctx context.Context, svc *service.Service, cc *countingClient, aliases []string, r *lookupRun) {
	time.Sleep(time.Second)
	cc.take()
	for i, a := range aliases {
		req := service.PrewarmRequest{URLList: []string{fmt.Sprintf("http://%s/lookup-%d-%d.js", a, len(r.whole), i)}, Region: json.RawMessage(`"all"`)}
		t := time.Now()
		if _, err := svc.StartPrewarm(ctx, req, ""); err != nil {
			log.Fatalf("prewarm on %s: %v", a, err)
		}
		whole := time.Since(t)
		calls, lookup := cc.take()
		r.add(whole, calls, lookup)
		r.startRPC = append(r.startRPC, cc.takeStart())
	}
}

// measureScan runs the baseline n times and adds each to r: a visibility
// scan of every running distribution, querying those that have not
// published their state, as each uncached prewarm start did before the
// per-host lookup.
func measureScan(ctx context.Context, cc *countingClient, n int, r *lookupRun) {
	cc.take()
	for range n {
		t := time.Now()
		hosts := 0
		for l, err := range workflows.ListDistributions(ctx, cc, workflows.DistributionQuery{}) {
			if err != nil {
				log.Fatal(err)
			}
			if !l.Published {
				if _, err := cc.QueryWorkflow(ctx, l.WorkflowID, "", workflows.QueryDistribution); err != nil {
					log.Fatal(err)
				}
			}
			hosts += len(l.State.Hosts())
		}
		if hosts == 0 {
			log.Fatal("the scan found no host")
		}
		whole := time.Since(t)
		calls, lookup := cc.take()
		r.add(whole, calls, lookup)
	}
}

// createAliased creates k distributions, the i-th with the alias
// d<first+i>.lookup.bench, and waits until none is OPENING; it answers
// the aliases.
func createAliased(stack *harness.Stack, first, k int) []string {
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	var p int
	_, _ = fmt.Sscan(port, &p)
	hc := &http.Client{Timeout: 2 * time.Minute}
	var aliases []string
	for done := 0; done < k; {
		batch := min(k-done, service.MaxDistributionsPerRequest)
		bodies := make([]map[string]any, batch)
		for i := range bodies {
			a := fmt.Sprintf("d%d.lookup.bench", first+done+i)
			aliases = append(aliases, a)
			bodies[i] = map[string]any{
				"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST", "domainAlias": a,
				"origins": []map[string]any{{"origin": host, "port": p, "originPath": "/"}},
			}
		}
		if err := stack.NHN(hc, lookupKey, lookupSecret, "POST", "/distributions", map[string]any{"distributions": bodies}, nil); err != nil {
			log.Fatal(err)
		}
		done += batch
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var list struct{ Distributions []struct{ Domain string } }
		if err := stack.NHN(hc, lookupKey, lookupSecret, "GET", "/distributions?status=OPENING", nil, &list); err != nil {
			log.Fatal(err)
		}
		if len(list.Distributions) == 0 {
			return slices.Clip(aliases)
		}
		if time.Now().After(deadline) {
			log.Fatalf("%d distributions still OPENING", len(list.Distributions))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// counts parses a list like "10,200": ascending positive counts.
func counts(list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			log.Fatalf("-lookup %q: want ascending counts like 10,200", list)
		}
		out = append(out, n)
	}
	return out
}

// measureBurst starts k prewarms of one host at once and prints the lookup
// RPCs they made together: the cache (hostsTTL) and its singleflight make
// them one lookup.
func measureBurst(ctx context.Context, svc *service.Service, cc *countingClient, alias string, k int) {
	time.Sleep(time.Second) // no cached answer of alias left
	cc.take()
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := service.PrewarmRequest{URLList: []string{fmt.Sprintf("http://%s/burst-%d.js", alias, i)}, Region: json.RawMessage(`"all"`)}
			if _, err := svc.StartPrewarm(ctx, req, ""); err != nil {
				log.Printf("burst prewarm: %v", err)
			}
		}()
	}
	wg.Wait()
	calls, _ := cc.take()
	fmt.Printf("  burst: %d prewarms of %s at once made %d lookup RPCs together (calls %v)\n", k, alias, calls["Query"]+calls["Describe"]+calls["List"], calls)
}

// meanPerCall prints each method's mean wall time per call, over every
// call since the benchmark began.
func (c *countingClient) meanPerCall() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for m, d := range c.byMethod {
		if n := c.total[m]; n > 0 {
			out = append(out, fmt.Sprintf("%s %.2f ms", m, ms(d/time.Duration(n))))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
