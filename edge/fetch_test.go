package edge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

// GETs pipelined to a real varnishd warm the same objects Fetch
// does, one answer per unit in order over more than one exchange: MISS,
// then HIT for a browser's GET; failures per unit as Fetch's.
func TestFetchBatchOnVarnish(t *testing.T) {
	e, o := startEdge(t)
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	f := c.Fetcher(ctx, e, http.Header{"X-Prewarm": {"1"}}, 5*time.Second)
	var units []edge.FetchUnit
	for i := 0; i < edge.MaxPipelined+10; i++ {
		units = append(units, edge.FetchUnit{Host: "batch.test", Path: fmt.Sprintf("/b/%d.js", i)})
	}
	good := len(units)
	units = append(units,
		edge.FetchUnit{Host: "batch.test", Path: "/status/404/x"},
		edge.FetchUnit{Host: "batch.test", Path: "/nocache/x"},
		edge.FetchUnit{Host: "batch.test", Path: "/with space"},
		edge.FetchUnit{Scheme: "https", Host: "batch.test", Path: "/b/0.js"}, // the edge has no HTTPS listener
	)
	answers := f.FetchBatch(ctx, units)
	if len(answers) != len(units) {
		t.Fatalf("%d answers for %d units", len(answers), len(units))
	}
	for i, a := range answers[:good] {
		if a.Err != nil || !a.Result.Cached || a.Result.Cache != "MISS" || a.Result.Status != 200 || a.Result.Bytes == 0 {
			t.Fatalf("unit %d (%s) = %+v, want a stored MISS", i, units[i].Path, a)
		}
	}
	var se *edge.StatusError
	if a := answers[good]; !errors.As(a.Err, &se) || se.Code != 404 || edge.IsRetryable(a.Err) {
		t.Fatalf("404 unit = %+v", a)
	}
	if a := answers[good+1]; a.Err == nil || a.Result.Cached || a.Result.Cache != "UNCACHEABLE" {
		t.Fatalf("uncacheable unit = %+v", a)
	}
	for _, a := range answers[good+2:] {
		if !errors.Is(a.Err, edge.ErrInvalidRequest) {
			t.Fatalf("unwritable unit = %+v, want ErrInvalidRequest", a)
		}
	}
	seen := o.Requests()
	// What a browser then GETs one by one is the warmed object.
	for _, u := range units[:good] {
		if r := fetch(t, c, e, u.Host, u.Path); r.Cache != "HIT" {
			t.Fatalf("GET %s after the batch = %+v, want HIT", u.Path, r)
		}
	}
	again := f.FetchBatch(ctx, units[:good])
	for i, a := range again {
		if a.Err != nil || a.Result.Cache != "HIT" || a.Result.Bytes != answers[i].Result.Bytes {
			t.Fatalf("unit %d again = %+v, want a HIT of %d bytes", i, a, answers[i].Result.Bytes)
		}
	}
	if o.Requests() != seen {
		t.Fatalf("origin saw %d more requests after the batch, want 0", o.Requests()-seen)
	}
}

// startGetServer answers GETs in order on every connection with a 3-byte
// stored object ("/slow…" after a second, or at once when the test ends,
// so the server's cleanup does not wait the second out).
func startGetServer(t *testing.T) *rawServer {
	ended := make(chan struct{})
	s := startRawServer(t, func(_ int32, _ int, r *http.Request) (string, bool) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-time.After(time.Second):
			case <-ended:
			}
		}
		return "HTTP/1.1 200 OK\r\nX-Cache: MISS\r\nContent-Length: 3\r\n\r\nabc", true
	})
	t.Cleanup(func() { close(ended) }) // runs before the server's own cleanup
	return s
}

// A batch goes on one connection with Host, the Fetcher's header and
// Accept-Encoding on every request; a header that cannot be written as is
// falls back to one Fetch per unit.
func TestFetchBatchPipelinesOnOneConnection(t *testing.T) {
	srv := startGetServer(t)
	e := inventory.Edge{ID: "E1", Address: srv.ln.Addr().String()}
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	units := []edge.FetchUnit{{Host: "a.test", Path: "/1"}, {Host: "b.test", Path: "/2?q=1"}, {Scheme: "http", Host: "a.test", Path: "/3"}}
	for _, a := range c.Fetcher(ctx, e, http.Header{"x-prewarm": {"yes"}}, time.Second).FetchBatch(ctx, units) {
		if a.Err != nil || !a.Result.Cached || a.Result.Bytes != 3 {
			t.Fatalf("answer %+v, want a stored 3-byte object", a)
		}
	}
	srv.mu.Lock()
	if srv.conns.Load() != 1 || len(srv.reqs) != 3 {
		t.Fatalf("%d connections carried %d requests, want 1 and 3", srv.conns.Load(), len(srv.reqs))
	}
	for i, r := range srv.reqs {
		if r.Host != units[i].Host || r.URL.RequestURI() != units[i].Path || r.Header.Get("X-Prewarm") != "yes" ||
			r.Header.Get("Accept-Encoding") != "gzip, deflate, br" || r.Method != http.MethodGet {
			t.Fatalf("request %d = %s %s Host %s %v", i, r.Method, r.URL, r.Host, r.Header)
		}
	}
	srv.reqs = nil
	srv.mu.Unlock()

	// "Connection" cannot ride a pipelined GET: one Fetch per unit instead.
	for _, a := range c.Fetcher(ctx, e, http.Header{"Connection": {"close"}}, time.Second).FetchBatch(ctx, units) {
		if a.Err != nil || !a.Result.Cached {
			t.Fatalf("answer %+v without pipelining", a)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.reqs) != 3 || srv.conns.Load() < 2 {
		t.Fatalf("%d requests over %d connections in all, want 3 more over new ones", len(srv.reqs), srv.conns.Load())
	}
}

// A GET without an answer within the timeout fails alone, as a request on
// its own would (a retryable deadline); it is not sent again, and the
// units after it go on a new connection.
func TestFetchBatchTimeoutFailsOneUnit(t *testing.T) {
	srv := startGetServer(t)
	e := inventory.Edge{ID: "E1", Address: srv.ln.Addr().String()}
	ctx := context.Background()
	units := []edge.FetchUnit{{Host: "a.test", Path: "/1"}, {Host: "a.test", Path: "/slow/2"}, {Host: "a.test", Path: "/3"}}
	answers := edge.NewClient(edge.Options{}).Fetcher(ctx, e, nil, 200*time.Millisecond).FetchBatch(ctx, units)
	if answers[0].Err != nil || answers[2].Err != nil || !answers[2].Result.Cached {
		t.Fatalf("answers %+v, want /1 and /3 stored", answers)
	}
	if err := answers[1].Err; !errors.Is(err, context.DeadlineExceeded) || !edge.IsRetryable(err) {
		t.Fatalf("/slow/2: %v, want a retryable deadline", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var slow int
	for _, r := range srv.reqs {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			slow++
		}
	}
	if slow != 1 || srv.conns.Load() != 2 {
		t.Fatalf("/slow sent %d times over %d connections, want once and 2 connections", slow, srv.conns.Load())
	}
}
