package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
)

// newTwoEdgeChunk serves E1 with prewarmEdgeHandler and E2 with a handler that
// answers 404 for /flaky (an origin that differs per PoP), two real HTTP
// servers.
func newTwoEdgeChunk(t *testing.T, urls []string) (*Prewarm, [2]*fakeEdge, PrewarmChunkInput) {
	t.Helper()
	f1, inv1 := newFakeEdge(t, prewarmEdgeHandler())
	f2, inv2 := newFakeEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		prewarmEdgeHandler()(w, r)
	})
	e1, _ := inv1.Get("E1")
	e2, _ := inv2.Get("E1")
	e2.ID = "E2"
	inv, err := inventory.New([]inventory.Edge{e1, e2})
	if err != nil {
		t.Fatal(err)
	}
	store, key := urlStore(t, urls)
	a := &Prewarm{Inventory: inv, Edge: edge.NewClient(edge.Options{}), Store: store, Attempts: 3, AttemptTimeout: 2 * time.Second, PerEdge: 2,
		retryBackoff: time.Millisecond}
	in := PrewarmChunkInput{
		JobID: "prewarm-req-1", EdgeIDs: []string{"E1", "E2"}, Domain: "a.test", Scheme: "http", URLsKey: key,
		Chunk: 0, Start: 0, End: len(urls),
	}
	return a, [2]*fakeEdge{f1, f2}, in
}

// One activity warms the chunk on every edge: outcomes are classified per
// pair and edge, each edge's rows are stored under its own key for the
// per-pair view, and the result lists the failures per edge.
func TestPrewarmChunkFansOutToEveryEdge(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing", "http://a.test/flaky", "http://a.test/nocache"}
	a, fe, in := newTwoEdgeChunk(t, urls)
	var ts testsuite.WorkflowTestSuite
	var res PrewarmChunkResult
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmChunk, in, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Edges) != 2 || res.Edges[0].EdgeID != "E1" || res.Edges[0].OK != 2 || !slices.Equal(res.Edges[0].Failed, []int{1, 3}) ||
		res.Edges[1].EdgeID != "E2" || res.Edges[1].OK != 1 || !slices.Equal(res.Edges[1].Failed, []int{1, 2, 3}) {
		t.Fatalf("result %+v", res)
	}
	for i, want := range [][]int{{200, 404, 200, 200}, {200, 404, 404, 200}} {
		id := in.EdgeIDs[i]
		data, err := a.Store.Get(context.Background(), payload.PrewarmDetailKey(in.JobID, in.URLsKey, id, 0))
		if err != nil {
			t.Fatal(err)
		}
		var rows []PairDetail
		if err := json.Unmarshal(data, &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want) {
			t.Fatalf("%s rows %+v", id, rows)
		}
		for j, r := range rows {
			if r.Index != j || r.Status != want[j] {
				t.Errorf("%s row %d = %+v, want status %d", id, j, r, want[j])
			}
		}
	}
	// The chunk's summary, beside the rows, is the result: what a status
	// read tallies while the job runs.
	if sum, ok, err := ReadChunkSummary(context.Background(), a.Store, in.JobID, in.URLsKey, 0); err != nil || !ok ||
		sum.Chunk != 0 || sum.Start != 0 || sum.End != len(urls) || !reflect.DeepEqual(sum.Edges, res.Edges) {
		t.Fatalf("summary %+v %v %v, want the result %+v", sum, ok, err, res)
	}
	if _, ok, err := ReadChunkSummary(context.Background(), a.Store, in.JobID, in.URLsKey, 1); ok || err != nil {
		t.Fatalf("chunk 1 never ran, but a summary is read: %v %v", ok, err)
	}
	// Every pair reached its own edge with the URL's Host: /flaky three
	// times on E1 (503, 503, stored), once on E2 (404 is final).
	if fe[0].count("GET a.test /flaky") != 3 || fe[1].count("GET a.test /flaky") != 1 ||
		fe[0].count("GET a.test /ok") != 1 || fe[1].count("GET a.test /ok") != 1 {
		t.Fatalf("requests E1 %v, E2 %v", fe[0].seen, fe[1].seen)
	}
}

// A retried attempt resumes from the heartbeated rows of every edge: the
// pairs they hold are not fetched again, on that edge only, and they
// count in the result.
func TestPrewarmChunkResumesFromHeartbeat(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing"}
	a, fe, in := newTwoEdgeChunk(t, urls)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails(packChunkBeat([]fanRow{{Edge: "E2", PairDetail: PairDetail{Index: 0, Status: 200, Attempts: 1}}}))
	var res PrewarmChunkResult
	if err := runActivity(t, env, a.PrewarmChunk, in, &res); err != nil {
		t.Fatal(err)
	}
	if res.Edges[0].OK != 1 || res.Edges[1].OK != 1 || len(res.Edges[1].Failed) != 1 ||
		fe[0].count("GET a.test /ok") != 1 || fe[1].count("GET a.test /ok") != 0 || fe[1].count("GET a.test /missing") != 1 {
		t.Fatalf("result %+v, requests E1 %v, E2 %v", res, fe[0].seen, fe[1].seen)
	}
}

// A resumed attempt keeps each heartbeated row as it was: E2's first pair
// is not fetched again, and its row (a HIT, 3 attempts, an error on the
// other edge) is the heartbeat's.
func TestPrewarmChunkResumesFromPackedHeartbeat(t *testing.T) {
	urls := []string{"http://a.test/ok", "http://a.test/missing"}
	a, fe, in := newTwoEdgeChunk(t, urls)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails(packChunkBeat([]fanRow{
		{Edge: "E1", PairDetail: PairDetail{Index: 1, Status: 404, Attempts: 2, Error: "HTTP 404"}},
		{Edge: "E2", PairDetail: PairDetail{Index: 0, Status: 200, Cache: "HIT", Age: 7, Attempts: 3, DurationMS: 12}},
	}))
	var res PrewarmChunkResult
	if err := runActivity(t, env, a.PrewarmChunk, in, &res); err != nil {
		t.Fatal(err)
	}
	if res.Edges[0].OK != 1 || !slices.Equal(res.Edges[0].Failed, []int{1}) || res.Edges[1].OK != 1 || len(res.Edges[1].Failed) != 1 ||
		fe[0].count("GET a.test /missing") != 0 || fe[1].count("GET a.test /ok") != 0 || fe[1].count("GET a.test /missing") != 1 {
		t.Fatalf("result %+v, requests E1 %v, E2 %v", res, fe[0].seen, fe[1].seen)
	}
}

// Packing keeps every field of every row, in order, and is a fraction of
// the JSON rows' size.
func TestChunkBeatRoundTrip(t *testing.T) {
	var rows []fanRow
	for _, e := range []string{"EDGE-A", "EDGE-B"} {
		for i := 1000; i < 3000; i++ {
			r := fanRow{Edge: e, PairDetail: PairDetail{Index: i, Status: 200, Cache: "MISS", Attempts: 1, DurationMS: int64(i % 97)}}
			if i%500 == 0 {
				r.Status, r.Cache, r.Attempts, r.Error = 503, "", 3, "HTTP 503 from edge"
			}
			if i%7 == 0 {
				r.Cache, r.Age = "HIT", i%300
			}
			rows = append(rows, r)
		}
	}
	packed, err := json.Marshal(packChunkBeat(rows))
	if err != nil {
		t.Fatal(err)
	}
	var beat chunkBeat
	if err := json.Unmarshal(packed, &beat); err != nil {
		t.Fatal(err)
	}
	got, err := beat.unpack()
	if err != nil || !slices.Equal(got, rows) {
		t.Fatalf("unpacked %d rows (err %v), want %d equal rows", len(got), err, len(rows))
	}
	plain, _ := json.Marshal(rows)
	if len(packed)*4 > len(plain) {
		t.Fatalf("packed beat %d bytes, JSON rows %d: want at most a quarter", len(packed), len(plain))
	}
	t.Logf("%d rows: packed %d bytes, JSON rows %d bytes", len(rows), len(packed), len(plain))
	beat.Edges[0].Rows = beat.Edges[0].Rows[:len(beat.Edges[0].Rows)-1]
	if _, err := beat.unpack(); err == nil {
		t.Fatal("a truncated beat unpacked without error")
	}
}

// An edge missing from the inventory, a missing URL list and a chunk
// outside the list are final, and nothing is fetched.
func TestPrewarmChunkFinalErrors(t *testing.T) {
	a, fe, in := newTwoEdgeChunk(t, []string{"http://a.test/ok"})
	var ts testsuite.WorkflowTestSuite
	for name, tc := range map[string]struct {
		mutate  func(*PrewarmChunkInput)
		errType string
	}{
		"unknown edge": {func(in *PrewarmChunkInput) { in.EdgeIDs = []string{"E1", "E9"} }, ErrUnknownEdge},
		"no url list":  {func(in *PrewarmChunkInput) { in.URLsKey = "prewarm/none/urls.json" }, ErrPayloadMissing},
		"bad chunk":    {func(in *PrewarmChunkInput) { in.End = 5 }, ErrBadChunk},
	} {
		bad := in
		tc.mutate(&bad)
		err := runActivity(t, ts.NewTestActivityEnvironment(), a.PrewarmChunk, bad, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != tc.errType || !appErr.NonRetryable() {
			t.Errorf("%s: %v, want a final %s", name, err, tc.errType)
		}
	}
	if n := fe[0].count("GET") + fe[1].count("GET"); n != 0 {
		t.Fatalf("%d GETs for chunks that cannot run: %s", n, strings.Join(append(fe[0].seen, fe[1].seen...), ", "))
	}
}

// The connections in use to one edge (each a batch of pipelined GETs,
// which an edge answers one after the other) are the worker's per-edge
// slots, shared by every chunk: two chunks at once never exceed PerEdge on
// an edge, and one chunk alone uses every slot (up to its Concurrency).
func TestPrewarmChunksShareEdgeSlots(t *testing.T) {
	var inFlight, peak atomic.Int64
	handler := func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		w.Header().Set("X-Cache", "MISS")
	}
	urls := make([]string, 60)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.test/ok/%d", i)
	}
	a, _, in := newTwoEdgeChunk(t, urls)
	f, inv := newFakeEdge(t, handler)
	a.Inventory, a.PerEdge = inv, 4
	in.EdgeIDs = []string{"E1"}
	run := func(start, end int) error {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		c := in
		c.Chunk, c.Start, c.End = start/30, start, end
		var res PrewarmChunkResult
		if err := runActivity(t, env, a.PrewarmChunk, c, &res); err != nil {
			return err
		}
		if res.Edges[0].OK != end-start {
			return fmt.Errorf("chunk [%d,%d): %+v", start, end, res)
		}
		return nil
	}
	if err := run(0, 30); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 4 {
		t.Fatalf("one chunk alone: peak %d GETs in flight, want all 4 slots", p)
	}
	peak.Store(0)
	errs := make(chan error, 2)
	go func() { errs <- run(0, 30) }()
	go func() { errs <- run(30, 60) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > 4 || p < 2 {
		t.Fatalf("two chunks at once: peak %d GETs in flight, want at most the 4 slots", p)
	}
	if n := f.count("GET a.test /ok/"); n != 90 {
		t.Fatalf("%d GETs, want 30 + 60", n)
	}
	// The worker's cap over all edges (InFlight) holds below PerEdge.
	a = &Prewarm{Inventory: a.Inventory, Edge: a.Edge, Store: a.Store, PerEdge: 4, InFlight: 3}
	peak.Store(0)
	if err := run(0, 30); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 3 {
		t.Fatalf("InFlight 3: peak %d GETs in flight, want 3", p)
	}
}
