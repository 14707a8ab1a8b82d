package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/inventory"
)

// PrewarmBatchInput is one activity's slice of URLs on one edge.
type PrewarmBatchInput struct {
	JobID          string            `json:"jobId"`
	EdgeID         string            `json:"edgeId"`
	Domain         string            `json:"domain"`
	Scheme         string            `json:"scheme"`
	URLsKey        string            `json:"urlsKey"`
	Chunk          int               `json:"chunk"`
	Start          int               `json:"start"`
	End            int               `json:"end"`
	Header         map[string]string `json:"header,omitempty"`
	NeedInvalidate bool              `json:"needInvalidate,omitempty"`
	Attempts       int               `json:"attempts"`
	AttemptTimeout time.Duration     `json:"attemptTimeout"`
	Concurrency    int               `json:"concurrency"`
}

// PrewarmBatchResult lists the URL indices that failed; the rest succeeded.
// Per-pair details go to the payload store (payload.PrewarmDetailKey) for the edges view.
type PrewarmBatchResult struct {
	OK     int   `json:"ok"`
	Failed []int `json:"failed,omitempty"`
}

// PairDetail is the outcome of one URL on one edge: the record the batch
// activity stores per chunk (payload.PrewarmDetailKey) and the API's per-pair
// view reads.
type PairDetail struct {
	Index      int    `json:"i"`
	Status     int    `json:"status"`
	Cache      string `json:"cache,omitempty"`
	Age        int    `json:"age"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// Prewarm runs URL×edge pairs.
type Prewarm struct {
	Inventory *inventory.Inventory
	Edge      *edge.Client
	Store     payload.Store
	Logger    *zap.Logger

	// PerEdge caps the GETs in flight to one edge from this worker,
	// shared by every chunk of every prewarm job (0: defaultPrewarmPerEdge);
	// InFlight caps them over all edges (0: no cap but PerEdge's).
	PerEdge  int
	InFlight int
	// Pipeline is how many of a chunk's GETs to one edge go pipelined on
	// one connection, which then holds one PerEdge slot (0:
	// defaultPrewarmPipeline; 1: one GET per connection at a time).
	Pipeline int

	mu    sync.Mutex
	urls  map[string][]string // recently used URL lists, by payload key
	lru   []string
	slots edgeSlots
	all   chan struct{} // InFlight places, made on first use
	once  sync.Once
}

// defaultPrewarmPerEdge is PerEdge when unset: the in-flight GETs per edge
// at which bench/prewarm's raw client is fastest on varnishd.
const defaultPrewarmPerEdge = 64

// defaultPrewarmPipeline is Pipeline when unset, chosen with bench/prewarm
// -pipeline (docs/performance.md, "sixth pass").
const defaultPrewarmPipeline = 8

// LoadURLs reads a job's URL list once per process, not once per chunk.
func (a *Prewarm) LoadURLs(ctx context.Context, key string) ([]string, error) {
	a.mu.Lock()
	if list, ok := a.urls[key]; ok {
		a.mu.Unlock()
		return list, nil
	}
	a.mu.Unlock()
	list, err := payload.PrewarmURLs(ctx, a.Store, key)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.urls == nil {
		a.urls = map[string][]string{}
	}
	if _, ok := a.urls[key]; !ok {
		a.urls[key] = list
		a.lru = append(a.lru, key)
		if len(a.lru) > 8 {
			delete(a.urls, a.lru[0])
			a.lru = a.lru[1:]
		}
	}
	return list, nil
}

// PrewarmBatch fetches URLs [Start, End) through one edge. Each pair gets up
// to Attempts tries with exponential backoff, each bounded by
// AttemptTimeout; 4xx and uncacheable answers are not retried. Progress is
// heartbeated, so a retry after a worker crash skips finished pairs.
func (a *Prewarm) PrewarmBatch(ctx context.Context, in PrewarmBatchInput) (PrewarmBatchResult, error) {
	log := a.Logger.With(zap.String("workflowId", activity.GetInfo(ctx).WorkflowExecution.ID), zap.String("edgeId", in.EdgeID), zap.Int("chunk", in.Chunk)).With(tracing.LogFields(ctx)...)
	e, urls, err := a.batchInputs(ctx, in)
	if err != nil {
		return PrewarmBatchResult{}, err
	}
	p := resumeProgress(ctx, in.Start, in.End, func(d PairDetail) int { return d.Index })
	if n := len(p.rows()); n > 0 {
		log.Info("resuming prewarm chunk", zap.Int("alreadyDone", n))
	}
	header := http.Header{}
	for k, v := range in.Header {
		header.Set(k, v)
	}
	// A worker told to stop (SIGTERM) lets the pairs in flight finish,
	// records them and hands the rest to the next attempt at once instead
	// of working until it is killed.
	stopped, _ := runPool(ctx, p, in.Start, in.End, make(chan struct{}, max(in.Concurrency, 1)), true, func(i int) error {
		row := a.warmPair(ctx, e, in, urls[i], header)
		row.Index = i
		if ctx.Err() == nil { // cut short is not an outcome: a resumed attempt redoes it
			p.add(row)
		}
		return nil
	})
	res, err := a.finishBatch(ctx, in, p, stopped)
	if err == nil {
		log.Debug("prewarm chunk done", zap.Int("ok", res.OK), zap.Int("failed", len(res.Failed)))
	}
	return res, err
}

// batchInputs resolves a batch's edge and URL list; an unknown edge, a
// missing list or a chunk outside it can never succeed and is final.
func (a *Prewarm) batchInputs(ctx context.Context, in PrewarmBatchInput) (inventory.Edge, []string, error) {
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return e, nil, unknownEdge(in.EdgeID)
	}
	urls, err := a.LoadURLs(ctx, in.URLsKey)
	if err != nil {
		if errors.Is(err, payload.ErrNotFound) {
			return e, nil, temporal.NewNonRetryableApplicationError("url list missing: "+err.Error(), ErrPayloadMissing, err)
		}
		return e, nil, err
	}
	if in.Start < 0 || in.End > len(urls) || in.Start > in.End {
		return e, nil, temporal.NewNonRetryableApplicationError("chunk outside the url list", ErrBadChunk, nil)
	}
	return e, urls, nil
}

// finishBatch ends an attempt: after a worker stop or cancellation it
// records the progress for the next attempt and fails this one; otherwise
// it stores the chunk's rows (payload.PrewarmDetailKey) and classifies them.
func (a *Prewarm) finishBatch(ctx context.Context, in PrewarmBatchInput, p *progress[PairDetail], stopped bool) (PrewarmBatchResult, error) {
	final := p.rows()
	if stopped && ctx.Err() == nil {
		activity.RecordHeartbeat(ctx, final)
		// The SDK may send a throttled heartbeat asynchronously; the
		// attempt must not fail before it is recorded.
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return PrewarmBatchResult{}, temporal.NewApplicationError(
			fmt.Sprintf("prewarm chunk %d on %s: worker stopping after %d of %d pairs", in.Chunk, in.EdgeID, len(final), in.End-in.Start),
			ErrWorkerStopping)
	}
	if err := ctx.Err(); err != nil {
		activity.RecordHeartbeat(ctx, final)
		return PrewarmBatchResult{}, fmt.Errorf("prewarm chunk %d on %s stopped: %w", in.Chunk, in.EdgeID, err)
	}
	if len(final) != in.End-in.Start {
		return PrewarmBatchResult{}, fmt.Errorf("prewarm chunk %d on %s: %d of %d pairs have an outcome", in.Chunk, in.EdgeID, len(final), in.End-in.Start)
	}
	data, err := json.Marshal(final)
	if err != nil {
		return PrewarmBatchResult{}, fmt.Errorf("encode details: %w", err)
	}
	if err := a.Store.Put(ctx, payload.PrewarmDetailKey(in.JobID, in.URLsKey, in.EdgeID, in.Chunk), data); err != nil {
		activity.RecordHeartbeat(ctx, final)
		return PrewarmBatchResult{}, fmt.Errorf("store prewarm chunk %d details: %w", in.Chunk, err)
	}
	var res PrewarmBatchResult
	for _, r := range final {
		if r.Error != "" {
			res.Failed = append(res.Failed, r.Index)
		} else {
			res.OK++
		}
	}
	return res, nil
}

// warmPair runs one URL on one edge with retries.
func (a *Prewarm) warmPair(ctx context.Context, e inventory.Edge, in PrewarmBatchInput, rawURL string, header http.Header) PairDetail {
	return a.warmTarget(ctx, e, in, parseTarget(rawURL), a.Edge.Fetcher(ctx, e, header, in.AttemptTimeout), metricsFor(e.ID))
}

// pairTarget is a URL parsed once for every edge it is warmed on.
type pairTarget struct {
	key cachekey.Key
	u   *url.URL
	err string // why the URL cannot be warmed
}

// parseTarget parses rawURL into its canonical cache key (internal/cachekey):
// the request target and Host are what a browser sends for this URL, so
// the warmed object is the one visitors get.
func parseTarget(rawURL string) pairTarget {
	k, err := cachekey.Parse(rawURL)
	if err != nil {
		return pairTarget{err: "invalid url: " + err.Error()}
	}
	u, err := url.Parse(k.String())
	if err != nil {
		return pairTarget{err: "invalid url: " + err.Error()}
	}
	return pairTarget{key: k, u: u}
}

// pairMetrics are one edge's pair counters and fetch latency, looked up
// once per batch instead of once per pair.
type pairMetrics struct {
	success, failed prometheus.Counter
	fetch           prometheus.Observer
}

func metricsFor(edgeID string) pairMetrics {
	return pairMetrics{
		success: metrics.PrewarmPairs.WithLabelValues(edgeID, "success"),
		failed:  metrics.PrewarmPairs.WithLabelValues(edgeID, "failed"),
		fetch:   metrics.EdgeLatency.WithLabelValues(edgeID, "fetch"),
	}
}

// warmTarget runs one parsed URL on one edge with retries.
func (a *Prewarm) warmTarget(ctx context.Context, e inventory.Edge, in PrewarmBatchInput, t pairTarget, f *edge.Fetcher, m pairMetrics) PairDetail {
	return a.warmBatch(ctx, e, in, []pairTarget{t}, []int{0}, f, m)[0]
}

// warmBatch runs the pairs targets[js] on edge e, each with up to
// in.Attempts attempts: every attempt's GETs go pipelined on one of the
// edge's connections (edge.Fetcher.FetchBatch), and the pairs whose
// attempt failed with a retryable error go again together after a backoff
// (200 ms doubling, up to 6.4 s). With NeedInvalidate every attempt purges
// each pair before its GET, so a retry never counts a copy cached before
// the purge as warmed. A pair's DurationMS runs from the batch's start to
// its last answer (pipelined GETs wait for the ones before them on the
// connection). Rows are in js's order; metrics are counted unless ctx
// ended.
func (a *Prewarm) warmBatch(ctx context.Context, e inventory.Edge, in PrewarmBatchInput, targets []pairTarget, js []int, f *edge.Fetcher, m pairMetrics) []PairDetail {
	start := time.Now()
	rows := make([]PairDetail, len(js))
	reqs := make([]edge.FetchUnit, len(js))
	errs := make([]error, len(js))
	pending := make([]int, 0, len(js)) // rows still to fetch
	for k, j := range js {
		if t := targets[j]; t.err != "" {
			rows[k].Error = t.err
		} else {
			reqs[k].Scheme, reqs[k].Host, reqs[k].Path = pairRequest(in, e, t)
			pending = append(pending, k)
		}
	}
	attempts := max(in.Attempts, 1)
	backoff := 200 * time.Millisecond
	for attempt := 1; len(pending) > 0; attempt++ {
		began := time.Now()
		send := make([]int, 0, len(pending))
		for _, k := range pending {
			rows[k].Attempts, rows[k].DurationMS, errs[k] = attempt, -1, nil
			if in.NeedInvalidate {
				if err := a.Edge.Purge(ctx, e, reqs[k].Host, reqs[k].Path, false); err != nil {
					errs[k] = fmt.Errorf("invalidate: %w", err)
					continue
				}
			}
			send = append(send, k)
		}
		units := make([]edge.FetchUnit, len(send))
		for i, k := range send {
			units[i] = reqs[k]
		}
		for i, ans := range f.FetchBatch(ctx, units) {
			k := send[i]
			rows[k].Status, rows[k].Cache, rows[k].Age, errs[k] = ans.Result.Status, ans.Result.Cache, ans.Result.Age, ans.Err
			if ans.Result.Duration > 0 {
				rows[k].DurationMS = (began.Sub(start) + ans.Result.Duration).Milliseconds()
			}
		}
		next := pending[:0]
		for _, k := range pending {
			if rows[k].DurationMS < 0 { // no answer to time: a failed purge or transport
				rows[k].DurationMS = time.Since(start).Milliseconds()
			}
			rows[k].Error = ""
			if errs[k] == nil {
				continue
			}
			rows[k].Error = errs[k].Error()
			if edge.IsRetryable(errs[k]) && attempt < attempts && ctx.Err() == nil {
				next = append(next, k)
			}
		}
		pending = next
		if len(pending) > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			if backoff < 5*time.Second {
				backoff *= 2
			}
		}
	}
	if ctx.Err() == nil {
		for _, r := range rows {
			if r.Attempts == 0 {
				continue // an invalid URL: never sent
			}
			if r.Error != "" {
				m.failed.Inc()
			} else {
				m.success.Inc()
			}
			m.fetch.Observe(float64(r.DurationMS) / 1000 / float64(r.Attempts))
		}
	}
	return rows
}

// pairRequest is how a pair's GET reaches edge e: scheme, Host (as a
// browser sends it: the edge drops the port) and request target.
func pairRequest(in PrewarmBatchInput, e inventory.Edge, t pairTarget) (scheme, host, path string) {
	host, scheme = pairHostScheme(in, e, t.u)
	if host == t.key.Host {
		host = t.key.Authority()
	}
	return scheme, host, t.key.PathQuery
}
