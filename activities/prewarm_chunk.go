package activities

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
)

// PrewarmChunkInput is one activity's slice of a job's URLs on every
// targeted edge: the Temporal cost of a chunk — one activity, one result —
// does not grow with the number of edges. It carries what the job asked
// for; per-pair attempts, their timeout and the per-edge connections are
// the worker's (Prewarm.Attempts, AttemptTimeout, PerEdge).
type PrewarmChunkInput struct {
	JobID   string   `json:"jobId"`
	EdgeIDs []string `json:"edgeIds"`
	Domain  string   `json:"domain"`
	Scheme  string   `json:"scheme"`
	URLsKey string   `json:"urlsKey"`
	// Chunk numbers the slice: the per-edge rows are stored under
	// payload.PrewarmDetailKey(JobID, URLsKey, edge, Chunk).
	Chunk          int               `json:"chunk"`
	Start          int               `json:"start"`
	End            int               `json:"end"`
	Header         map[string]string `json:"header,omitempty"`
	NeedInvalidate bool              `json:"needInvalidate,omitempty"`
	// Deadline is the job's: a pair without an outcome by then has none,
	// and the chunk ends with ErrJobDeadline (zero: no deadline but the
	// activity's own).
	Deadline time.Time `json:"deadline,omitempty"`
}

// EdgeChunkResult is one edge's share of a chunk: how many URLs it
// stored and the indices (into the job's URL list) that failed after
// retries.
type EdgeChunkResult struct {
	EdgeID string `json:"edgeId"`
	OK     int    `json:"ok"`
	Failed []int  `json:"failed,omitempty"`
}

// PrewarmChunkResult has one EdgeChunkResult per input edge, in input
// order.
type PrewarmChunkResult struct {
	Edges []EdgeChunkResult `json:"edges"`
}

// fanRow is one pair's outcome as PrewarmChunk heartbeats it: the edge's
// id and the pair's detail (index i into the job's URL list).
type fanRow struct {
	Edge string `json:"edge"`
	PairDetail
}

// PrewarmChunk fetches URLs [Start, End) through every edge of EdgeIDs,
// each edge with its own PerEdge workers over the client's keep-alive
// pool of that edge, so a slow edge never holds back the others. Each
// pair gets up to the worker's Attempts tries with exponential backoff,
// each bounded by its AttemptTimeout; 4xx and uncacheable answers are not retried. Progress of
// every pair is heartbeated, so a retry after a worker crash skips
// finished pairs on every edge. At the end each edge's rows are stored
// (payload.PrewarmDetailKey) and the result lists the failed indices per
// edge. Errors: an unknown edge, a missing URL list or a chunk outside it
// are non-retryable; so is ErrJobDeadline, when the job's Deadline came
// before every pair had an outcome (those pairs have none: the job ends
// TIMEOUT); a worker stop (ErrWorkerStopping) or a store failure is
// retried by Temporal.
func (a *Prewarm) PrewarmChunk(ctx context.Context, in PrewarmChunkInput) (PrewarmChunkResult, error) {
	log := logger(ctx, "chunk", in.Chunk, "edges", len(in.EdgeIDs))
	if !in.Deadline.IsZero() {
		// The activity's own deadline counts from when the server
		// scheduled it, after the job's clock started: on a busy
		// machine it lands later than the job's.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, in.Deadline)
		defer cancel()
	}
	edges, urls, err := a.chunkInputs(ctx, in)
	if err != nil {
		return PrewarmChunkResult{}, err
	}
	span := in.End - in.Start
	pos := make(map[string]int, len(edges))
	for i, e := range edges {
		pos[e.ID] = i
	}
	p := restoreProgress(lastChunkRows(ctx), 0, span*len(edges), func(r fanRow) int {
		if i, ok := pos[r.Edge]; ok && r.Index >= in.Start && r.Index < in.End {
			return i*span + r.Index - in.Start
		}
		return -1 // not this chunk's
	})
	if n := len(p.rows()); n > 0 {
		log.Info("resuming prewarm chunk", "alreadyDone", n)
	}
	targets := make([]pairTarget, span) // parsed once, used on every edge
	for j := range targets {
		targets[j] = parseTarget(urls[in.Start+j])
	}
	header := http.Header{}
	for k, v := range in.Header {
		header.Set(k, v)
	}
	stopped := false
	for _, tier := range a.prewarmTiers(edges) { // shields first (prewarm_tiers.go)
		if stopped = a.fanOut(ctx, in, edges, tier, targets, header, p); stopped || ctx.Err() != nil {
			break
		}
	}
	res, err := a.finishChunk(ctx, in, edges, p, stopped)
	if err == nil {
		log.Debug("prewarm chunk done", "pairs", span*len(edges))
	}
	return res, err
}

// chunkInputs resolves a chunk's edges and URL list; an unknown edge, a
// missing list or a chunk outside it can never succeed and is final.
func (a *Prewarm) chunkInputs(ctx context.Context, in PrewarmChunkInput) ([]inventory.Edge, []string, error) {
	edges := make([]inventory.Edge, len(in.EdgeIDs))
	for i, id := range in.EdgeIDs {
		e, ok := a.Inventory.Get(id)
		if !ok {
			return nil, nil, unknownEdge(id)
		}
		edges[i] = e
	}
	urls, err := a.LoadURLs(ctx, in.URLsKey)
	if err != nil {
		if errors.Is(err, payload.ErrNotFound) {
			return nil, nil, temporal.NewNonRetryableApplicationError("url list missing: "+err.Error(), ErrPayloadMissing, err)
		}
		return nil, nil, err
	}
	if in.Start < 0 || in.End > len(urls) || in.Start > in.End {
		return nil, nil, temporal.NewNonRetryableApplicationError("chunk outside the url list", ErrBadChunk, nil)
	}
	return edges, urls, nil
}

// fanOut spreads the chunk across the edges at positions tier: it runs
// every pair of those edges that p has not finished, per edge
// up to PerEdge workers take the next Pipeline URLs in order and send
// them pipelined on one connection as one batch (Prewarm.warmBatch), and each batch
// holds one of the edge's slots on this worker (Prewarm.PerEdge, shared
// by every chunk and job; waiting batches take them in turn) and one of
// the worker's (Prewarm.InFlight, over all edges). So the connections in
// use to an edge stay at PerEdge while chunks follow one another, a job's
// last chunk runs at the full width instead of a third of it, and a slow
// job holds an edge's slot for one batch at a time. It heartbeats p
// meanwhile and, when the worker is told to stop (SIGTERM), lets the pairs
// in flight finish and starts no more. It reports whether such a stop
// left pairs without an outcome.
func (a *Prewarm) fanOut(ctx context.Context, in PrewarmChunkInput, edges []inventory.Edge, tier []int, targets []pairTarget, header http.Header, p *progress[fanRow]) (stopped bool) {
	span := len(targets)
	var stop atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-activity.GetWorkerStopChannel(ctx):
			stop.Store(true)
		case <-done:
		}
	}()
	depth := max(cmp.Or(a.Pipeline, defaultPrewarmPipeline), 1)
	width := max(cmp.Or(a.PerEdge, defaultPrewarmPerEdge), 1)
	stopBeat := beatWhile(ctx, func() { beatChunk(ctx, p.rows()) })
	defer stopBeat()
	var wg sync.WaitGroup
	for _, pos := range tier {
		e := edges[pos]
		spec := warmSpec{Domain: in.Domain, Scheme: in.Scheme, NeedInvalidate: in.NeedInvalidate, Attempts: a.Attempts}
		m := metricsFor(e.ID)
		f := a.Edge.Fetcher(ctx, e, header, a.AttemptTimeout)
		slots := a.slots.of(e.ID, a.PerEdge, defaultPrewarmPerEdge)
		next := new(atomic.Int64)
		for w := 0; w < min(width, (span+depth-1)/depth); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each worker's batches hang their cancel hooks and GET
				// timeouts on a context of its own, not all on the
				// activity's (whose lock every one would otherwise take).
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				js := make([]int, 0, depth)
				for !stop.Load() && ctx.Err() == nil {
					j0 := int(next.Add(int64(depth))) - depth
					if j0 >= span {
						return
					}
					js = js[:0]
					for j := j0; j < min(j0+depth, span); j++ {
						if !p.has(pos*span + j) {
							js = append(js, j)
						}
					}
					if len(js) == 0 {
						continue
					}
					release, ok := a.takeSlot(ctx, slots)
					if !ok {
						return
					}
					rows, cut := a.warmBatch(ctx, e, spec, targets, js, f, m)
					release()
					if cut { // not an outcome: a resumed attempt redoes it
						return
					}
					for k, row := range rows {
						row.Index = in.Start + js[k]
						p.add(fanRow{Edge: e.ID, PairDetail: row})
					}
				}
			}()
		}
	}
	wg.Wait()
	return stop.Load() && p.count() < span*len(edges)
}

// takeSlot waits for one of the edge's slots, then one of the worker's
// InFlight places (always in that order); release gives both back. ok is
// false when ctx ended first.
func (a *Prewarm) takeSlot(ctx context.Context, edge chan struct{}) (release func(), ok bool) {
	select {
	case edge <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	a.once.Do(func() {
		if a.InFlight > 0 {
			a.all = make(chan struct{}, a.InFlight)
		}
	})
	if a.all == nil {
		return func() { <-edge }, true
	}
	select {
	case a.all <- struct{}{}:
	case <-ctx.Done():
		<-edge
		return nil, false
	}
	return func() { <-a.all; <-edge }, true
}

// finishChunk ends an attempt: after a worker stop, a cancellation or the
// job's deadline it records the progress for the next attempt and fails
// this one; otherwise it stores each edge's rows and classifies them.
func (a *Prewarm) finishChunk(ctx context.Context, in PrewarmChunkInput, edges []inventory.Edge, p *progress[fanRow], stopped bool) (PrewarmChunkResult, error) {
	final := p.rows()
	total := (in.End - in.Start) * len(edges)
	if stopped && ctx.Err() == nil {
		beatChunk(ctx, final)
		select { // a throttled heartbeat is sent asynchronously
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return PrewarmChunkResult{}, temporal.NewApplicationError(
			fmt.Sprintf("prewarm chunk %d: worker stopping after %d of %d pairs", in.Chunk, len(final), total), ErrWorkerStopping)
	}
	if cutShort(ctx) {
		beatChunk(ctx, final)
		return PrewarmChunkResult{}, a.stopped(ctx, in, len(final), total)
	}
	if len(final) != total {
		return PrewarmChunkResult{}, fmt.Errorf("prewarm chunk %d: %d of %d pairs have an outcome", in.Chunk, len(final), total)
	}
	per := make([][]PairDetail, len(edges))
	for k, r := range final { // ordered by edge position, then index
		per[k/(in.End-in.Start)] = append(per[k/(in.End-in.Start)], r.PairDetail)
	}
	if err := a.storeRows(ctx, in, edges, per); err != nil {
		beatChunk(ctx, final)
		if cutShort(ctx) {
			return PrewarmChunkResult{}, a.stopped(ctx, in, len(final), total)
		}
		return PrewarmChunkResult{}, err
	}
	res := PrewarmChunkResult{Edges: make([]EdgeChunkResult, len(edges))}
	for pos, e := range edges {
		r := EdgeChunkResult{EdgeID: e.ID}
		for _, d := range per[pos] {
			if d.Error != "" {
				r.Failed = append(r.Failed, d.Index)
			} else {
				r.OK++
			}
		}
		res.Edges[pos] = r
	}
	if err := PutChunkSummary(ctx, a.Store, in, res); err != nil {
		beatChunk(ctx, final)
		return PrewarmChunkResult{}, err
	}
	return res, nil
}

// stopped is the error of an attempt that ctx cut short: ErrJobDeadline
// when the job's deadline came (the pairs left have no outcome), else
// ctx's error (a cancellation or the activity's own timeout).
func (a *Prewarm) stopped(ctx context.Context, in PrewarmChunkInput, done, total int) error {
	if !in.Deadline.IsZero() && !time.Now().Before(in.Deadline) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("prewarm chunk %d: the job's deadline came after %d of %d pairs", in.Chunk, done, total), ErrJobDeadline, nil)
	}
	return fmt.Errorf("prewarm chunk %d stopped after %d of %d pairs: %w", in.Chunk, done, total, cmp.Or(ctx.Err(), context.DeadlineExceeded))
}

// storeRows writes each edge's rows of the chunk, a few edges at a time.
func (a *Prewarm) storeRows(ctx context.Context, in PrewarmChunkInput, edges []inventory.Edge, per [][]PairDetail) error {
	errs := make([]error, len(edges))
	slots := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for pos, e := range edges {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			data, err := json.Marshal(per[pos])
			if err == nil {
				err = a.Store.Put(ctx, payload.PrewarmDetailKey(in.JobID, in.URLsKey, e.ID, in.Chunk), data)
			}
			if err != nil {
				errs[pos] = fmt.Errorf("store prewarm chunk %d details of %s: %w", in.Chunk, e.ID, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
