package connector

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A child's connector sends misses to its parent edge with the visitor's
// Host, path and query, and no internal header; while the parent refuses
// connections it fetches from the origin, says so (HeaderTierFallback,
// ParentFallbacks) or, with fallback off, answers 502.
func TestChildFetchesFromParentAndFallsBack(t *testing.T) {
	shield := startOrigin(t, "shield", "127.0.0.1", 0, nil)
	o := startOrigin(t, "origin", "127.0.0.1", 0, nil)
	c, base := newConnector(t, Options{AllowLoopback: []string{"127.0.0.1:" + port(o)},
		Parent: &Parent{ID: "SHD01", Address: shield.Addr.String(), Fallback: true}})
	visit := func(path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = "www.site.test"
		req.Header.Set(HeaderOrigins, "http://127.0.0.1:"+port(o))
		req.Header.Set("X-Cdnflow-Secret", "must not leave the edge")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := visit("/static/a.js?v=1")
	if resp.StatusCode != 200 || body != "served by shield path /static/a.js?v=1" || resp.Header.Get(HeaderTierFallback) != "" {
		t.Fatalf("through the shield: %d %q fallback %q", resp.StatusCode, body, resp.Header.Get(HeaderTierFallback))
	}
	host, _, hdr := shield.seen()
	if host != "www.site.test" {
		t.Errorf("shield saw Host %q, want the visitor's", host)
	}
	for k := range hdr {
		if strings.HasPrefix(k, internalPrefix) {
			t.Errorf("shield saw internal header %s", k)
		}
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("origin fetched %d times while the shield answers", n)
	}

	_ = shield.srv.Close() // the shield is down: connections refused
	resp, body = visit("/static/b.js")
	if resp.StatusCode != 200 || body != "served by origin path /static/b.js" {
		t.Fatalf("fallback: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get(HeaderTierFallback); got != "origin; parent=SHD01" {
		t.Errorf("%s = %q", HeaderTierFallback, got)
	}
	if c.ParentFallbacks() != 1 {
		t.Errorf("ParentFallbacks = %d, want 1", c.ParentFallbacks())
	}

	c.SetParent(&Parent{ID: "SHD01", Address: shield.Addr.String(), Fallback: false})
	resp, _ = visit("/static/c.js")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), "parent edge SHD01") {
		t.Fatalf("no fallback: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
	}
	if n := o.requests.Load(); n != 1 {
		t.Fatalf("origin fetched %d times, want 1 (the fallback only)", n)
	}
}

// The parent's answer is delivered as the parent's even when SetParent
// changed the edge's parent (here: to none) while that fetch was under
// way: the answer names the parent that was asked.
func TestParentChangedWhileItsFetchIsUnderWay(t *testing.T) {
	asked, release := make(chan struct{}), make(chan struct{})
	shield := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(asked)
		<-release
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = io.WriteString(w, "served by shield")
	}))
	t.Cleanup(shield.Close)
	o := startOrigin(t, "origin", "127.0.0.1", 0, nil)
	c, base := newConnector(t, Options{AllowLoopback: []string{"127.0.0.1:" + port(o)},
		Parent: &Parent{ID: "SHD01", Address: strings.TrimPrefix(shield.URL, "http://"), Fallback: true}})
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/static/a.js", nil)
		req.Host = "www.site.test"
		req.Header.Set(HeaderOrigins, "http://127.0.0.1:"+port(o))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(body), err}
	}()
	<-asked
	c.SetParent(nil) // the edge has no parent any more; the fetch above is the shield's
	close(release)
	a := <-got
	if a.err != nil || a.code != http.StatusOK || a.body != "served by shield" {
		t.Fatalf("answer of the shield asked before its removal: %d %q %v", a.code, a.body, a.err)
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("origin fetched %d times", n)
	}
}

// A child keeps at most ParentConnections connections to its parent:
// fetches beyond them wait for one instead of opening more, and every
// one is answered.
func TestChildCapsItsConnectionsToTheParent(t *testing.T) {
	const limit, fetches = 2, 8
	var inFlight, most, conns atomic.Int32
	shield := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(50 * time.Millisecond) // a shield miss under way holds its connection
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = io.WriteString(w, "served by shield")
	}))
	shield.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	shield.Start()
	t.Cleanup(shield.Close)
	o := startOrigin(t, "origin", "127.0.0.1", 0, nil)
	_, base := newConnector(t, Options{AllowLoopback: []string{"127.0.0.1:" + port(o)}, ParentConnections: limit,
		Parent: &Parent{ID: "SHD01", Address: strings.TrimPrefix(shield.URL, "http://"), Fallback: true}})
	var wg sync.WaitGroup
	for i := range fetches {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/static/%d.js", base, i), nil)
			req.Host = "www.site.test"
			req.Header.Set(HeaderOrigins, "http://127.0.0.1:"+port(o))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("fetch %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "served by shield" {
				t.Errorf("fetch %d: %d %q", i, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if most.Load() > limit || conns.Load() > limit {
		t.Fatalf("the shield saw %d fetches at once on %d connections, want at most %d", most.Load(), conns.Load(), limit)
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("origin fetched %d times", n)
	}
}
