package activities

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/payload"
)

// An edge that stores /ok, answers 404 for /missing, 503 twice then stores
// /flaky, and serves /nocache without caching it.
func prewarmEdgeHandler() http.HandlerFunc {
	var flaky atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("X-Cache", "MISS")
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/flaky":
			if flaky.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("X-Cache", "MISS")
		case "/nocache":
			w.Header().Set("X-Cache", "PASS")
		}
	}
}

func newPrewarm(t *testing.T, handler http.HandlerFunc, urls []string) (*Prewarm, *fakeEdge, PrewarmChunkInput) {
	t.Helper()
	fe, inv := newFakeEdge(t, handler)
	store, key := urlStore(t, urls)
	a := &Prewarm{Inventory: inv, Edge: edge.NewClient(edge.Options{}), Store: store, Attempts: 3, AttemptTimeout: 2 * time.Second, PerEdge: 2,
		retryBackoff: time.Millisecond}
	in := PrewarmChunkInput{
		JobID: "prewarm-req-1", EdgeIDs: []string{"E1"}, Domain: "a.test", Scheme: "http", URLsKey: key,
		Start: 0, End: len(urls),
	}
	return a, fe, in
}

func runActivity(t *testing.T, env *testsuite.TestActivityEnvironment, fn, in any, out any) error {
	t.Helper()
	env.RegisterActivity(fn)
	v, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return err
	}
	if out != nil {
		return v.Get(out)
	}
	return nil
}

// Outcomes are classified per pair: stored is success; 4xx and an
// uncacheable answer fail at once; a 5xx is retried until it is stored.
// The chunk's rows are stored for the per-pair view.
func TestPrewarmChunkClassifiesOutcomes(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing", "http://a.test/flaky", "http://a.test/nocache"}
	a, fe, in := newPrewarm(t, prewarmEdgeHandler(), urls)
	var ts testsuite.WorkflowTestSuite
	var res PrewarmChunkResult
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmChunk, in, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Edges) != 1 || res.Edges[0].OK != 2 || !slices.Equal(res.Edges[0].Failed, []int{1, 3}) {
		t.Fatalf("result %+v, want ok 2 and failed [1 3]", res)
	}
	data, err := a.Store.Get(context.Background(), payload.PrewarmDetailKey(in.JobID, in.URLsKey, "E1", 0))
	if err != nil {
		t.Fatal(err)
	}
	var rows []PairDetail
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status, attempts int
		failed           bool
	}{{200, 1, false}, {404, 1, true}, {200, 3, false}, {200, 1, true}}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Index != i || r.Status != w.status || r.Attempts != w.attempts || (r.Error != "") != w.failed {
			t.Errorf("row %d = %+v, want status %d after %d attempts, failed %v", i, r, w.status, w.attempts, w.failed)
		}
	}
	if n := fe.count("GET a.test /flaky"); n != 3 {
		t.Errorf("/flaky fetched %d times, want 3", n)
	}
}

// How often a pair is tried is the worker's knob (Prewarm.Attempts), not
// the job's: the same chunk input, on a worker set to 2 attempts, gives up
// /flaky (503 twice) after 2 GETs and counts it failed.
func TestPrewarmChunkAttemptsAreTheWorkers(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/flaky"}
	a, fe, in := newPrewarm(t, prewarmEdgeHandler(), urls)
	a.Attempts = 2
	var ts testsuite.WorkflowTestSuite
	var res PrewarmChunkResult
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmChunk, in, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Edges) != 1 || res.Edges[0].OK != 1 || !slices.Equal(res.Edges[0].Failed, []int{1}) {
		t.Fatalf("result %+v, want ok 1 and failed [1]", res)
	}
	if n := fe.count("GET a.test /flaky"); n != 2 {
		t.Errorf("/flaky fetched %d times, want 2 (the worker's Attempts)", n)
	}
}

// hangingEdge never answers /hang (until the client gives up, or 10 s).
func hangingEdge(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hang" {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	prewarmEdgeHandler()(w, r)
}

// A pair the job's deadline cuts has no outcome: the chunk stops at the
// job's Deadline — not at the activity's own timeout, which counts from
// when the server scheduled it and lands later on a busy machine, nor
// after AttemptTimeout — and ends with ErrJobDeadline, never a result
// that counts the pair failed. The job then ends TIMEOUT.
func TestPrewarmChunkJobDeadlineLeavesNoOutcome(t *testing.T) {
	a, _, in := newPrewarm(t, hangingEdge, []string{"http://a.test/ok", "http://a.test/hang"})
	a.Attempts, a.AttemptTimeout = 1, 8*time.Second
	in.Deadline = time.Now().Add(300 * time.Millisecond)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetTestTimeout(30 * time.Second)
	var res PrewarmChunkResult
	err := runActivity(t, env, a.PrewarmChunk, in, &res)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrJobDeadline || !appErr.NonRetryable() {
		t.Fatalf("chunk cut by the job's deadline: result %+v, error %v; want a final %s", res, err, ErrJobDeadline)
	}
	if _, err := a.Store.Get(context.Background(), payload.PrewarmDetailKey(in.JobID, in.URLsKey, "E1", 0)); !errors.Is(err, payload.ErrNotFound) {
		t.Fatalf("rows of a cut chunk were stored: %v", err)
	}
}

// lateContext is a context whose deadline has come while its Err is still
// nil: what a GET sees on a busy machine between the connection deadline
// (set to the context's) firing and the context's own timer running.
type lateContext struct {
	context.Context
	deadline time.Time
}

func (c lateContext) Deadline() (time.Time, bool) { return c.deadline, true }

// A GET that fails at the job's deadline is the deadline's, not the
// pair's, even before ctx.Err() says so: warmBatch reports the batch cut,
// so no row of it becomes an outcome.
func TestWarmBatchAtTheDeadlineIsCut(t *testing.T) {
	a, _, _ := newPrewarm(t, hangingEdge, []string{"http://a.test/hang"})
	e, _ := a.Inventory.Get("E1")
	ctx := lateContext{Context: context.Background(), deadline: time.Now().Add(200 * time.Millisecond)}
	f := a.Edge.Fetcher(ctx, e, http.Header{}, 8*time.Second)
	started := time.Now()
	rows, cut := a.warmBatch(ctx, e, warmSpec{Domain: "a.test", Scheme: "http", Attempts: 1},
		[]pairTarget{parseTarget("http://a.test/hang")}, []int{0}, f, metricsFor(e.ID))
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("the GET ran %s, past the context's deadline", took)
	}
	if !cut {
		t.Fatalf("a GET cut by the deadline became an outcome: %+v", rows)
	}
}

// urlStore is a file payload store holding urls as job req-1's URL list,
// and the list's key.
func urlStore(t *testing.T, urls []string) (payload.Store, string) {
	t.Helper()
	store, err := payload.Open(context.Background(), payload.FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	key, err := payload.PutPrewarmURLs(context.Background(), store, "req-1", urls)
	if err != nil {
		t.Fatal(err)
	}
	return store, key
}
