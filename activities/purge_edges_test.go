package activities

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

// fleet is n stand-in edges answering PURGE 200, the probe 404 (nothing
// cached) and BAN 200; down[i] makes edge i answer 503 to everything.
type fleet struct {
	inv  *inventory.Inventory
	down []atomic.Bool
	mu   sync.Mutex
	seen map[string]int // "EDGE METHOD path" → count
}

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	f := &fleet{down: make([]atomic.Bool, n), seen: map[string]int{}}
	var edges []inventory.Edge
	for i := 0; i < n; i++ {
		id := "F" + string(rune('A'+i)) + "-C1"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f.down[i].Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.Header.Get(edge.ProbeHeader) != "" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			f.mu.Lock()
			f.seen[id+" "+r.Method+" "+r.URL.Path]++
			f.mu.Unlock()
		}))
		t.Cleanup(srv.Close)
		edges = append(edges, inventory.Edge{ID: id, Region: "us", Country: "japan", Address: strings.TrimPrefix(srv.URL, "http://"), AdminAddress: "127.0.0.1:1", SecretFile: fakeSecret(t)})
	}
	inv, err := inventory.New(edges)
	if err != nil {
		t.Fatal(err)
	}
	f.inv = inv
	return f
}

func (f *fleet) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[key]
}

// One PurgeEdges call purges every unit on every edge; an edge that keeps
// failing is reported in the rows and fails the attempt with a retryable
// ErrEdgesPending whose details are the rows; the retry, resumed from the
// heartbeat, sends nothing again to the edges already confirmed.
func TestPurgeEdgesReachesEveryEdgeAndResumes(t *testing.T) {
	f := newFleet(t, 4)
	a := &Purge{Inventory: f.inv, Edge: edge.NewClient(edge.Options{}), PerEdge: 4, retryFirst: time.Millisecond}
	ids := f.inv.IDs()
	f.down[2].Store(true)
	in := PurgeEdgesInput{EdgeIDs: append(ids, "NOPE-C1"), Hosts: []string{"a.test"}, Type: PurgeItem, Paths: []string{"/x", "/y"}}
	var ts testsuite.WorkflowTestSuite
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, in, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrEdgesPending || appErr.NonRetryable() {
		t.Fatalf("attempt with a failing edge: %v, want a retryable %s", err, ErrEdgesPending)
	}
	var rows []PurgeEdgeOutcome
	if err := appErr.Details(&rows); err != nil || len(rows) != 5 {
		t.Fatalf("details %v %+v", err, rows)
	}
	for i, r := range rows {
		switch {
		case i == 2 && (r.Confirmed || !strings.Contains(r.Error, "503") || !strings.Contains(r.Error, ids[2])):
			t.Errorf("failing edge row %+v", r)
		case i == 4 && (!r.Final || r.Confirmed):
			t.Errorf("unknown edge row %+v, want final", r)
		case i != 2 && i != 4 && (!r.Confirmed || r.Verified == ""):
			t.Errorf("healthy edge row %+v", r)
		}
	}
	f.down[2].Store(false)
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails(rows)
	var res PurgeEdgesResult
	if err := runActivity(t, env, a.PurgeEdges, in, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Edges[2].Confirmed || res.Pending() {
		t.Fatalf("after the edge came back: %+v", res.Edges)
	}
	for i, id := range ids {
		for _, p := range []string{"/x", "/y"} {
			if got := f.count(id + " PURGE " + p); got != 1 {
				t.Errorf("edge %d: PURGE %s sent %d times, want once", i, p, got)
			}
		}
	}
}

// An attempt that starts after the purge's deadline reports the edges
// still unconfirmed instead of failing, so the workflow can owe them.
func TestPurgeEdgesAfterDeadlineReports(t *testing.T) {
	f := newFleet(t, 2)
	a := &Purge{Inventory: f.inv, Edge: edge.NewClient(edge.Options{}), retryFirst: time.Millisecond}
	f.down[1].Store(true)
	in := PurgeEdgesInput{EdgeIDs: f.inv.IDs(), Hosts: []string{"a.test"}, Type: PurgeAll, Until: 1}
	var ts testsuite.WorkflowTestSuite
	var res PurgeEdgesResult
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, in, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Edges[0].Confirmed || res.Edges[1].Confirmed || res.Edges[1].Error == "" || !res.Pending() {
		t.Fatalf("rows %+v", res.Edges)
	}
	if f.count(res.Edges[0].EdgeID+" BAN /") != 1 {
		t.Fatalf("ALL on the healthy edge: %v", f.seen)
	}
}
