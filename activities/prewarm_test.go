package activities

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"

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

func newPrewarm(t *testing.T, handler http.HandlerFunc, urls []string) (*Prewarm, *fakeEdge, PrewarmBatchInput) {
	t.Helper()
	fe, inv := newFakeEdge(t, handler)
	store, err := payload.Open(context.Background(), payload.FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	key, err := payload.PutPrewarmURLs(context.Background(), store, "req-1", urls)
	if err != nil {
		t.Fatal(err)
	}
	a := &Prewarm{Inventory: inv, Edge: edge.NewClient(edge.Options{}), Store: store, Logger: zap.NewNop()}
	in := PrewarmBatchInput{
		JobID: "prewarm-req-1", EdgeID: "E1", Domain: "a.test", Scheme: "http", URLsKey: key,
		Start: 0, End: len(urls), Attempts: 3, AttemptTimeout: 2 * time.Second, Concurrency: 2,
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
func TestPrewarmBatchClassifiesOutcomes(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing", "http://a.test/flaky", "http://a.test/nocache"}
	a, fe, in := newPrewarm(t, prewarmEdgeHandler(), urls)
	var ts testsuite.WorkflowTestSuite
	var res PrewarmBatchResult
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmBatch, in, &res); err != nil {
		t.Fatal(err)
	}
	if res.OK != 2 || len(res.Failed) != 2 || res.Failed[0] != 1 || res.Failed[1] != 3 {
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

// A retried attempt resumes from the heartbeated rows: finished pairs are
// not fetched again, and they count in the result.
func TestPrewarmBatchResumesFromHeartbeat(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing"}
	a, fe, in := newPrewarm(t, prewarmEdgeHandler(), urls)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails([]PairDetail{{Index: 0, Status: 200, Attempts: 1}})
	var res PrewarmBatchResult
	if err := runActivity(t, env, a.PrewarmBatch, in, &res); err != nil {
		t.Fatal(err)
	}
	if res.OK != 1 || len(res.Failed) != 1 || fe.count("GET a.test /ok") != 0 || fe.count("GET a.test /missing") != 1 {
		t.Fatalf("result %+v, requests %v", res, fe.seen)
	}
}

// An edge missing from the inventory and a missing URL list are final.
func TestPrewarmBatchFinalErrors(t *testing.T) {
	a, _, in := newPrewarm(t, prewarmEdgeHandler(), []string{"http://a.test/ok"})
	var ts testsuite.WorkflowTestSuite
	for name, tc := range map[string]struct {
		mutate  func(*PrewarmBatchInput)
		errType string
	}{
		"unknown edge": {func(in *PrewarmBatchInput) { in.EdgeID = "E9" }, ErrUnknownEdge},
		"no url list":  {func(in *PrewarmBatchInput) { in.URLsKey = "prewarm/none/urls.json" }, ErrPayloadMissing},
		"bad chunk":    {func(in *PrewarmBatchInput) { in.End = 5 }, ErrBadChunk},
	} {
		bad := in
		tc.mutate(&bad)
		err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmBatch, bad, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != tc.errType || !appErr.NonRetryable() {
			t.Errorf("%s: %v, want a final %s", name, err, tc.errType)
		}
	}
}
