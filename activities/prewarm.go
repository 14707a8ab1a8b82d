package activities

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
)

// PairDetail is the outcome of one URL on one edge: the record the chunk
// activity stores per edge (payload.PrewarmDetailKey) and the API's per-pair
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

	// PerEdge caps the GETs in flight to one edge from this worker,
	// shared by every chunk of every prewarm job (0: defaultPrewarmPerEdge);
	// InFlight caps them over all edges (0: no cap but PerEdge's).
	PerEdge  int
	InFlight int
	// Pipeline is how many of a chunk's GETs to one edge go pipelined on
	// one connection, which then holds one PerEdge slot (0:
	// defaultPrewarmPipeline; 1: one GET per connection at a time).
	Pipeline int
	// Attempts are the tries of one URL on one edge (0: one);
	// AttemptTimeout bounds each (pipelined: each answer after the
	// previous one; 0: the edge client's timeout).
	Attempts       int
	AttemptTimeout time.Duration
	// retryBackoff is the first wait before a batch's failed pairs go
	// again (0: prewarmBackoffFirst); tests shorten it.
	retryBackoff time.Duration

	mu    sync.Mutex
	urls  map[string][]string // recently used URL lists, by payload key
	lru   []string
	slots edgeSlots
	all   chan struct{} // InFlight places, made on first use
	once  sync.Once
}

// prewarmBackoffFirst is the wait before a batch's failed pairs go again
// the first time; it doubles up to 6.4 s (warmBatch).
const prewarmBackoffFirst = 200 * time.Millisecond

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

// warmSpec is what a chunk's pairs share on every edge: how they are
// addressed (the job's domain and scheme) and tried.
type warmSpec struct {
	Domain         string
	Scheme         string
	NeedInvalidate bool
	Attempts       int
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
// once per chunk and edge instead of once per pair.
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

// warmBatch runs the pairs targets[js] on edge e, each with up to
// spec.Attempts attempts: every attempt's GETs go pipelined on one of the
// edge's connections (edge.Fetcher.FetchBatch), and the pairs whose
// attempt failed with a retryable error go again together after a backoff
// (200 ms doubling, up to 6.4 s). With NeedInvalidate every attempt purges
// each pair before its GET, so a retry never counts a copy cached before
// the purge as warmed. A pair's DurationMS runs from the batch's start to
// its last answer (pipelined GETs wait for the ones before them on the
// connection). Rows are in js's order. cut reports that ctx ended or its
// deadline (the job's) came before every pair had an outcome: the rows
// are then no outcome at all (a failure seen at the deadline is the
// deadline's, not the pair's), are not counted in the metrics, and the
// caller drops them.
func (a *Prewarm) warmBatch(ctx context.Context, e inventory.Edge, spec warmSpec, targets []pairTarget, js []int, f *edge.Fetcher, m pairMetrics) (rows []PairDetail, cut bool) {
	start := time.Now()
	rows = make([]PairDetail, len(js))
	reqs := make([]edge.FetchUnit, len(js))
	errs := make([]error, len(js))
	pending := make([]int, 0, len(js)) // rows still to fetch
	for k, j := range js {
		if t := targets[j]; t.err != "" {
			rows[k].Error = t.err
		} else {
			reqs[k].Scheme, reqs[k].Host, reqs[k].Path = pairRequest(spec, e, t)
			pending = append(pending, k)
		}
	}
	attempts := max(spec.Attempts, 1)
	backoff := cmp.Or(a.retryBackoff, prewarmBackoffFirst)
	for attempt := 1; len(pending) > 0; attempt++ {
		began := time.Now()
		send := make([]int, 0, len(pending))
		for _, k := range pending {
			rows[k].Attempts, rows[k].DurationMS, errs[k] = attempt, -1, nil
			if spec.NeedInvalidate {
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
			if edge.IsRetryable(errs[k]) && attempt < attempts && !cutShort(ctx) {
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
	if cutShort(ctx) {
		return rows, true
	}
	m.record(rows)
	return rows, false
}

// record counts each sent pair's outcome and its mean time per attempt.
func (m pairMetrics) record(rows []PairDetail) {
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

// cutShort reports whether ctx ended or its deadline has come. Both mean
// a GET that ended then was cut, not answered: a connection deadline set
// to ctx's deadline fires when the clock reaches it, while ctx.Err() turns
// non-nil only once ctx's own timer ran, which on a busy machine comes
// later.
func cutShort(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// pairRequest is how a pair's GET reaches edge e: scheme, Host (as a
// browser sends it: the edge drops the port) and request target.
func pairRequest(spec warmSpec, e inventory.Edge, t pairTarget) (scheme, host, path string) {
	host, scheme = pairHostScheme(spec, e, t.u)
	if host == t.key.Host {
		host = t.key.Authority()
	}
	return scheme, host, t.key.PathQuery
}
