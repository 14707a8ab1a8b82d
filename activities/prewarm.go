package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// PairDetail is the outcome of one URL on one edge.
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

	mu   sync.Mutex
	urls map[string][]string // recently used URL lists, by payload key
	lru  []string
}

// LoadURLs reads a job's URL list once per process, not once per chunk.
func (a *Prewarm) LoadURLs(ctx context.Context, key string) ([]string, error) {
	a.mu.Lock()
	if list, ok := a.urls[key]; ok {
		a.mu.Unlock()
		return list, nil
	}
	a.mu.Unlock()
	data, err := a.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decode url list %s: %w", key, err)
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
func (a *Prewarm) PrewarmBatch(ctx context.Context, in workflows.PrewarmBatchInput) (workflows.PrewarmBatchResult, error) {
	info := activity.GetInfo(ctx)
	log := a.Logger.With(zap.String("workflowId", info.WorkflowExecution.ID), zap.String("edgeId", in.EdgeID), zap.Int("chunk", in.Chunk))
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return workflows.PrewarmBatchResult{}, temporal.NewNonRetryableApplicationError("edge "+in.EdgeID+" is not in the inventory", "UnknownEdge", nil)
	}
	urls, err := a.LoadURLs(ctx, in.URLsKey)
	if err != nil {
		if errors.Is(err, payload.ErrNotFound) {
			return workflows.PrewarmBatchResult{}, temporal.NewNonRetryableApplicationError("url list missing: "+err.Error(), "PayloadMissing", err)
		}
		return workflows.PrewarmBatchResult{}, err
	}
	if in.Start < 0 || in.End > len(urls) || in.Start > in.End {
		return workflows.PrewarmBatchResult{}, temporal.NewNonRetryableApplicationError("chunk outside the url list", "BadChunk", nil)
	}

	rows := map[int]PairDetail{}
	if activity.HasHeartbeatDetails(ctx) {
		var prev []PairDetail
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			for _, r := range prev {
				rows[r.Index] = r
			}
			log.Info("resuming prewarm chunk", zap.Int("alreadyDone", len(prev)))
		}
	}
	var mu sync.Mutex
	snapshot := func() []PairDetail {
		mu.Lock()
		defer mu.Unlock()
		out := make([]PairDetail, 0, len(rows))
		for _, r := range rows {
			out = append(out, r)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
		return out
	}
	stopBeat := beatWhile(ctx, func() { activity.RecordHeartbeat(ctx, snapshot()) })

	header := http.Header{}
	for k, v := range in.Header {
		header.Set(k, v)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	conc := in.Concurrency
	if conc < 1 {
		conc = 1
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				row := a.warmPair(ctx, e, in, urls[i], header)
				row.Index = i
				if ctx.Err() != nil {
					continue // cut short, not an outcome: a resumed attempt redoes it
				}
				mu.Lock()
				rows[i] = row
				mu.Unlock()
			}
		}()
	}
	// A worker told to stop (SIGTERM) lets the pairs in flight finish,
	// records them and hands the rest to the next attempt at once instead
	// of working until it is killed.
	stopping := activity.GetWorkerStopChannel(ctx)
	workerStopped := false
feed:
	for i := in.Start; i < in.End; i++ {
		mu.Lock()
		_, done := rows[i]
		mu.Unlock()
		if done {
			continue
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		case <-stopping:
			workerStopped = true
			break feed
		}
	}
	close(work)
	wg.Wait()
	stopBeat()
	final := snapshot()
	if workerStopped && ctx.Err() == nil {
		activity.RecordHeartbeat(ctx, final)
		// The SDK may send a throttled heartbeat asynchronously; the
		// attempt must not fail before it is recorded.
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return workflows.PrewarmBatchResult{}, temporal.NewApplicationError(
			fmt.Sprintf("prewarm chunk %d on %s: worker stopping after %d of %d pairs", in.Chunk, in.EdgeID, len(final), in.End-in.Start),
			"WorkerStopping")
	}
	if err := ctx.Err(); err != nil {
		activity.RecordHeartbeat(ctx, final)
		return workflows.PrewarmBatchResult{}, fmt.Errorf("prewarm chunk %d on %s stopped: %w", in.Chunk, in.EdgeID, err)
	}
	if len(final) != in.End-in.Start {
		return workflows.PrewarmBatchResult{}, fmt.Errorf("prewarm chunk %d on %s: %d of %d pairs have an outcome", in.Chunk, in.EdgeID, len(final), in.End-in.Start)
	}
	data, err := json.Marshal(final)
	if err != nil {
		return workflows.PrewarmBatchResult{}, fmt.Errorf("encode details: %w", err)
	}
	if err := a.Store.Put(ctx, workflows.PrewarmDetailKey(in.JobID, in.EdgeID, in.Chunk), data); err != nil {
		activity.RecordHeartbeat(ctx, final)
		return workflows.PrewarmBatchResult{}, err
	}
	var res workflows.PrewarmBatchResult
	for _, r := range final {
		if r.Error != "" {
			res.Failed = append(res.Failed, r.Index)
		} else {
			res.OK++
		}
	}
	log.Debug("prewarm chunk done", zap.Int("ok", res.OK), zap.Int("failed", len(res.Failed)))
	return res, nil
}

// warmPair runs one URL on one edge with retries.
func (a *Prewarm) warmPair(ctx context.Context, e inventory.Edge, in workflows.PrewarmBatchInput, rawURL string, header http.Header) PairDetail {
	start := time.Now()
	row := PairDetail{}
	u, err := url.Parse(rawURL)
	if err != nil {
		row.Error = "invalid url: " + err.Error()
		return row
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	attempts := in.Attempts
	if attempts < 1 {
		attempts = 1
	}
	host, scheme := pairHostScheme(in, e, u)
	backoff := 200 * time.Millisecond
	for attempt := 1; attempt <= attempts; attempt++ {
		row.Attempts = attempt
		err = nil
		if in.NeedInvalidate && attempt == 1 {
			if perr := a.Edge.Purge(ctx, e, host, path, false); perr != nil {
				err = fmt.Errorf("invalidate: %w", perr)
			}
		}
		if err == nil {
			var res edge.FetchResult
			res, err = a.Edge.Fetch(ctx, e, edge.FetchRequest{Scheme: scheme, Host: host, Path: path, Header: header, Timeout: in.AttemptTimeout})
			row.Status, row.Cache, row.Age = res.Status, res.Cache, res.Age
		}
		if err == nil {
			row.Error = ""
			break
		}
		row.Error = err.Error()
		if !edge.IsRetryable(err) || attempt == attempts || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
	row.DurationMS = time.Since(start).Milliseconds()
	if ctx.Err() == nil {
		result := "success"
		if row.Error != "" {
			result = "failed"
		}
		metrics.PrewarmPairs.WithLabelValues(e.ID, result).Inc()
		metrics.EdgeLatency.WithLabelValues(e.ID, "fetch").Observe(time.Since(start).Seconds() / float64(row.Attempts))
	}
	return row
}
