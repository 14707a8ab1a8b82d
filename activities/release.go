package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
)

// MaxWarmthMisses bounds the URL × edge pairs a Warmth lists by name: a
// job of 100,000 URLs on 20 edges that warmed nothing still answers a few
// KB (the per-edge counts carry the rest).
const MaxWarmthMisses = 100

// Warmth measurement shape: each edge gets warmthSenders connections, each
// carrying warmthBatch pipelined GETs at a time (edge.Fetcher.FetchBatch).
const (
	warmthSenders = 4
	warmthBatch   = 32
)

// WarmthInput asks for the warmth of a prewarm job's URLs on its edges: the
// job's URL list, domain, scheme and header, as PrewarmChunkInput has them.
type WarmthInput struct {
	JobID   string            `json:"jobId"`
	EdgeIDs []string          `json:"edgeIds"`
	Domain  string            `json:"domain"`
	Scheme  string            `json:"scheme"`
	URLsKey string            `json:"urlsKey"`
	Header  map[string]string `json:"header,omitempty"`
}

// EdgeWarmth is one edge's warmth: Hit of Total URLs answered a HIT to a
// GET made after the prewarm (the share is Hit/Total).
type EdgeWarmth struct {
	EdgeID string `json:"edgeId"`
	Hit    int    `json:"hit"`
	Total  int    `json:"total"`
	// Answer is the edge's answer to its last GET that was not a HIT
	// ("200 MISS", "404", a transport error), else "200 HIT".
	Answer    string `json:"answer,omitempty"`
	CheckedAt int64  `json:"checkedAt"` // epoch ms the edge's last GET answered
	Attempts  int    `json:"attempts"`  // the activity attempt that measured it
	Error     string `json:"error,omitempty"`
}

// WarmthMiss is one URL × edge pair that was not a HIT.
type WarmthMiss struct {
	Index  int    `json:"index"` // into the job's URL list
	EdgeID string `json:"edgeId"`
	Answer string `json:"answer"`
}

// Warmth is a prewarm job's warmth per URL × edge: counts per edge, and
// the first MaxWarmthMisses pairs that were not a HIT.
type Warmth struct {
	Edges  []EdgeWarmth `json:"edges"`
	Misses []WarmthMiss `json:"misses,omitempty"`
}

// MeasureWarmth GETs every URL of the job through every edge, as a visitor
// would (the URL's Host, the job's header; pipelined, warmthSenders
// connections per edge) and counts the answers with X-Cache HIT: after a
// prewarm every pair should be one. A GET that misses stores the object, so
// a GET counts what the prewarm left only once: a retried attempt (a
// later attempt, or one that finds an earlier attempt's heartbeat) uses
// the edge's cache-only probe instead (edge.Client.Probe, as the purge
// verification does), which never fills the cache, and counts a fresh
// copy as a HIT. Progress (pairs checked) is heartbeated; a retried
// attempt measures again from the start.
// Errors: an unknown edge or a missing URL list are final; the context's
// error when the attempt was cancelled.
func (a *Prewarm) MeasureWarmth(ctx context.Context, in WarmthInput) (Warmth, error) {
	edges := make([]inventory.Edge, len(in.EdgeIDs))
	for i, id := range in.EdgeIDs {
		e, ok := a.Inventory.Get(id)
		if !ok {
			return Warmth{}, unknownEdge(id)
		}
		edges[i] = e
	}
	urls, err := a.LoadURLs(ctx, in.URLsKey)
	if errors.Is(err, payload.ErrNotFound) {
		return Warmth{}, temporal.NewNonRetryableApplicationError("url list missing: "+err.Error(), ErrPayloadMissing, err)
	}
	if err != nil {
		return Warmth{}, fmt.Errorf("warmth of %s: %w", in.JobID, err)
	}
	targets := make([]pairTarget, len(urls))
	for j := range urls {
		targets[j] = parseTarget(urls[j])
	}
	header := http.Header{}
	for k, v := range in.Header {
		header.Set(k, v)
	}
	var checked atomic.Int64
	stop := beatWhile(ctx, func() { activity.RecordHeartbeat(ctx, checked.Load()) })
	out := Warmth{Edges: make([]EdgeWarmth, len(edges))}
	misses := make([][]WarmthMiss, len(edges))
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Edges[i], misses[i] = a.edgeWarmth(ctx, e, warmSpec{Domain: in.Domain, Scheme: in.Scheme}, targets, header, &checked)
		}()
	}
	wg.Wait()
	stop()
	for _, m := range misses {
		out.Misses = append(out.Misses, m[:min(len(m), MaxWarmthMisses-len(out.Misses))]...)
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("warmth of %s stopped: %w", in.JobID, err)
	}
	logger(ctx, "jobId", in.JobID).Info("warmth measured", "edges", len(edges), "urls", len(urls), "misses", len(out.Misses))
	return out, nil
}

// edgeWarmth measures one edge: warmthSenders senders take batches of
// warmthBatch URLs in order. It answers the edge's counts and its first
// MaxWarmthMisses misses.
func (a *Prewarm) edgeWarmth(ctx context.Context, e inventory.Edge, spec warmSpec, targets []pairTarget, header http.Header, checked *atomic.Int64) (EdgeWarmth, []WarmthMiss) {
	res := EdgeWarmth{EdgeID: e.ID, Total: len(targets), Answer: "200 HIT", Attempts: int(activity.GetInfo(ctx).Attempt)}
	f := a.Edge.Fetcher(ctx, e, header, a.AttemptTimeout)
	retried := activity.GetInfo(ctx).Attempt > 1 || activity.HasHeartbeatDetails(ctx)
	var mu sync.Mutex
	var misses []WarmthMiss
	next := make(chan int)
	var wg sync.WaitGroup
	for range warmthSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range next {
				end := min(start+warmthBatch, len(targets))
				var hits int
				var miss []WarmthMiss
				if retried {
					hits, miss = a.probeBatchOf(ctx, spec, e, targets, start, end)
				} else {
					hits, miss = warmthBatchOf(ctx, f, spec, e, targets, start, end)
				}
				checked.Add(int64(end - start))
				mu.Lock()
				res.Hit += hits
				res.CheckedAt = time.Now().UnixMilli()
				for _, m := range miss {
					res.Answer = m.Answer
					if len(misses) < MaxWarmthMisses {
						misses = append(misses, m)
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for start := 0; start < len(targets); start += warmthBatch {
		select {
		case next <- start:
		case <-ctx.Done():
			res.Error = ctx.Err().Error()
			break feed
		}
	}
	close(next)
	wg.Wait()
	return res, misses
}

// warmthBatchOf GETs targets [start, end) pipelined through e and answers
// the HITs and the pairs that were not one.
func warmthBatchOf(ctx context.Context, f *edge.Fetcher, spec warmSpec, e inventory.Edge, targets []pairTarget, start, end int) (int, []WarmthMiss) {
	units := make([]edge.FetchUnit, 0, end-start)
	idx := make([]int, 0, end-start)
	var miss []WarmthMiss
	for j := start; j < end; j++ {
		if targets[j].err != "" {
			miss = append(miss, WarmthMiss{Index: j, EdgeID: e.ID, Answer: targets[j].err})
			continue
		}
		var u edge.FetchUnit
		u.Scheme, u.Host, u.Path = pairRequest(spec, e, targets[j])
		units = append(units, u)
		idx = append(idx, j)
	}
	hits := 0
	for k, ans := range f.FetchBatch(ctx, units) {
		switch {
		case ans.Err == nil && ans.Result.Cache == "HIT":
			hits++
		case ans.Err != nil && ans.Result.Status == 0:
			miss = append(miss, WarmthMiss{Index: idx[k], EdgeID: e.ID, Answer: ans.Err.Error()})
		default:
			miss = append(miss, WarmthMiss{Index: idx[k], EdgeID: e.ID, Answer: fmt.Sprintf("%d %s", ans.Result.Status, ans.Result.Cache)})
		}
	}
	return hits, miss
}

// probeBatchOf looks targets [start, end) up in e's cache without
// fetching them (edge.Client.Probe) and answers the fresh copies, as
// HITs, and the pairs that were not one.
func (a *Prewarm) probeBatchOf(ctx context.Context, spec warmSpec, e inventory.Edge, targets []pairTarget, start, end int) (int, []WarmthMiss) {
	hits := 0
	var miss []WarmthMiss
	for j := start; j < end; j++ {
		if targets[j].err != "" {
			miss = append(miss, WarmthMiss{Index: j, EdgeID: e.ID, Answer: targets[j].err})
			continue
		}
		_, host, path := pairRequest(spec, e, targets[j])
		r, err := a.Edge.Probe(ctx, e, host, path)
		switch {
		case err != nil:
			miss = append(miss, WarmthMiss{Index: j, EdgeID: e.ID, Answer: err.Error()})
		case r.Fresh:
			hits++
		default:
			miss = append(miss, WarmthMiss{Index: j, EdgeID: e.ID, Answer: "404 absent (cache-only probe)"})
		}
	}
	return hits, miss
}
