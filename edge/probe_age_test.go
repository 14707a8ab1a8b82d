package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

// An origin answering "Age: 600" (as a shield cache in front of it
// does) on a real varnishd: the cache-only probe reports how long the edge
// has held its copy, not the origin's age, so a copy stored before a purge
// 0.5 s ago is recognised as old by the purge verification
// (ProbeResult.StoredBefore), and not as stored before one 5 s ago (which
// the origin's Age would claim). No client sees the edge's internal
// stored-age header.
func TestProbeAgeIgnoresOriginAge(t *testing.T) {
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Age", "600")
		w.Header().Set("Cache-Control", "public, max-age=1000000")
		_, _ = io.WriteString(w, "asset "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	oh, op, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(op)
	e := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: oh, Port: port}}
	})[0].Edge
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	const host, path = "age.test", "/app.css"

	get := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.Address+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get()
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first GET: %d %s", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	if resp.Header.Get("X-Cdnflow-Stored-Age") != "" {
		t.Fatal("the edge's stored-age header reached a client")
	}
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 600 {
		t.Fatalf("Age to clients %q: the origin's Age should still count for them", resp.Header.Get("Age"))
	}
	time.Sleep(2100 * time.Millisecond)
	mark := time.Now()
	r, err := c.Probe(ctx, e, host, path)
	if err != nil || !r.Fresh || r.Age < 2*time.Second || r.Age > 30*time.Second {
		t.Fatalf("probe of a copy held 2 s: %+v %v, want an age of about 2 s, not the origin's 600 s", r, err)
	}
	if !r.StoredBefore(mark.Add(-500 * time.Millisecond)) {
		t.Fatalf("a copy stored 2 s ago not recognised as stored before a purge 0.5 s ago: %+v", r)
	}
	if r.StoredBefore(mark.Add(-5 * time.Second)) {
		t.Fatalf("a copy stored 2 s ago taken as stored before a purge 5 s ago: %+v", r)
	}
}
