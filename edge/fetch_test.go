package edge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

// Issue 19: GETs pipelined to a real varnishd warm the same objects Fetch
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

// A batch goes on one connection with Host, the Fetcher's header and
// Accept-Encoding on every request; a header that cannot be written as is
// falls back to one Fetch per unit.
func TestFetchBatchPipelinesOnOneConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns int
	var open []net.Conn
	var reqs []*http.Request
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close() // the client keeps its idle connections
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns++
			open = append(open, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					mu.Lock()
					reqs = append(reqs, r)
					mu.Unlock()
					if _, err := conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Cache: MISS\r\nContent-Length: 3\r\n\r\nabc")); err != nil {
						return
					}
				}
			}()
		}
	}()
	e := inventory.Edge{ID: "E1", Address: ln.Addr().String()}
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	units := []edge.FetchUnit{{Host: "a.test", Path: "/1"}, {Host: "b.test", Path: "/2?q=1"}, {Scheme: "http", Host: "a.test", Path: "/3"}}
	for _, a := range c.Fetcher(ctx, e, http.Header{"x-prewarm": {"yes"}}, time.Second).FetchBatch(ctx, units) {
		if a.Err != nil || !a.Result.Cached || a.Result.Bytes != 3 {
			t.Fatalf("answer %+v, want a stored 3-byte object", a)
		}
	}
	mu.Lock()
	if conns != 1 || len(reqs) != 3 {
		t.Fatalf("%d connections carried %d requests, want 1 and 3", conns, len(reqs))
	}
	for i, r := range reqs {
		if r.Host != units[i].Host || r.URL.RequestURI() != units[i].Path || r.Header.Get("X-Prewarm") != "yes" ||
			r.Header.Get("Accept-Encoding") != "gzip, deflate, br" || r.Method != http.MethodGet {
			t.Fatalf("request %d = %s %s Host %s %v", i, r.Method, r.URL, r.Host, r.Header)
		}
	}
	reqs = nil
	mu.Unlock()

	// "Connection" cannot ride a pipelined GET: one Fetch per unit instead.
	for _, a := range c.Fetcher(ctx, e, http.Header{"Connection": {"close"}}, time.Second).FetchBatch(ctx, units) {
		if a.Err != nil || !a.Result.Cached {
			t.Fatalf("answer %+v without pipelining", a)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 3 || conns < 2 {
		t.Fatalf("%d requests over %d connections in all, want 3 more over new ones", len(reqs), conns)
	}
}
