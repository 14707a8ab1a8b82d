package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
)

// ErrEdgesPending is the (retryable) error type of a PurgeEdges attempt
// that left edges unconfirmed; its details are the []PurgeEdgeOutcome rows.
const ErrEdgesPending = "EdgesPending"

// Retries of one edge inside one PurgeEdges attempt: a blip
// (a reset connection, one 503) is retried here at once instead of costing
// the workflow an activity retry. Longer outages are retried by Temporal
// with the workflow's backoff, the attempt resuming from its heartbeat.
const (
	edgeTries      = 3
	edgeRetryFirst = 100 * time.Millisecond
)

// PurgeEdgesInput asks every listed edge to apply one purge seq: one
// activity per seq whatever the number of edges.
type PurgeEdgesInput struct {
	EdgeIDs []string `json:"edgeIds"`
	Hosts   []string `json:"hosts"`
	Type    string   `json:"type"`
	Paths   []string `json:"paths"`
	Soft    bool     `json:"soft,omitempty"`
	// Budget bounds one attempt (0: the activity's own deadline); edges
	// still unconfirmed then are reported, not waited for.
	Budget time.Duration `json:"budget,omitempty"`
	// Until (epoch ms; 0: none) is the purge's deadline: an attempt that
	// starts after it makes one pass and then succeeds with the edges still
	// unconfirmed, so the workflow gets every edge's state.
	Until int64 `json:"until,omitempty"`
	// Resume is what an earlier activity of the same seq confirmed (edges
	// and units); those are not sent again.
	Resume []PurgeEdgeOutcome `json:"resume,omitempty"`
}

// PurgeEdgeOutcome is one edge's state in a PurgeEdges attempt: the rows of
// its heartbeat details, its error details and its result.
type PurgeEdgeOutcome struct {
	EdgeID string `json:"edgeId"`
	// Confirmed: every unit applied and shown to have taken effect
	// (Verified says how).
	Confirmed bool   `json:"confirmed,omitempty"`
	Verified  string `json:"verified,omitempty"`
	// Error is the edge's last failure; Final means retrying cannot help
	// (unknown edge, a purge the edge client refuses to send).
	Error string `json:"error,omitempty"`
	Final bool   `json:"final,omitempty"`
	// Done lists the confirmed unit indices of an edge not Confirmed yet.
	Done []int `json:"done,omitempty"`
	// The edge's receipt: its last HTTP answer (receiptAnswer), what the
	// check after it saw (receiptProbe: MISS, BAN, TAG), when it confirmed
	// (epoch ms) and its tries over every attempt of the seq.
	Answer    string `json:"answer,omitempty"`
	Probe     string `json:"probe,omitempty"`
	AppliedAt int64  `json:"appliedAt,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
}

// PurgeEdgesResult has one row per input edge, in input order.
type PurgeEdgesResult struct {
	Edges []PurgeEdgeOutcome `json:"edges"`
}

// Pending reports whether any edge is neither confirmed nor finally failed.
func (r PurgeEdgesResult) Pending() bool {
	for _, e := range r.Edges {
		if !e.Confirmed && !e.Final {
			return true
		}
	}
	return false
}

// PurgeEdges runs every host×path unit of a purge on every listed edge
// inside one activity: each edge concurrently, at most PerEdge exchanges
// in flight to one edge over kept connections (ITEM PURGEs pipelined), each
// edge retried a few times at once (edgeTries). A unit counts as done only
// once the edge shows it took effect: an ITEM path after the PURGE and a
// cache-only probe (edge.Client.Probe) that finds no fresh copy cached
// before the purge; a WILDCARD or ALL ban after the edge's VCL answered
// that std.ban registered it ("Ban added"); a TAG after xkey answered its
// count. Per-edge rows are heartbeated (a retried attempt skips what they
// confirmed) and returned.
//
// Errors: a retryable ApplicationError of type ErrEdgesPending (details:
// the rows) while an edge is unconfirmed and Until has not passed, so
// Temporal retries the attempt with the workflow's backoff; the
// context's error when the attempt was cancelled or the worker stops.
func (a *Purge) PurgeEdges(ctx context.Context, in PurgeEdgesInput) (PurgeEdgesResult, error) {
	info := activity.GetInfo(ctx)
	run := newEdgeStates(in, a.resumeRows(ctx, info.IsLocalActivity, in))
	wctx, cancel := a.attemptContext(ctx, in.Budget, info.IsLocalActivity)
	defer cancel()
	stopBeat := func() {}
	if !info.IsLocalActivity {
		stopBeat = beatWhile(ctx, func() { activity.RecordHeartbeat(ctx, run.rows()) })
	}
	spec := purgeSpec{Hosts: in.Hosts, Type: in.Type, Paths: in.Paths, Soft: in.Soft}
	units := purgeUnits(spec)
	run.receipt = edgeReceipt{verified: verifiedText(spec, len(units)), answer: receiptAnswer(spec.Type, nil), probe: receiptProbe(spec.Type)}
	var wg sync.WaitGroup
	for i := range run.edges {
		if run.settled(i) {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a.purgeOneEdge(wctx, spec, units, run, i)
		}(i)
	}
	wg.Wait()
	stopBeat()
	res := PurgeEdgesResult{Edges: run.rows()}
	if !info.IsLocalActivity {
		activity.RecordHeartbeat(ctx, res.Edges)
	}
	logger(ctx).Info("purge pass over the edges", "edges", len(res.Edges), "pending", res.Pending(), "local", info.IsLocalActivity)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("purge pass stopped: %w", err)
	}
	if res.Pending() && !info.IsLocalActivity && (in.Until == 0 || time.Now().UnixMilli() < in.Until) {
		return res, temporal.NewApplicationError(pendingMessage(res.Edges), ErrEdgesPending, res.Edges)
	}
	return res, nil
}

// attemptContext bounds one attempt by budget and, for a regular activity,
// by the worker being told to stop (the attempt then ends and its retry
// resumes from the heartbeat on another worker).
func (a *Purge) attemptContext(ctx context.Context, budget time.Duration, local bool) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	if budget > 0 {
		wctx, cancel = context.WithTimeout(ctx, budget)
	}
	if local {
		return wctx, cancel
	}
	stopping := activity.GetWorkerStopChannel(ctx)
	go func() {
		select {
		case <-stopping:
			cancel()
		case <-wctx.Done():
		}
	}()
	return wctx, cancel
}

// resumeRows are the rows an earlier attempt heartbeated, else in.Resume.
func (a *Purge) resumeRows(ctx context.Context, local bool, in PurgeEdgesInput) []PurgeEdgeOutcome {
	if !local && activity.HasHeartbeatDetails(ctx) {
		var prev []PurgeEdgeOutcome
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			return prev
		}
	}
	return in.Resume
}

// pendingMessage names every unconfirmed edge with its last error, so the
// activity's last failure says why (readers take each edge's error from
// the rows, never from this text).
func pendingMessage(rows []PurgeEdgeOutcome) string {
	var parts []string
	for _, r := range rows {
		if !r.Confirmed && !r.Final {
			parts = append(parts, fmt.Sprintf("%s: %s", r.EdgeID, r.Error))
		}
	}
	return fmt.Sprintf("%d edges not confirmed yet: %s", len(parts), strings.Join(parts, "; "))
}

// purgeOneEdge applies the units edge i has not confirmed, retrying the
// edge up to edgeTries times with a short backoff, and records the outcome.
func (a *Purge) purgeOneEdge(ctx context.Context, spec purgeSpec, units []purgeUnit, run *edgeStates, i int) {
	id := run.edges[i].EdgeID
	e, ok := a.Inventory.Get(id)
	if !ok {
		run.fail(i, unknownEdge(id).Error(), true)
		return
	}
	wait := cmp.Or(a.retryFirst, edgeRetryFirst)
	for try := 1; ; try++ {
		run.tried(i)
		err := a.edgeUnits(ctx, e, spec, units, run, i)
		if err == nil {
			run.confirm(i)
			return
		}
		run.answered(i, receiptAnswer(spec.Type, err))
		var appErr *temporal.ApplicationError
		final := errors.As(err, &appErr) && appErr.NonRetryable()
		if ctx.Err() == nil || run.errorOf(i) == "" {
			run.fail(i, err.Error(), final)
		}
		if final || try >= edgeTries || ctx.Err() != nil {
			logger(ctx, "edgeId", id).Debug("purge on edge not confirmed in this attempt", "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 3
	}
}

// edgeUnits sends the units edge i still owes, at most PerEdge requests
// (ITEM: pipelined batches) at once — the slots are shared with every
// purge on this worker — and returns the first error after the requests
// in flight finished. A few long-lived senders per edge take the units in
// order (a goroutine per unit cost a large purge a tenth of its CPU in
// stack growth).
func (a *Purge) edgeUnits(ctx context.Context, e inventory.Edge, in purgeSpec, units []purgeUnit, run *edgeStates, i int) error {
	todo := run.todo(i, len(units))
	slots := a.slot(e.ID)
	m := a.unitMetrics(e.ID, in.Type)
	done := func(u int) { run.unitDone(i, u) }
	size := batchSize(in.Type, len(todo))
	senders := min(cap(slots), (len(todo)+size-1)/size)
	if senders <= 1 {
		// One batch (a single-URL purge: most of them): sent from this
		// goroutine, without senders and their channel.
		return a.sendBatch(ctx, e, in, units, todo, slots, m, done)
	}
	var mu sync.Mutex
	var first error
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	next := make(chan []int)
	var wg sync.WaitGroup
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range next {
				if err := a.sendBatch(ctx, e, in, units, batch, slots, m, done); err != nil {
					fail(err)
				}
			}
		}()
	}
	var stopped error
feed:
	for len(todo) > 0 && !failed() {
		n := min(size, len(todo))
		select {
		case next <- todo[:n:n]:
			todo = todo[n:]
		case <-ctx.Done():
			stopped = fmt.Errorf("purge on %s: %w", e.ID, ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if stopped != nil {
		return stopped
	}
	return first
}

// pipelineDepth is the most ITEM units one sender pipelines on one
// connection (edge.PurgeVerifiedBatch); other types send one request at a
// time (a ban's answer depends on the one before it only through the
// edge's ban list, but they are few).
const pipelineDepth = 32

// batchSize is the units one sender takes at once: ITEM units in batches
// of up to pipelineDepth, spread over at least four senders.
func batchSize(purgeType string, units int) int {
	if purgeType != PurgeItem {
		return 1
	}
	return min(pipelineDepth, max(1, (units+3)/4))
}

// edgeMetrics are one edge's purge metric children, looked up once per
// pass instead of once per request.
type edgeMetrics struct {
	latency      prometheus.Observer
	done, failed prometheus.Counter
}

// record counts one unit's outcome and latency (s); it reports success.
func (m edgeMetrics) record(err error, seconds float64) bool {
	m.latency.Observe(seconds)
	if err != nil {
		m.failed.Inc()
		return false
	}
	m.done.Inc()
	return true
}

// unitMetrics are edge edgeID's metric children for purgeType, looked up
// in the registry once per edge and type for the process (a fleet-wide
// purge would otherwise hash three label sets per edge per pass). The
// cache holds what the registry holds: inventory edges × purge types.
func (a *Purge) unitMetrics(edgeID, purgeType string) edgeMetrics {
	key := metricKey{edgeID, purgeType}
	a.metricsMu.Lock()
	defer a.metricsMu.Unlock()
	if m, ok := a.metrics[key]; ok {
		return m
	}
	m := edgeMetrics{
		latency: metrics.EdgeLatency.WithLabelValues(edgeID, "purge"),
		done:    metrics.PurgeUnits.WithLabelValues(edgeID, purgeType, "done"),
		failed:  metrics.PurgeUnits.WithLabelValues(edgeID, purgeType, "failed"),
	}
	if a.metrics == nil {
		a.metrics = map[metricKey]edgeMetrics{}
	}
	a.metrics[key] = m
	return m
}

// metricKey names one edge's purge metric children: edge ID, purge type.
type metricKey struct{ edgeID, purgeType string }

// sendBatch applies the units of batch on e within one of the edge's
// slots: ITEM units pipelined on one connection (sendItems), others one
// by one; done(u) marks each unit confirmed. It returns the first error.
func (a *Purge) sendBatch(ctx context.Context, e inventory.Edge, in purgeSpec, units []purgeUnit, batch []int, slots chan struct{}, m edgeMetrics, done func(int)) error {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("purge on %s: %w", e.ID, ctx.Err())
	}
	defer func() { <-slots }()
	if in.Type == PurgeItem {
		return a.sendItems(ctx, e, in, units, batch, m, done)
	}
	var first error
	for _, u := range batch {
		started := time.Now()
		err := a.apply(ctx, e, in, units[u].host, units[u].path)
		if m.record(err, time.Since(started).Seconds()) {
			done(u)
		}
		first = cmp.Or(first, err)
	}
	return first
}

// sendItems purges the ITEM units of batch with one pipelined exchange
// (edge.Client.PurgeVerifiedBatch) and confirms each unit as apply does:
// by the probe the edge answered with its PURGE (no fresh copy older than
// the purge), or by a separate probe when the edge answered a plain
// "Purged". A unit without an answer is not confirmed.
func (a *Purge) sendItems(ctx context.Context, e inventory.Edge, in purgeSpec, units []purgeUnit, batch []int, m edgeMetrics, done func(int)) error {
	req := make([]edge.PurgeUnit, len(batch))
	for k, u := range batch {
		req[k] = edge.PurgeUnit{Host: units[u].host, Path: units[u].path}
	}
	started := time.Now()
	answers := a.Edge.PurgeVerifiedBatch(ctx, e, req, in.Soft)
	// Each answer came within the exchange's time.
	took := time.Since(started).Seconds()
	var first error
	for k, ans := range answers {
		u := batch[k]
		err := ans.Err
		if err == nil && ans.Verified {
			err = staleCopy(e, req[k].Host, req[k].Path, ans.Probe, ans.Sent)
		} else if err == nil {
			err = a.verifyGone(ctx, e, req[k].Host, req[k].Path, ans.Sent)
		}
		if errors.Is(err, edge.ErrInvalidRequest) {
			err = temporal.NewNonRetryableApplicationError(err.Error(), ErrBadPurge, err)
		}
		if m.record(err, took) {
			done(u)
		}
		first = cmp.Or(first, err)
	}
	return first
}

// edgeStates is the state of every edge of one attempt; safe for
// concurrent use.
type edgeStates struct {
	mu    sync.Mutex
	edges []PurgeEdgeOutcome
	// done holds each unconfirmed edge's confirmed units (nil: none yet).
	done []map[int]bool
	// receipt is what a confirmed edge's row says (the same for every
	// edge of the pass).
	receipt edgeReceipt
}

// edgeReceipt is a confirmed edge's Verified, Answer and Probe.
type edgeReceipt struct{ verified, answer, probe string }

func newEdgeStates(in PurgeEdgesInput, resume []PurgeEdgeOutcome) *edgeStates {
	prev := map[string]PurgeEdgeOutcome{}
	for _, r := range resume {
		prev[r.EdgeID] = r
	}
	f := &edgeStates{edges: make([]PurgeEdgeOutcome, len(in.EdgeIDs)), done: make([]map[int]bool, len(in.EdgeIDs))}
	for i, id := range in.EdgeIDs {
		r := prev[id]
		r.EdgeID = id
		for _, u := range r.Done {
			f.markDone(i, u)
		}
		r.Done = nil
		f.edges[i] = r
	}
	return f
}

func (f *edgeStates) settled(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.edges[i].Confirmed || f.edges[i].Final
}

func (f *edgeStates) todo(i, n int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]int, 0, n-len(f.done[i]))
	for u := 0; u < n; u++ {
		if !f.done[i][u] {
			out = append(out, u)
		}
	}
	return out
}

func (f *edgeStates) unitDone(i, u int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markDone(i, u)
}

// markDone records unit u of edge i as confirmed; f.mu is held or f not
// shared yet.
func (f *edgeStates) markDone(i, u int) {
	if f.done[i] == nil {
		f.done[i] = map[int]bool{}
	}
	f.done[i][u] = true
}

// confirm records edge i as confirmed, with the pass's receipt.
func (f *edgeStates) confirm(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[i].Confirmed, f.edges[i].Verified, f.edges[i].Error = true, f.receipt.verified, ""
	f.edges[i].Answer, f.edges[i].Probe, f.edges[i].AppliedAt = f.receipt.answer, f.receipt.probe, time.Now().UnixMilli()
	f.done[i] = nil
}

// tried counts one more try of edge i.
func (f *edgeStates) tried(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[i].Attempts++
}

// answered records edge i's last answer of a failed try.
func (f *edgeStates) answered(i int, answer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[i].Answer = answer
}

// receiptAnswer is a receipt's HTTP answer: what the edge VCL answers a
// unit that took effect (edge/vcl: "Purged", "Ban added", xkey's count),
// the status of a *edge.StatusError, or "no answer" for a transport error.
func receiptAnswer(purgeType string, err error) string {
	var se *edge.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%d", se.Code)
	case err != nil:
		return "no answer"
	case purgeType == PurgeItem:
		return "200 Purged"
	case purgeType == PurgeTag:
		return "200 Purged (xkey)"
	}
	return "200 Ban added"
}

// receiptProbe is what showed a confirmed edge's purge took effect: MISS
// for ITEM (the cache-only probe finds no copy cached before the purge),
// TAG for xkey purges, BAN for WILDCARD and ALL bans.
func receiptProbe(purgeType string) string {
	switch purgeType {
	case PurgeItem:
		return "MISS"
	case PurgeTag:
		return "TAG"
	}
	return "BAN"
}

func (f *edgeStates) fail(i int, msg string, final bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[i].Error, f.edges[i].Final = msg, final
}

func (f *edgeStates) errorOf(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.edges[i].Error
}

// rows is a copy of every edge's state with its confirmed units.
func (f *edgeStates) rows() []PurgeEdgeOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PurgeEdgeOutcome, len(f.edges))
	for i, r := range f.edges {
		r.Done = nil
		if !r.Confirmed && len(f.done[i]) > 0 {
			for u := range f.done[i] {
				r.Done = append(r.Done, u)
			}
			sort.Ints(r.Done)
		}
		out[i] = r
	}
	return out
}
