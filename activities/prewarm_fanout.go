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
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/inventory"
)

// PrewarmChunkInput is one activity's slice of a job's URLs on EVERY
// targeted edge (issue 19): the Temporal cost of a chunk — one activity,
// one result — does not grow with the number of edges. Per-pair attempts
// and the per-edge concurrency run inside the activity.
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
	Attempts       int               `json:"attempts"`
	AttemptTimeout time.Duration     `json:"attemptTimeout"`
	// Concurrency caps the connections in use per edge within this
	// activity, each carrying up to Prewarm.Pipeline GETs; each also takes
	// one of the worker's per-edge slots (Prewarm.PerEdge).
	Concurrency int `json:"concurrency"`
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
// each edge with its own Concurrency workers over the client's keep-alive
// pool of that edge, so a slow edge never holds back the others. Pairs are
// retried as in PrewarmBatch; progress of every pair is heartbeated, so a
// retry after a worker crash skips finished pairs on every edge. At the end
// each edge's rows are stored (payload.PrewarmDetailKey) and the result
// lists the failed indices per edge. Errors: an unknown edge, a missing
// URL list or a chunk outside it are non-retryable; a worker stop
// (ErrWorkerStopping) or a store failure is retried by Temporal.
func (a *Prewarm) PrewarmChunk(ctx context.Context, in PrewarmChunkInput) (PrewarmChunkResult, error) {
	log := a.Logger.With(zap.String("workflowId", activity.GetInfo(ctx).WorkflowExecution.ID), zap.Int("chunk", in.Chunk), zap.Int("edges", len(in.EdgeIDs))).With(tracing.LogFields(ctx)...)
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
		log.Info("resuming prewarm chunk", zap.Int("alreadyDone", n))
	}
	targets := make([]pairTarget, span) // parsed once, used on every edge
	for j := range targets {
		targets[j] = parseTarget(urls[in.Start+j])
	}
	header := http.Header{}
	for k, v := range in.Header {
		header.Set(k, v)
	}
	stopped := a.fanOut(ctx, in, edges, targets, header, p)
	res, err := a.finishChunk(ctx, in, edges, p, stopped)
	if err == nil {
		log.Debug("prewarm chunk done", zap.Int("pairs", span*len(edges)))
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

// fanOut runs every pair of the chunk that p has not finished: per edge,
// up to Concurrency workers take the next Pipeline URLs in order and send
// them pipelined on one connection (Prewarm.warmBatch), and each batch
// holds one of the edge's slots on this worker (Prewarm.PerEdge, shared
// by every chunk and job; waiting batches take them in turn) and one of
// the worker's (Prewarm.InFlight, over all edges). So the connections in
// use to an edge stay at PerEdge while chunks follow one another, a job's
// last chunk runs at the full width instead of a third of it, and a slow
// job holds an edge's slot for one batch at a time. It heartbeats p
// meanwhile and, when the worker is told to stop (SIGTERM), lets the pairs
// in flight finish and starts no more. It reports whether such a stop
// left pairs without an outcome.
func (a *Prewarm) fanOut(ctx context.Context, in PrewarmChunkInput, edges []inventory.Edge, targets []pairTarget, header http.Header, p *progress[fanRow]) (stopped bool) {
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
	stopBeat := beatWhile(ctx, func() { beatChunk(ctx, p.rows()) })
	defer stopBeat()
	var wg sync.WaitGroup
	for pos, e := range edges {
		pin := PrewarmBatchInput{EdgeID: e.ID, Domain: in.Domain, Scheme: in.Scheme, NeedInvalidate: in.NeedInvalidate,
			Attempts: in.Attempts, AttemptTimeout: in.AttemptTimeout}
		m := metricsFor(e.ID)
		f := a.Edge.Fetcher(ctx, e, header, in.AttemptTimeout)
		slots := a.slots.of(e.ID, a.PerEdge, defaultPrewarmPerEdge)
		next := new(atomic.Int64)
		for w := 0; w < min(max(in.Concurrency, 1), (span+depth-1)/depth); w++ {
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
					rows := a.warmBatch(ctx, e, pin, targets, js, f, m)
					release()
					if ctx.Err() != nil { // cut short is not an outcome: a resumed attempt redoes it
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

// finishChunk ends an attempt like finishBatch, for every edge of the
// chunk: after a worker stop or cancellation it records the progress for
// the next attempt and fails this one; otherwise it stores each edge's rows
// and classifies them.
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
	if err := ctx.Err(); err != nil {
		beatChunk(ctx, final)
		return PrewarmChunkResult{}, fmt.Errorf("prewarm chunk %d stopped: %w", in.Chunk, err)
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
