package activities

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
)

func newPurge(t *testing.T, handler http.HandlerFunc) (*Purge, *fakeEdge) {
	t.Helper()
	fe, inv := newFakeEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(edge.ProbeHeader) != "" {
			w.WriteHeader(http.StatusNotFound) // the cache-only probe: nothing cached
			return
		}
		handler(w, r)
	})
	return &Purge{Inventory: inv, Edge: edge.NewClient(edge.Options{}), PerEdge: 2, retryFirst: time.Millisecond}, fe
}

// Every host×path unit is purged on the edge; ALL and WILDCARD are bans.
func TestPurgeEdgesSendsEveryUnit(t *testing.T) {
	a, fe := newPurge(t, func(http.ResponseWriter, *http.Request) {})
	var ts testsuite.WorkflowTestSuite
	in := PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test", "b.test"}, Type: PurgeItem, Paths: []string{"/x", "/y"}}
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, in, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PURGE a.test /x", "PURGE a.test /y", "PURGE b.test /x", "PURGE b.test /y"} {
		if fe.count(want) != 1 {
			t.Errorf("%q sent %d times; requests %v", want, fe.count(want), fe.seen)
		}
	}
	all := PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: PurgeAll}
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, all, nil); err != nil || fe.count("BAN a.test /") != 1 {
		t.Fatalf("ALL: %v; requests %v", err, fe.seen)
	}
}

// An edge that refuses is tried edgeTries times, then fails the attempt
// with a retryable error; a retry resumes after the heartbeated units.
func TestPurgeEdgesFailureIsRetriedAndResumes(t *testing.T) {
	a, fe := newPurge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	var ts testsuite.WorkflowTestSuite
	in := PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: PurgeItem, Paths: []string{"/down"}}
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, in, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != ErrEdgesPending {
		t.Fatalf("a 503 from the edge: %v, want a retryable %s", err, ErrEdgesPending)
	}
	if n := fe.count("PURGE a.test /down"); n != edgeTries {
		t.Fatalf("the failing unit was sent %d times in the attempt, want edgeTries (%d)", n, edgeTries)
	}
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails([]PurgeEdgeOutcome{{EdgeID: "E1", Done: []int{0}}})
	in.Paths = []string{"/done-before", "/next"}
	if err := runActivity(t, env, a.PurgeEdges, in, nil); err != nil {
		t.Fatal(err)
	}
	if fe.count("PURGE a.test /done-before") != 0 || fe.count("PURGE a.test /next") != 1 {
		t.Fatalf("resumed attempt sent %v", fe.seen)
	}
}

// A purge the edge client refuses to send, or of an unknown edge, is a
// final row: the attempt does not wait for it.
func TestPurgeEdgesFinalErrors(t *testing.T) {
	a, fe := newPurge(t, func(http.ResponseWriter, *http.Request) {})
	var ts testsuite.WorkflowTestSuite
	for _, tc := range []struct {
		in   PurgeEdgesInput
		want string
	}{
		{PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: PurgeTag, Paths: []string{"a,b"}}, "invalid"},
		{PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: "PAGE", Paths: []string{"/a"}}, "unknown purge type"},
		{PurgeEdgesInput{EdgeIDs: []string{"E9"}, Hosts: []string{"a.test"}, Type: PurgeItem, Paths: []string{"/a"}}, "not in the inventory"},
	} {
		var res PurgeEdgesResult
		err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, tc.in, &res)
		if err != nil || len(res.Edges) != 1 || !res.Edges[0].Final || res.Edges[0].Confirmed || !strings.Contains(res.Edges[0].Error, tc.want) {
			t.Errorf("%+v: %+v, %v; want a final row naming %q", tc.in, res, err, tc.want)
		}
	}
	if len(fe.seen) != 0 {
		t.Fatalf("refused purges reached the edge: %v", fe.seen)
	}
}

// An edge that answers the verified PURGE (edge.PurgeVerifyHeader)
// with its probe costs one request per unit; a fresh copy older than the
// purge in that answer fails the unit as a separate probe would.
func TestPurgeItemVerifiedInOneRequest(t *testing.T) {
	var answer atomic.Value
	answer.Store("404 absent")
	fe, inv := newFakeEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" && r.Header.Get(edge.PurgeVerifyHeader) != "" {
			reason := answer.Load().(string)
			if reason == "404 absent" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			// A probe's 200 "cached age=<s>" reason.
			hj, _ := w.(http.Hijacker)
			conn, buf, _ := hj.Hijack()
			defer func() { _ = conn.Close() }()
			_, _ = buf.WriteString("HTTP/1.1 200 " + reason + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			_ = buf.Flush()
			return
		}
		w.WriteHeader(http.StatusTeapot)
	})
	a := &Purge{Inventory: inv, Edge: edge.NewClient(edge.Options{}), PerEdge: 2, retryFirst: time.Millisecond}
	var ts testsuite.WorkflowTestSuite
	in := PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: PurgeItem, Paths: []string{"/x", "/y"}}
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, in, nil); err != nil {
		t.Fatal(err)
	}
	if fe.count("PURGE a.test /x") != 1 || fe.count("PURGE a.test /y") != 1 || fe.count("GET") != 0 {
		t.Fatalf("requests %v, want one verified PURGE per path and no separate probe", fe.seen)
	}
	answer.Store("cached age=3600.000")
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.PurgeEdges, PurgeEdgesInput{EdgeIDs: []string{"E1"}, Hosts: []string{"a.test"}, Type: PurgeItem, Paths: []string{"/z"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "before the purge") {
		t.Fatalf("an edge still holding an hour-old copy after the purge: %v, want an error naming it", err)
	}
}
