// Command load puts N concurrent API clients on cdnflow for a fixed time and
// reports, per route, requests, req/s and p50/p99/max latency. Each client
// loops over a mix of real calls: POST /prewarm (a few URLs on every edge),
// GET /status of a request it created, POST …/purges (one ITEM path on a
// distribution made at start) and GET …/purges. NHN's purge rate limit
// (resultCode 30001) is counted apart; any other failure — transport error,
// timeout, HTTP 5xx, an error body or envelope — is an error, and the exit
// status is 1 if there is one. The refusal p99 column is the p99 of the
// rate-limited answers alone (429 or resultCode 30001).
//
//	go run ./bench/load -clients 200 -duration 30s -edges 3
//	go run ./bench/load -url http://localhost:8080 -api-key KEY -app-key myapp -secret mysecret
//
// Without -url it starts the whole service in this process (bench/harness:
// embedded Temporal on SQLite, real varnishd edges, origin, worker, API).
// After the run it reports the workflow-task backlog, waits up to -drain for
// the jobs it created, and tears down with whatever is left still queued
// (bounded by a watchdog, so a backlog never hangs the exit).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
	"github.com/cdnflow/cdnflow/workflows"
)

type route int

const (
	rPrewarm route = iota
	rStatus
	rPurge
	rPurgeList
	nRoutes
)

var routeNames = [nRoutes]string{"POST /prewarm", "GET /status", "POST /v1.5/…/purges", "GET /v1.5/…/purges"}

type outcome int

const (
	okay outcome = iota
	limited
	failed
	nOutcomes
)

// stats is one client's record; clients merge theirs at the end.
type stats struct {
	lat [nRoutes][]time.Duration
	// refused holds the latencies of the rate-limited answers alone.
	refused [nRoutes][]time.Duration
	n       [nRoutes][nOutcomes]int
	// byPolicy holds the refusals' latencies by the limit that refused
	// them (RateLimit-Policy), every route together.
	byPolicy map[string][]time.Duration
}

// errLog keeps the first few errors of each route and counts the rest.
type errLog struct {
	mu    sync.Mutex
	first [nRoutes][]string
	total int
}

func (e *errLog) add(r route, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total++
	if len(e.first[r]) < 3 {
		e.first[r] = append(e.first[r], msg)
	}
}

// target is the API under load.
type target struct {
	base, apiKey, appKey, secret string
	domain                       string // prewarm cf_domain
	distribution                 string // purge domain
	hc                           *http.Client
}

func (t *target) do(method, path string, body any, nhn bool) (int, []byte, error) {
	code, data, _, err := t.doHeader(method, path, body, nhn)
	return code, data, err
}

// doHeader is do that also answers the response's header fields.
func (t *target) doHeader(method, path string, body any, nhn bool) (int, []byte, http.Header, error) {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rdr = bytes.NewReader(b)
	}
	u := t.base + path
	if nhn {
		u = t.base + "/v1.5/appKeys/" + url.PathEscape(t.appKey) + path
	}
	req, err := http.NewRequest(method, u, rdr)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if nhn {
		req.Header.Set("Authorization", t.secret)
	} else if t.apiKey != "" {
		req.Header.Set("x-api-key", t.apiKey)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header, err
}

type envelope struct {
	Header struct {
		IsSuccessful  bool   `json:"isSuccessful"`
		ResultCode    int    `json:"resultCode"`
		ResultMessage string `json:"resultMessage"`
	} `json:"header"`
}

// nhnOutcome classifies a /v1.5 answer.
func nhnOutcome(code int, data []byte) (outcome, string) {
	if code != http.StatusOK {
		return failed, fmt.Sprintf("HTTP %d: %s", code, snippet(data))
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return failed, "not an NHN envelope: " + snippet(data)
	}
	switch {
	case env.Header.IsSuccessful:
		return okay, ""
	case env.Header.ResultCode == 30001:
		return limited, ""
	}
	return failed, fmt.Sprintf("resultCode %d: %s", env.Header.ResultCode, env.Header.ResultMessage)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// call sends one request of route r and classifies the answer. For a
// prewarm it also returns the new requestID; for a refusal, the policy
// its RateLimit-Policy field names ("?" when it names none).
func (t *target) call(r route, clientID, i int, statusID string) (outcome, string, string, string) {
	o, msg, rid, h := t.send(r, clientID, i, statusID)
	policy := ""
	if o == limited {
		policy = "?"
		if p, _, ok := strings.Cut(h.Get("RateLimit-Policy"), ";"); ok {
			policy = strings.Trim(p, `"`)
		}
	}
	return o, msg, rid, policy
}

func (t *target) send(r route, clientID, i int, statusID string) (outcome, string, string, http.Header) {
	var code int
	var data []byte
	var h http.Header
	var err error
	switch r {
	case rPrewarm:
		list := make([]string, 3)
		for k := range list {
			list[k] = fmt.Sprintf("http://%s/load/c%d/%d/file-%d.js", t.domain, clientID, i, k)
		}
		code, data, h, err = t.doHeader("POST", "/prewarm", map[string]any{
			"url_list": list, "cf_domain": t.domain, "protocol": "http",
			"target_type": "region", "region": "all", "timeout": 600,
		}, false)
	case rStatus:
		code, data, h, err = t.doHeader("GET", "/status?requestID="+url.QueryEscape(statusID), nil, false)
	case rPurge:
		code, data, h, err = t.doHeader("POST", "/purges", map[string]any{
			"domain": t.distribution, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/load/c%d/%d.js", clientID, i),
		}, true)
	case rPurgeList:
		code, data, h, err = t.doHeader("GET", "/purges?domain="+url.QueryEscape(t.distribution)+"&page=1&itemsPerPage=20", nil, true)
	}
	if err != nil {
		return failed, err.Error(), "", h
	}
	switch r {
	case rPrewarm:
		var v struct {
			RequestID string `json:"requestID"`
		}
		if code == http.StatusTooManyRequests {
			return limited, "", "", h
		}
		if code != http.StatusOK || json.Unmarshal(data, &v) != nil || v.RequestID == "" {
			return failed, fmt.Sprintf("HTTP %d: %s", code, snippet(data)), "", h
		}
		return okay, "", v.RequestID, h
	case rStatus:
		var v struct {
			Status string `json:"status"`
		}
		if code == http.StatusTooManyRequests {
			return limited, "", "", h
		}
		if code != http.StatusOK || json.Unmarshal(data, &v) != nil || v.Status == "" {
			return failed, fmt.Sprintf("requestID %s: HTTP %d: %s", statusID, code, snippet(data)), "", h
		}
		return okay, "", "", h
	}
	o, msg := nhnOutcome(code, data)
	return o, msg, "", h
}

// runClient loops over the route mix until the deadline. Clients start at
// different points of the mix so every route is under load from the start.
func runClient(tenants []*target, id int, deadline time.Time, st *stats, errs *errLog, created chan<- string) {
	t := tenants[id%len(tenants)]
	var ids []string
	for i := 0; time.Now().Before(deadline); i++ {
		r := route((id + i) % int(nRoutes))
		statusID := ""
		if r == rStatus {
			if len(ids) == 0 {
				r = rPrewarm // nothing of its own to ask about yet
			} else {
				statusID = ids[len(ids)-1-(i/int(nRoutes))%len(ids)]
			}
		}
		start := time.Now()
		o, msg, rid, policy := t.call(r, id, i, statusID)
		st.lat[r] = append(st.lat[r], time.Since(start))
		if o == limited {
			st.refused[r] = append(st.refused[r], time.Since(start))
			if st.byPolicy == nil {
				st.byPolicy = map[string][]time.Duration{}
			}
			st.byPolicy[policy] = append(st.byPolicy[policy], time.Since(start))
		}
		st.n[r][o]++
		if o == failed {
			errs.add(r, msg)
		}
		if rid != "" {
			ids = append(ids, rid)
			created <- rid
		}
	}
}

func main() {
	clients := flag.Int("clients", 200, "concurrent clients")
	duration := flag.Duration("duration", 30*time.Second, "how long the clients send requests")
	edges := flag.Int("edges", 3, "varnishd edges of the started service (not with -url)")
	baseURL := flag.String("url", "", "base URL of a running cdnflow API (empty: start one in this process)")
	apiKey := flag.String("api-key", "", "x-api-key for /prewarm and /status (with -url)")
	appKey := flag.String("app-key", "bench", "NHN appKey (with -url)")
	secret := flag.String("secret", "bench-secret", "SecretKey of -app-key (with -url)")
	origin := flag.String("origin", "127.0.0.1:8090", "host:port origin of the distribution the run creates (with -url)")
	domain := flag.String("domain", "load.example.com", "cf_domain of the prewarms")
	timeout := flag.Duration("timeout", 30*time.Second, "per-request timeout (a timeout is an error)")
	drain := flag.Duration("drain", 30*time.Second, "after the run, how long to wait for the jobs it created to finish before tearing down (not with -url)")
	appKeys := flag.Int("appkeys", 20, "appKeys the clients are spread over, each with its own distribution (not with -url: one)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process during the load (without -url: worker, API and embedded Temporal) to this file; read it with go tool pprof")
	client := flag.String("client", "lean", "the clients' HTTP side: lean (each exchange on the client's goroutine, one keep-alive connection per client; the load generator's own CPU queue kept small) or stdlib (net/http's Transport)")
	heavyConcurrency := flag.Int("heavy-concurrency", -1, "the started API's --heavy-concurrency (-1: its default; not with -url)")
	heavyWait := flag.Duration("heavy-wait", -1, "the started API's --heavy-wait (-1: its default; not with -url)")
	flag.Parse()
	ctx := context.Background()

	t := &target{base: strings.TrimRight(*baseURL, "/"), apiKey: *apiKey, appKey: *appKey, secret: *secret, domain: *domain}
	stack, where := startTarget(ctx, t, *edges, *appKeys, origin, config.Shedding{HeavyConcurrency: *heavyConcurrency, HeavyWait: *heavyWait})
	exit := func(code int) {
		if stack != nil {
			stopStack(stack)
		}
		os.Exit(code)
	}
	var err error
	if t.hc, err = newHTTPClient(*client, t.base, *clients, *timeout); err != nil {
		log.Print(err)
		exit(2)
	}
	tenants, err := makeTenants(t, stack, *appKeys, *origin)
	if err != nil {
		log.Print(err)
		exit(1)
	}

	fmt.Printf("load benchmark: %d clients (%s HTTP client) x %s against %s\n", *clients, *client, *duration, where)
	fmt.Printf("  machine: %d cores (GOMAXPROCS %d), %s/%s, %s; %d appKeys, one distribution each\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), len(tenants))
	if stack != nil {
		fmt.Printf("  API: --heavy-concurrency %d, --heavy-wait %s\n", stack.Config.HeavyConcurrency, stack.Config.HeavyWait)
	}

	sampler := startTaskSampler(stack)
	stopProfile := harness.StartCPUProfile(*cpuProfile)
	queue, refusals := startCPUQueue(), startAPIRefusals()
	all, errs, ids, elapsed := runClients(tenants, *clients, *duration)
	stopProfile()

	report(all, *duration, elapsed, errs)
	queue.report()
	if stack != nil {
		refusals.report()
	}
	if stack != nil {
		reportJobs(stack, all, elapsed)
		sampler.report(10 * time.Second)
	}
	if stack != nil {
		drainJobs(stack, ids, *drain)
	}
	code := 0
	if errs.total > 0 {
		code = 1
	}
	exit(code)
}

func report(all []stats, window, elapsed time.Duration, errs *errLog) {
	fmt.Printf("  requests started for %s, last answer at %.1f s (req/s over that); latency = request sent to body read, over every answer\n",
		window, elapsed.Seconds())
	fmt.Printf("  %-22s %9s %9s %12s %7s %8s %9s %9s %9s %12s\n", "route", "requests", "ok", "rate-limited", "errors", "req/s", "p50", "p99", "max", "refusal p99")
	var total stats
	var allLat, allRefused []time.Duration
	for r := route(0); r < nRoutes; r++ {
		var lat, refused []time.Duration
		var n [nOutcomes]int
		for i := range all {
			lat = append(lat, all[i].lat[r]...)
			refused = append(refused, all[i].refused[r]...)
			for o := outcome(0); o < nOutcomes; o++ {
				n[o] += all[i].n[r][o]
				total.n[0][o] += all[i].n[r][o]
			}
		}
		allLat, allRefused = append(allLat, lat...), append(allRefused, refused...)
		printRow(routeNames[r], lat, refused, n, elapsed)
	}
	printRow("total", allLat, allRefused, total.n[0], elapsed)
	reportPolicies(all)
	fmt.Printf("  errors: %d (rate-limited answers, resultCode 30001, are not errors)\n", errs.total)
	for r := route(0); r < nRoutes; r++ {
		for _, e := range errs.first[r] {
			fmt.Printf("    %s: %s\n", routeNames[r], e)
		}
	}
}

// reportPolicies prints the refusals by the limit that refused them
// (RateLimit-Policy: tenant-jobs, backlog, purge-items, heavy, ...) with
// each one's p99.
func reportPolicies(all []stats) {
	by := map[string][]time.Duration{}
	for i := range all {
		for p, l := range all[i].byPolicy {
			by[p] = append(by[p], l...)
		}
	}
	names := make([]string, 0, len(by))
	for p := range by {
		names = append(names, p)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, p := range names {
		l := by[p]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		parts = append(parts, fmt.Sprintf("%s %d (p99 %s)", p, len(l), pct(l, 0.99)))
	}
	fmt.Printf("  refusals by policy (RateLimit-Policy): %s\n", strings.Join(parts, ", "))
}

// printRow prints one route's counts and latencies; refusal p99 is over
// its rate-limited answers alone (429, resultCode 30001).
func printRow(name string, lat, refused []time.Duration, n [nOutcomes]int, elapsed time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(refused, func(i, j int) bool { return refused[i] < refused[j] })
	count := len(lat)
	fmt.Printf("  %-22s %9d %9d %12d %7d %8.1f %9s %9s %9s %12s\n", name, count, n[okay], n[limited], n[failed],
		float64(count)/elapsed.Seconds(), pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1), pct(refused, 0.99))
}

func pct(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "-"
	}
	i := int(float64(len(d)-1) * p)
	return ms(d[i])
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// makeDistribution creates the distribution the purges act on and waits
// until it is OPEN.
func makeDistribution(t *target, origin string) (string, error) {
	host, port, err := net.SplitHostPort(origin)
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", origin, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", origin, err)
	}
	code, data, err := t.do("POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"description": "bench/load", "origins": []map[string]any{{"origin": host, "port": p}},
	}}}, true)
	if err != nil {
		return "", fmt.Errorf("create distribution: %w", err)
	}
	var created struct {
		envelope
		Distributions []struct {
			Domain string `json:"domain"`
		} `json:"distributions"`
	}
	if code != http.StatusOK || json.Unmarshal(data, &created) != nil || !created.Header.IsSuccessful || len(created.Distributions) != 1 {
		return "", fmt.Errorf("create distribution: HTTP %d: %s", code, snippet(data))
	}
	domain := created.Distributions[0].Domain
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_, data, err := t.do("GET", "/distributions?domain="+url.QueryEscape(domain), nil, true)
		if err != nil {
			continue
		}
		var list struct {
			Distributions []struct {
				Status string `json:"status"`
			} `json:"distributions"`
		}
		if json.Unmarshal(data, &list) == nil && len(list.Distributions) == 1 && list.Distributions[0].Status == "OPEN" {
			return domain, nil
		}
	}
	return "", fmt.Errorf("distribution %s is not OPEN after 2m", domain)
}

// jobsQuery is every prewarm and purge.
var jobsQuery = fmt.Sprintf("%s IN ('%s', '%s')", workflows.KindAttr.GetName(), workflows.KindPrewarm, workflows.KindPurge)

// drainJobs reports the workflow-task backlog the run left, waits up to d
// for the jobs it started to finish, and reports how the prewarms ended.
// Counts come from visibility, which lags the jobs a little.
func drainJobs(stack *harness.Stack, ids []string, d time.Duration) {
	ctx := context.Background()
	c, err := temporalclient.Dial(ctx, stack.Config.Temporal.Settings, zap.NewNop())
	if err != nil {
		fmt.Printf("  drain: cannot dial Temporal: %v\n", err)
		return
	}
	defer c.Close()
	tq, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     stack.Config.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: stack.Config.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	if err == nil {
		st := tq.GetStats()
		fmt.Printf("  workflow tasks waiting in task queue %q when the load stopped: %d (oldest %s; added %.1f/s, dispatched %.1f/s)\n",
			stack.Config.TaskQueue, st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration().Round(100*time.Millisecond),
			st.GetTasksAddRate(), st.GetTasksDispatchRate())
	}
	count := func(q string) int64 {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return -1
		}
		return resp.GetCount()
	}
	start := time.Now()
	running := count(jobsQuery + " AND ExecutionStatus = 'Running'")
	for running != 0 && time.Since(start) < d {
		time.Sleep(time.Second)
		running = count(jobsQuery + " AND ExecutionStatus = 'Running'")
	}
	parents := fmt.Sprintf("%s = '%s' AND %s = ", workflows.KindAttr.GetName(), workflows.KindPrewarm, workflows.StatusAttr.GetName())
	fmt.Printf("  after the run: %d prewarm jobs created (x %d edges); ", len(ids), len(stack.Inventory.Edges))
	if running == 0 {
		fmt.Printf("all jobs finished %.1f s after the load stopped\n", time.Since(start).Seconds())
	} else {
		fmt.Printf("%d prewarm/purge workflows still running %s after the load stopped\n", running, d)
	}
	fmt.Printf("  prewarm outcomes then: COMPLETED %d, FAILED %d, TIMEOUT %d, IN_PROGRESS %d\n",
		count(parents+"'"+workflows.PrewarmCompleted+"'"), count(parents+"'"+workflows.PrewarmFailed+"'"),
		count(parents+"'"+workflows.PrewarmTimeout+"'"), count(parents+"'"+workflows.PrewarmInProgress+"'"))
}

// stopStack tears the service down with the jobs of the run still queued or
// running: they stay in the SQLite file, which Stop deletes. The worker
// gives activities at most 10 s; the watchdog bounds the rest, so a backlog
// can never hang the exit.
func stopStack(stack *harness.Stack) {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		stack.Stop()
		close(done)
	}()
	select {
	case <-done:
		fmt.Printf("  teardown with the backlog in place: %s\n", time.Since(start).Round(time.Millisecond))
	case <-time.After(teardownLimit):
		fmt.Fprintf(os.Stderr, "teardown did not finish in %s; exiting anyway\n", teardownLimit)
	}
}

const teardownLimit = time.Minute

// startTarget points t at -url, or starts the whole service in this process
// (harness) when t.base is empty; it returns the stack (nil with -url) and a
// line that says what runs where.
func startTarget(ctx context.Context, t *target, edges, appKeys int, origin *string, shed config.Shedding) (*harness.Stack, string) {
	if t.base != "" {
		return nil, "running service at " + t.base
	}
	t.apiKey, t.appKey, t.secret = "bench-key", "bench", "bench-secret"
	stack, err := harness.Start(ctx, harness.Options{Edges: edges, Configure: func(c *config.Config) {
		c.APIKeys = []string{t.apiKey}
		if shed.HeavyConcurrency >= 0 {
			c.HeavyConcurrency = shed.HeavyConcurrency
		}
		if shed.HeavyWait >= 0 {
			c.HeavyWait = shed.HeavyWait
		}
		c.AppKeys = map[string]string{t.appKey: t.secret}
		for i := 0; i < appKeys; i++ {
			c.AppKeys[tenantKey(i)] = t.secret
		}
	}})
	if err != nil {
		log.Fatal(err)
	}
	t.base = stack.APIURL
	*origin = stack.OriginAddr
	return stack, fmt.Sprintf("harness: embedded Temporal (SQLite) + %d varnishd edges + origin + worker + API, all in this process", edges)
}

// newHTTPClient is the benchmark's client. "lean" (connTransport): the
// exchange on the calling goroutine, a keep-alive connection per client;
// "stdlib": net/http's Transport, keep-alive connections enough for two
// requests in flight per client, no proxy.
func newHTTPClient(kind, base string, clients int, timeout time.Duration) (*http.Client, error) {
	switch kind {
	case "lean":
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "http" {
			return nil, fmt.Errorf("-client lean needs an http:// API URL, got %q", base)
		}
		// No Client.Timeout: connTransport bounds each exchange with
		// its connection's deadline, where net/http would add a timer
		// goroutine per request for a RoundTripper of its own.
		return &http.Client{Transport: newConnTransport(u.Host, clients, timeout)}, nil
	case "stdlib":
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * clients,
			MaxIdleConnsPerHost: 2 * clients,
			IdleConnTimeout:     90 * time.Second,
		}
		return &http.Client{Transport: tr, Timeout: timeout}, nil
	}
	return nil, fmt.Errorf("-client must be lean or stdlib, got %q", kind)
}

// runClients runs the clients until duration has passed and returns their
// statistics, the errors, the requestIDs of the jobs they created and the
// elapsed time.
func runClients(tenants []*target, clients int, duration time.Duration) ([]stats, *errLog, []string, time.Duration) {
	all := make([]stats, clients)
	errs := &errLog{}
	created := make(chan string, 1024)
	var ids []string
	collected := make(chan struct{})
	go func() {
		for id := range created {
			ids = append(ids, id)
		}
		close(collected)
	}()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			runClient(tenants, c, deadline, &all[c], errs, created)
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(created)
	<-collected
	return all, errs, ids, elapsed
}

func tenantKey(i int) string { return fmt.Sprintf("bench%02d", i) }

// makeTenants gives each of n appKeys (one with -url) its own distribution.
func makeTenants(t *target, stack *harness.Stack, n int, origin string) ([]*target, error) {
	if stack == nil || n < 1 {
		n = 1
	}
	var out []*target
	for i := 0; i < n; i++ {
		cp := *t
		if stack != nil {
			cp.appKey = tenantKey(i)
		}
		var err error
		if cp.distribution, err = makeDistribution(&cp, origin); err != nil {
			return nil, fmt.Errorf("appKey %s: %w", cp.appKey, err)
		}
		out = append(out, &cp)
	}
	return out, nil
}

// reportJobs counts the jobs admitted during the load (answers that
// started one) and those finished by its end (visibility, which lags the
// jobs a little).
func reportJobs(stack *harness.Stack, all []stats, elapsed time.Duration) {
	admitted := 0
	for i := range all {
		admitted += all[i].n[rPrewarm][okay] + all[i].n[rPurge][okay]
	}
	ctx := context.Background()
	count := func(q string) int64 {
		resp, err := stack.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return -1
		}
		return resp.GetCount()
	}
	status := workflows.StatusAttr.GetName()
	finished := count(fmt.Sprintf("%s = '%s' AND %s IN ('%s', '%s', '%s')", workflows.KindAttr.GetName(), workflows.KindPrewarm, status,
		workflows.PrewarmCompleted, workflows.PrewarmFailed, workflows.PrewarmTimeout)) +
		count(fmt.Sprintf("%s = '%s' AND ExecutionStatus != 'Running'", workflows.KindAttr.GetName(), workflows.KindPurge))
	fmt.Printf("  jobs: %d admitted (%.1f/s), %d finished by the end of the load (%.1f/s)\n",
		admitted, float64(admitted)/elapsed.Seconds(), finished, float64(finished)/elapsed.Seconds())
}

// taskSampler reads the workflow task queue's dispatch rate every 5 s.
type taskSampler struct {
	stack *harness.Stack
	mu    sync.Mutex
	rates []string
	stop  chan struct{}
}

func startTaskSampler(stack *harness.Stack) *taskSampler {
	s := &taskSampler{stack: stack, stop: make(chan struct{})}
	if stack == nil {
		return s
	}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.mu.Lock()
				s.rates = append(s.rates, s.sample())
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *taskSampler) sample() string {
	tq, err := s.stack.Temporal.WorkflowService().DescribeTaskQueue(context.Background(), &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.stack.Config.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: s.stack.Config.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	if err != nil {
		return "?"
	}
	st := tq.GetStats()
	return fmt.Sprintf("%.1f (%d queued, oldest %s)", st.GetTasksDispatchRate(), st.GetApproximateBacklogCount(),
		st.GetApproximateBacklogAge().AsDuration().Round(100*time.Millisecond))
}

// report prints the samples taken during the load, waits after, and
// prints the rate then: what keeps dispatching once the clients stopped.
func (s *taskSampler) report(after time.Duration) {
	s.mu.Lock()
	during := strings.Join(s.rates, ", ")
	s.mu.Unlock()
	time.Sleep(after)
	close(s.stop)
	fmt.Printf("  workflow tasks dispatched/s (Temporal's moving rate), every 5 s during the load: %s; %s after it: %s\n", during, after, s.sample())
	fmt.Printf("  workflows running then, by type (what can still make workflow tasks): %s\n", runningByType(s.stack))
}

// runningByType counts the running workflows by type (visibility).
func runningByType(stack *harness.Stack) string {
	counts := map[string]int{}
	var token []byte
	for {
		resp, err := stack.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "ExecutionStatus = 'Running'", PageSize: 1000, NextPageToken: token})
		if err != nil {
			return "? (" + err.Error() + ")"
		}
		for _, ex := range resp.GetExecutions() {
			counts[ex.GetType().GetName()]++
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	var parts []string
	for typ, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", typ, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
