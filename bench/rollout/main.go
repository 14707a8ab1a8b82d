// Command rollout measures staged rollouts of distribution changes with
// the default waves (issue 29's targets: a good change live on every edge
// within 3 s p99; a bad change stopped at the canary and every touched
// edge back on the previous version within 5 s p99 of the failed gate, 0
// edges left on it). For each fleet (-varnish real varnishd edges, then
// -standins Go stand-in edges, bench/harness):
//
//  1. -trials distributions are created (one POST), so the canaries of
//     the trials spread over the fleet;
//
//  2. good: each gets a PATCH to a new originPath, timed from the PATCH
//     until a GET through every edge (a new, never-cached path each poll)
//     shows the origin fetched under it, and until the distribution is
//     OPEN;
//
//  3. bad: each gets a PATCH to an originPath under /status/500 (the
//     origin answers 500), waited until ERROR; the revert time runs from
//     the failed gate activity to the revert's ApplySite completing (the
//     workflow history's event times), and every edge is checked to
//     answer 200 under the previous originPath.
//
//     go run ./bench/rollout -varnish 3 -standins 50 -trials 20
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
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

type bench struct {
	stack      *harness.Stack
	originHost string
	originPort int
	client     *http.Client
}

// result is one fleet's figures.
type result struct {
	fleet           string
	live, open, rev []time.Duration
	left            int // edges found on a bad change after its revert
	waves           string
}

func main() {
	varnish := flag.Int("varnish", 3, "varnishd edges (0: skip)")
	standins := flag.Int("standins", 50, "Go stand-in edges (0: skip)")
	trials := flag.Int("trials", 20, "good and bad changes timed on each fleet (at most 100)")
	flag.Parse()
	if *trials < 1 || *trials > 100 {
		log.Fatalf("-trials %d: want 1 to 100", *trials)
	}
	var out []result
	if *varnish > 0 {
		out = append(out, run(fmt.Sprintf("%d varnishd", *varnish), harness.Options{Edges: *varnish}, *trials))
	}
	if *standins > 0 {
		out = append(out, run(fmt.Sprintf("%d stand-ins", *standins), harness.Options{Edges: *standins, StandIns: true}, *trials))
	}
	fmt.Printf("rollout benchmark: %d good and %d bad changes per fleet, default waves (%v, bake %s)\n",
		*trials, *trials, config.Default().RolloutWaves, config.Default().RolloutBake)
	fmt.Printf("%-14s %-10s %-22s %-22s %-22s %s\n", "fleet", "waves", "good live p50/p99", "good OPEN p50/p99", "revert p50/p99", "edges left on bad")
	for _, r := range out {
		fmt.Printf("%-14s %-10s %-22s %-22s %-22s %d\n", r.fleet, r.waves,
			pct(r.live, 0.5)+" / "+pct(r.live, 0.99), pct(r.open, 0.5)+" / "+pct(r.open, 0.99),
			pct(r.rev, 0.5)+" / "+pct(r.rev, 0.99), r.left)
	}
}

// run measures one fleet.
func run(fleet string, o harness.Options, trials int) result {
	o.Configure = func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
	}
	stack, err := harness.Start(context.Background(), o)
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	p, _ := strconv.Atoi(port)
	b := &bench{stack: stack, originHost: host, originPort: p, client: &http.Client{Timeout: time.Minute}}
	domains := b.create(trials)
	r := result{fleet: fleet, waves: strconv.Itoa(waveCount(len(stack.Inventory.IDs())))}
	for i, d := range domains {
		live, open := b.good(d, fmt.Sprintf("/g%d", i))
		r.live, r.open = append(r.live, live), append(r.open, open)
	}
	log.Printf("%s: good live p99 %s, OPEN p99 %s", fleet, pct(r.live, 0.99), pct(r.open, 0.99))
	for i, d := range domains {
		rev, left := b.bad(d, fmt.Sprintf("/status/500/b%d", i), fmt.Sprintf("/g%d", i))
		r.rev = append(r.rev, rev)
		r.left += left
	}
	log.Printf("%s: revert p99 %s, edges left on a bad change %d", fleet, pct(r.rev, 0.99), r.left)
	return r
}

// waveCount is how many waves the default plan makes of n edges.
func waveCount(n int) int {
	if n <= 3 {
		return min(n, 2)
	}
	waves, done := 1, 1
	for _, s := range config.Default().RolloutWaves {
		if upto := int(s*float64(n) + 0.999999); upto > done {
			waves, done = waves+1, upto
		}
	}
	return waves
}

func pct(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p+0.5)].Round(time.Millisecond).String()
}

func (b *bench) call(method, path string, body, out any) {
	if err := b.stack.NHN(b.client, appKey, secret, method, path, body, out); err != nil {
		log.Fatal(err)
	}
}

// create opens n distributions in one POST and waits until each is OPEN.
func (b *bench) create(n int) []string {
	bodies := make([]map[string]any, n)
	for i := range bodies {
		bodies[i] = map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": "/"}},
		}
	}
	var created struct{ Distributions []struct{ Domain string } }
	b.call("POST", "/distributions", map[string]any{"distributions": bodies}, &created)
	var domains []string
	for _, d := range created.Distributions {
		domains = append(domains, d.Domain)
		b.waitStatus(d.Domain, "OPEN", time.Now())
	}
	return domains
}

// waitStatus polls until domain is in want (fatal on another final
// status or after 5 min) and returns when it was seen so.
func (b *bench) waitStatus(domain, want string, start time.Time) time.Time {
	for time.Since(start) < 5*time.Minute {
		var one struct {
			Distributions []struct{ Status, LastError string }
		}
		b.call("GET", "/distributions?domain="+domain, nil, &one)
		if len(one.Distributions) == 1 {
			switch st := one.Distributions[0].Status; {
			case st == want:
				return time.Now()
			case st == "OPEN" || st == "ERROR":
				log.Fatalf("%s is %s (%s), want %s", domain, st, one.Distributions[0].LastError, want)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Fatalf("%s not %s after 5 min", domain, want)
	return time.Time{}
}

func (b *bench) patch(domain, originPath string) {
	b.call("PATCH", "/distributions", map[string]any{"domain": domain,
		"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": originPath}}}, nil)
}

// good patches domain to originPath and returns the times until every
// edge fetches under it and until the distribution is OPEN.
func (b *bench) good(domain, originPath string) (live, open time.Duration) {
	start := time.Now()
	b.patch(domain, originPath)
	pending := map[string]inventory.Edge{}
	for _, e := range b.stack.Inventory.Edges {
		pending[e.ID] = e
	}
	for poll := 0; len(pending) > 0; poll++ {
		if time.Since(start) > 5*time.Minute {
			log.Fatalf("change of %s to %s: %d edges not live after 5 min", domain, originPath, len(pending))
		}
		for id, e := range pending {
			if _, p := b.get(e, domain, fmt.Sprintf("/probe/%d.js", poll)); strings.HasPrefix(p, originPath+"/") {
				delete(pending, id)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	live = time.Since(start)
	return live, b.waitStatus(domain, "OPEN", start).Sub(start)
}

// bad patches domain to a failing originPath, waits for ERROR, and returns
// the time from the failed gate to the revert's end (history), and how
// many edges do not answer 200 under the previous originPath.
func (b *bench) bad(domain, originPath, previous string) (time.Duration, int) {
	start := time.Now()
	b.patch(domain, originPath)
	b.waitStatus(domain, "ERROR", start)
	left := 0
	for _, e := range b.stack.Inventory.Edges {
		if st, p := b.get(e, domain, fmt.Sprintf("/after/%d.js", start.UnixNano())); st != http.StatusOK || !strings.HasPrefix(p, previous+"/") {
			log.Printf("%s: edge %s answers %d from %q after the revert", domain, e.ID, st, p)
			left++
		}
	}
	return b.revertTime(domain), left
}

// revertTime reads domain's workflow history: the time from its last
// failed GateEdges to the next completed ApplySite (the revert).
func (b *bench) revertTime(domain string) time.Duration {
	it := b.stack.Temporal.GetWorkflowHistory(context.Background(), workflows.DistributionWorkflowID(appKey, domain), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	types := map[int64]string{}
	var failed, reverted time.Time
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			log.Fatal(err)
		}
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			types[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			if types[ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()] == "GateEdges" {
				failed, reverted = ev.GetEventTime().AsTime(), time.Time{}
			}
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			if !failed.IsZero() && reverted.IsZero() && types[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] == "ApplySite" {
				reverted = ev.GetEventTime().AsTime()
			}
		}
	}
	if failed.IsZero() || reverted.IsZero() {
		log.Fatalf("%s: no failed gate and revert in its history", domain)
	}
	return reverted.Sub(failed)
}

// get GETs host+path through edge e: the status and the origin path the
// answer came from.
func (b *bench) get(e inventory.Edge, host, path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Address+path, nil)
	req.Host = host
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Origin-Path")
}
