// Command create measures how long distributions created in one NHN POST
// take to be OPEN (issue 28: 100 in one POST all OPEN within 10 s on
// `cdnflow dev`). It starts the stack in-process as `cdnflow dev` does
// (bench/harness: embedded Temporal on SQLite, real varnishd edges each
// with an origin connector, the worker and the API), optionally creates
// -preload distributions first, then POSTs -n distributions in one call
// and polls GET /distributions?status=OPENING every -poll until none is
// left, as a client would. It prints:
//
//   - admit: the POST's answer time;
//
//   - all OPEN (polled): from the POST until the poll saw none OPENING;
//
//   - from every distribution's Temporal history: first and last OPEN and
//     p50/p99/max of each one's time to OPEN, from the POST;
//
//   - the same histories split into phases (start → first workflow task,
//     → origin probe scheduled, probe queued, probe run, → ApplySite
//     scheduled, ApplySite queued, ApplySite run, → OPEN), p50/p99/max.
//
//     go run ./bench/create -edges 3 -n 100
//     go run ./bench/create -edges 3 -preload 1000 -n 100   # issue 28's last figure: 1,000 per edge
package main

import (
	"context"
	"flag"
	"fmt"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
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
	client     *http.Client
	poll       time.Duration
	verbose    bool
}

func main() {
	edges := flag.Int("edges", 3, "varnishd edges (cdnflow dev: 3)")
	n := flag.Int("n", 100, "distributions created in the one timed POST (at most 100)")
	preload := flag.Int("preload", 0, "distributions created (and OPEN) before the timed POST")
	poll := flag.Duration("poll", 250*time.Millisecond, "interval of the client's GET ?status=OPENING polls")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (worker, API, embedded Temporal) during the timed POST to this file")
	api := flag.String("api", "", "base URL of a running cdnflow (e.g. `cdnflow dev` started with --app-keys bench:bench-secret) instead of an in-process stack")
	temporalAddr := flag.String("temporal", "127.0.0.1:7233", "with -api: the Temporal frontend whose histories give the phases")
	originAddr := flag.String("origin", "127.0.0.1:8090", "with -api: the origin of the distributions (dev: the demo origin)")
	pid := flag.Int("pid", 0, "with -api: the cdnflow process whose CPU time is reported (0: none)")
	verbose := flag.Bool("v", false, "log every poll: how many are OPENING and how long the GET took")
	flag.Parse()
	if *n < 1 || *n > perRequest {
		stdlog.Fatalf("-n %d: 1 to %d distributions per POST", *n, perRequest)
	}
	ctx := context.Background()
	var stack *harness.Stack
	if *api != "" {
		c, err := client.Dial(client.Options{HostPort: *temporalAddr, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err != nil {
			stdlog.Fatal(err)
		}
		defer c.Close()
		stack = &harness.Stack{APIURL: strings.TrimSuffix(*api, "/"), Temporal: c, OriginAddr: *originAddr}
	} else {
		var err error
		stack, err = harness.Start(ctx, harness.Options{Edges: *edges, Configure: func(c *config.Config) {
			c.AppKeys = map[string]string{appKey: secret}
		}})
		if err != nil {
			stdlog.Fatal(err)
		}
		defer stack.Stop()
	}
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	p, _ := strconv.Atoi(port)
	b := &bench{stack: stack, originHost: host, originPort: p, client: &http.Client{Timeout: 2 * time.Minute}, poll: *poll, verbose: *verbose}
	for left := *preload; left > 0; left -= perRequest {
		start := time.Now()
		ds, _ := b.post(min(left, perRequest))
		b.waitNoneOpening(time.Now().Add(10 * time.Minute))
		stdlog.Printf("preload: %d created, none OPENING after %s", len(ds), time.Since(start).Round(time.Millisecond))
	}

	fmt.Printf("create benchmark: %d in one POST, %d varnishd edges, %d existing, poll every %s, GOMAXPROCS %d\n",
		*n, *edges, *preload, *poll, runtime.GOMAXPROCS(0))
	stopProfile := harness.StartCPUProfile(*cpuProfile)
	cpuOf := harness.ProcessCPU
	if *api != "" {
		cpuOf = func() time.Duration { return processCPU(*pid) }
	}
	cpu0 := cpuOf()
	start := time.Now()
	domains, admit := b.post(*n)
	polls := b.waitNoneOpening(start.Add(10 * time.Minute))
	allOpen := time.Since(start)
	cpu := cpuOf() - cpu0
	stopProfile()
	fmt.Printf("admit (POST answered):       %s\n", admit.Round(time.Millisecond))
	fmt.Printf("all OPEN (polled, %3d polls): %s   process CPU %s\n", polls, allOpen.Round(time.Millisecond), cpu.Round(time.Millisecond))
	b.phases(ctx, domains, start)
}

// post creates k distributions in one POST and returns their domains and
// the time the POST took.
func (b *bench) post(k int) ([]string, time.Duration) {
	bodies := make([]map[string]any, k)
	for i := range bodies {
		bodies[i] = map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": "/"}},
		}
	}
	var created struct{ Distributions []struct{ Domain string } }
	start := time.Now()
	b.call("POST", "/distributions", map[string]any{"distributions": bodies}, &created)
	took := time.Since(start)
	var out []string
	for _, d := range created.Distributions {
		out = append(out, d.Domain)
	}
	if len(out) != k {
		stdlog.Fatalf("POST of %d distributions answered %d", k, len(out))
	}
	return out, took
}

// waitNoneOpening polls until no distribution is OPENING, then checks that
// none is in ERROR; it returns the number of polls.
func (b *bench) waitNoneOpening(deadline time.Time) int {
	polls := 0
	for {
		var list struct{ Distributions []struct{ Domain string } }
		t := time.Now()
		b.call("GET", "/distributions?status=OPENING", nil, &list)
		polls++
		if b.verbose {
			stdlog.Printf("poll %d: %d OPENING, answered in %s", polls, len(list.Distributions), time.Since(t).Round(time.Millisecond))
		}
		if len(list.Distributions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			stdlog.Fatalf("%d distributions still OPENING", len(list.Distributions))
		}
		time.Sleep(b.poll)
	}
	var bad struct {
		Distributions []struct{ Domain, LastError string }
	}
	b.call("GET", "/distributions?status=ERROR", nil, &bad)
	if len(bad.Distributions) > 0 {
		stdlog.Fatalf("%d distributions in ERROR, e.g. %+v", len(bad.Distributions), bad.Distributions[0])
	}
	return polls
}

// marks are the times of one distribution's first change, from its history.
type marks struct {
	started, firstTask, probeSched, probeStart, probeDone, applySched, applyStart, applyDone, open time.Time
}

// phase names the span between two marks.
type phase struct {
	name     string
	from, to func(m marks) time.Time
}

var phases = []phase{
	{"POST start → workflow started", nil, func(m marks) time.Time { return m.started }},
	{"started → first workflow task", func(m marks) time.Time { return m.started }, func(m marks) time.Time { return m.firstTask }},
	{"first task → probe scheduled", func(m marks) time.Time { return m.firstTask }, func(m marks) time.Time { return m.probeSched }},
	{"probe queued", func(m marks) time.Time { return m.probeSched }, func(m marks) time.Time { return m.probeStart }},
	{"probe run", func(m marks) time.Time { return m.probeStart }, func(m marks) time.Time { return m.probeDone }},
	{"probe done → ApplySite scheduled", func(m marks) time.Time { return m.probeDone }, func(m marks) time.Time { return m.applySched }},
	{"first task → ApplySite scheduled", func(m marks) time.Time { return m.firstTask }, func(m marks) time.Time { return m.applySched }},
	{"ApplySite queued", func(m marks) time.Time { return m.applySched }, func(m marks) time.Time { return m.applyStart }},
	{"ApplySite run", func(m marks) time.Time { return m.applyStart }, func(m marks) time.Time { return m.applyDone }},
	{"ApplySite done → OPEN", func(m marks) time.Time { return m.applyDone }, func(m marks) time.Time { return m.open }},
	{"POST start → OPEN", nil, func(m marks) time.Time { return m.open }},
}

// phases reads every distribution's history and prints its phases.
func (b *bench) phases(ctx context.Context, domains []string, start time.Time) {
	if b.stack.Temporal == nil {
		return
	}
	all := make([]marks, len(domains))
	errs := make([]error, len(domains))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, d := range domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			all[i], errs[i] = b.marksOf(ctx, workflows.DistributionWorkflowID(appKey, d))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			stdlog.Printf("history of %s: %v", domains[i], err)
			return
		}
	}
	var opens []time.Duration
	for _, m := range all {
		opens = append(opens, m.open.Sub(start))
	}
	sort.Slice(opens, func(i, j int) bool { return opens[i] < opens[j] })
	fmt.Printf("from histories: first OPEN %s, last OPEN %s; time to OPEN p50 %s p99 %s\n",
		opens[0].Round(time.Millisecond), opens[len(opens)-1].Round(time.Millisecond), pct(opens, 0.5), pct(opens, 0.99))
	fmt.Printf("%-34s %9s %9s %9s\n", "phase (per distribution)", "p50", "p99", "max")
	for _, p := range phases {
		var ds []time.Duration
		for _, m := range all {
			from := start
			if p.from != nil {
				from = p.from(m)
			}
			if !from.IsZero() && !p.to(m).IsZero() {
				ds = append(ds, p.to(m).Sub(from))
			}
		}
		if len(ds) == 0 {
			fmt.Printf("%-34s %9s\n", p.name, "(none)")
			continue
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		fmt.Printf("%-34s %9s %9s %9s\n", p.name, pct(ds, 0.5), pct(ds, 0.99), ds[len(ds)-1].Round(time.Millisecond))
	}
	if os.Getenv("CDNFLOW_BENCH_HISTORY") != "" {
		last := 0
		for i, m := range all {
			if m.open.After(all[last].open) {
				last = i
			}
		}
		b.dumpHistory(ctx, workflows.DistributionWorkflowID(appKey, domains[last]), start)
	}
}

// marksOf reads the times of the first change out of one history.
func (b *bench) marksOf(ctx context.Context, id string) (marks, error) {
	var m marks
	it := b.stack.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var probeID, applyID int64
	for it.HasNext() && m.open.IsZero() {
		e, err := it.Next()
		if err != nil {
			return m, err
		}
		t := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			m.started = t
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if m.firstTask.IsZero() {
				m.firstTask = t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			switch e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() {
			case "ProbeDistributionOrigins":
				if probeID == 0 {
					probeID, m.probeSched = e.GetEventId(), t
				}
			case "ApplySite":
				if applyID == 0 {
					applyID, m.applySched = e.GetEventId(), t
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			switch e.GetActivityTaskStartedEventAttributes().GetScheduledEventId() {
			case probeID:
				m.probeStart = t
			case applyID:
				m.applyStart = t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			switch e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId() {
			case probeID:
				m.probeDone = t
			case applyID:
				m.applyDone = t
			}
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			if !m.applyDone.IsZero() {
				m.open = t
			}
		}
	}
	if m.open.IsZero() {
		return m, fmt.Errorf("no OPEN after ApplySite in the history")
	}
	return m, nil
}

// dumpHistory prints one history's events with their times from start
// (CDNFLOW_BENCH_HISTORY=1: the history of the last one to open).
func (b *bench) dumpHistory(ctx context.Context, id string, start time.Time) {
	fmt.Printf("history of %s:\n", id)
	it := b.stack.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			stdlog.Print(err)
			return
		}
		fmt.Printf("  %8s %3d %s%s\n", e.GetEventTime().AsTime().Sub(start).Round(time.Millisecond), e.GetEventId(), e.GetEventType(), detail(e))
	}
}

func detail(e *historypb.HistoryEvent) string {
	if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
		return " " + a.GetActivityType().GetName()
	}
	if a := e.GetMarkerRecordedEventAttributes(); a != nil {
		return " " + a.GetMarkerName()
	}
	return ""
}

// processCPU is the CPU time (user + system) of process pid so far, from
// /proc (0 when pid is 0 or unreadable).
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends at the last ')':
	// state is field 3, utime and stime are fields 14 and 15, in ticks.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1)*p + 0.5)
	return d[i].Round(time.Millisecond)
}

func (b *bench) call(method, path string, body any, out any) {
	if err := b.stack.NHN(b.client, appKey, secret, method, path, body, out); err != nil {
		stdlog.Fatal(err)
	}
}
