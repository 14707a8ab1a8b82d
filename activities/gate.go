package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/edge"
)

// ErrGateFailed: an edge a rollout wave changed answers worse than it did
// before the wave (GateEdges); the rollout stops and reverts.
const ErrGateFailed = "GateFailed"

// RolloutKnobs are the worker's settings for staged rollouts of
// distribution changes (config.Worker's Rollout*).
type RolloutKnobs struct {
	// Waves are cumulative shares (0, 1] of the serving edges, the last 1,
	// reached after a one-edge canary.
	Waves []float64 `json:"waves,omitempty"`
	// Bake is the wait after each wave but the last before its gate.
	Bake time.Duration `json:"bake,omitempty"`
	// HealthPath is what the gate requests through an edge for each host
	// of the distribution (path and optional query, starting with /).
	HealthPath string `json:"healthPath,omitempty"`
}

// RolloutFleet is what a rollout plan needs from the worker: its serving
// edges (inventory order) and its rollout knobs.
type RolloutFleet struct {
	Edges []string `json:"edges"`
	RolloutKnobs
}

// RolloutFleet answers this worker's serving edge ids and rollout knobs.
// A distribution workflow runs it as a local activity at the start of
// each staged change, so history records the plan's input and a replay
// plans the same waves.
func (a *Distribution) RolloutFleet(context.Context) (RolloutFleet, error) {
	return RolloutFleet{Edges: a.Inventory.IDs(), RolloutKnobs: a.Rollout}, nil
}

// EdgeStatus is the HTTP status one edge answered the gate's GET for one
// host.
type EdgeStatus struct {
	Edge   string `json:"edge"`
	Host   string `json:"host"`
	Status int    `json:"status"`
}

// GateInput is one health gate of a rollout: check the edges the last
// wave changed against their answers from before it, and record the
// answers of the edges of the next wave before it changes them.
type GateInput struct {
	Domain string `json:"domain"`
	// Hosts requested through each edge (the domain and some aliases).
	Hosts []string `json:"hosts"`
	// Path is the health path (RolloutKnobs.HealthPath).
	Path string `json:"path"`
	// Check holds the answers before the wave of the edges it changed.
	Check []EdgeStatus `json:"check,omitempty"`
	// Baseline names the edges whose answers to return (the next wave).
	Baseline []string `json:"baseline,omitempty"`
}

// gateTimeout bounds one gate GET through an edge.
const gateTimeout = 5 * time.Second

// gateConcurrency bounds the gate GETs in flight from one activity.
const gateConcurrency = 32

// maxGateReasons caps the failures a failed gate names.
const maxGateReasons = 5

// gateSeq makes each gate GET's query unique within the process.
var gateSeq atomic.Uint64

// GateEdges runs one health gate (GateInput). Each GET goes through the
// edge as a client's would (the control plane's normal fetch, not the
// cache-only probe) for Path plus a unique "cdnflow-gate" query, so the
// edge misses its cache and the origin path is exercised: origin, its
// certificate (the connector answers 502), the referrer rule (the GET
// sends "Referer: https://<domain>/", the distribution's own pages).
// Edges not serving in the worker's inventory are skipped.
//
// A GET without an HTTP answer within 5 s (a timeout, a refused
// connection) counts as status 0, "no answer". A checked edge fails when
// it now answers 5xx and did not before, 403 and did not before, or no
// answer where it answered before (a slow origin that never answered the
// health path does not block changes). Failures are a non-retryable
// ErrGateFailed naming up to 5 edge/host/status. It returns the answers
// of the Baseline edges; an error only when ctx ends.
func (a *Distribution) GateEdges(ctx context.Context, in GateInput) ([]EdgeStatus, error) {
	defer keepAlive(ctx)()
	log := logger(ctx, "domain", in.Domain)
	// An edge that left the inventory (or drains) since the plan is not
	// the distribution's any more (ApplySite skips it too): not probed.
	serving := map[string]bool{}
	for _, id := range a.Inventory.IDs() {
		serving[id] = true
	}
	var check, base []EdgeStatus
	for _, p := range in.Check {
		if serving[p.Edge] {
			check = append(check, p)
		}
	}
	for _, id := range in.Baseline {
		if !serving[id] {
			continue
		}
		for _, h := range in.Hosts {
			base = append(base, EdgeStatus{Edge: id, Host: h})
		}
	}
	if skipped := len(in.Check) - len(check); skipped > 0 {
		log.Info("rollout gate skips edges no longer serving", "skipped", skipped)
	}
	all := append(check[:len(check):len(check)], base...)
	now := make([]int, len(all))
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, gateConcurrency)
	for i, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := withSlot(ctx, a.slots(), func() error {
				var err error
				now[i], err = a.gateGet(ctx, p.Edge, p.Host, in.Domain, in.Path)
				return err
			})
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gate of %s: %w", in.Domain, err)
	}
	if err := firstErr.Load(); err != nil {
		log.Warn("rollout gate got no answer from some edges", "first", *err)
	}
	var failed []string
	for i, p := range check {
		if worse(p.Status, now[i]) {
			failed = append(failed, fmt.Sprintf("edge %s host %s answers %s (before: %s)", p.Edge, p.Host, answer(now[i]), answer(p.Status)))
		}
	}
	if len(failed) > 0 {
		log.Warn("rollout gate failed", "failed", len(failed), "checked", len(check), "first", failed[0])
		n := len(failed)
		if n > maxGateReasons {
			failed = append(failed[:maxGateReasons], fmt.Sprintf("and %d more", n-maxGateReasons))
		}
		return nil, temporal.NewNonRetryableApplicationError("rollout gate failed: "+strings.Join(failed, "; "), ErrGateFailed, nil)
	}
	for i := range base {
		base[i].Status = now[len(check)+i]
	}
	log.Info("rollout gate passed", "checked", len(check), "baseline", len(base))
	return base, nil
}

// noAnswer is the status of a gate GET that got no HTTP answer.
const noAnswer = 0

// answer is status as a gate reason shows it.
func answer(status int) string {
	if status == noAnswer {
		return "no answer"
	}
	return strconv.Itoa(status)
}

// worse reports whether answering now where the edge answered before is a
// regression: a new 5xx, a new 403, or no answer where there was one.
func worse(before, now int) bool {
	switch {
	case now == noAnswer:
		return before != noAnswer
	case now >= 500:
		return before < 500
	case now == 403:
		return before != 403
	}
	return false
}

// gateGet is the status edge id answers a GET of path for host; noAnswer
// with the reason when there was no HTTP answer.
func (a *Distribution) gateGet(ctx context.Context, id, host, domain, path string) (int, error) {
	e, ok := a.Inventory.Get(id)
	if !ok {
		return noAnswer, fmt.Errorf("edge %s: not in the edge inventory", id)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	r := edge.FetchRequest{
		Host: host, Path: fmt.Sprintf("%s%scdnflow-gate=%d-%d", path, sep, time.Now().UnixNano(), gateSeq.Add(1)),
		Header: map[string][]string{"Referer": {"https://" + domain + "/"}}, Timeout: gateTimeout,
	}
	res, err := a.Edges.Fetch(ctx, e, r)
	var se *edge.StatusError
	if errors.As(err, &se) {
		return se.Code, nil
	}
	if err != nil {
		return noAnswer, err
	}
	return res.Status, nil
}
