package edgetest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/inventory"
)

func TestFaultProxyModes(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "from edge "+r.Method)
	}))
	defer backend.Close()
	p := StartFaultProxy(t, backend.Listener.Addr().String())
	// One keep-alive client for every step, like the worker's edge client.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	get := func(timeout time.Duration) (int, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr()+"/a.js", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	expect := func(step string, wantCode int, wantHits int64) {
		t.Helper()
		code, body, err := get(5 * time.Second)
		if err != nil || code != wantCode || hits.Load() != wantHits {
			t.Fatalf("%s: %d %q %v, backend hits %d; want %d and %d hits", step, code, body, err, hits.Load(), wantCode, wantHits)
		}
	}

	expect("pass", 200, 1)
	// The connection pooled in Pass mode must not bypass the fault.
	p.SetMode(Status(503))
	expect("status", 503, 1)
	expect("status again", 503, 1)

	p.SetMode(Slow(time.Minute))
	start := time.Now()
	if _, _, err := get(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second || hits.Load() != 1 {
		t.Fatalf("slow: took %s, backend hits %d", d, hits.Load())
	}

	p.SetMode(Reset())
	_, _, err := get(5 * time.Second)
	if !errors.Is(err, syscall.ECONNRESET) || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Fatalf("reset: err = %v, want connection reset by peer", err)
	}

	p.SetMode(Pass())
	expect("pass after faults", 200, 2)
	if p.Mode().String() != "pass" || p.Faulted() != 4 || p.Accepted() < 5 {
		t.Fatalf("mode %s, faulted %d, accepted %d", p.Mode(), p.Faulted(), p.Accepted())
	}
}

// A server that speaks first (the Varnish CLI greets) is held back by Slow
// and cut by Reset before its greeting reaches the client.
func TestFaultProxyServerFirstProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // also ends the accept loop
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "107 59\n")
			_ = c.Close()
		}
	}()
	p := StartFaultProxy(t, ln.Addr().String())
	// wait bounds the read of the greeting: a held one is seen as a
	// timeout after it.
	greet := func(wait time.Duration) (string, error) {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return "", err
		}
		defer func() { _ = c.Close() }() // the greeting read is what counts
		_ = c.SetDeadline(time.Now().Add(wait))
		return bufio.NewReader(c).ReadString('\n')
	}
	if line, err := greet(time.Second); err != nil || line != "107 59\n" {
		t.Fatalf("pass: %q %v", line, err)
	}
	p.SetMode(Reset())
	if _, err := greet(time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset: err = %v, want connection reset", err)
	}
	p.SetMode(Slow(time.Minute))
	if _, err := greet(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("slow: err = %v, want a timeout", err)
	}
	p.SetMode(Pass())
	if line, err := greet(time.Second); err != nil || line != "107 59\n" {
		t.Fatalf("pass again: %q %v", line, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestFaultProxyViaAndClose(t *testing.T) {
	h := StartFaultProxy(t, "127.0.0.1:1")
	a := StartFaultProxy(t, "127.0.0.1:2")
	e := inventory.Edge{ID: "TST01-C1", Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"}
	if got := Via(e, h, nil); got.Address != h.Addr() || got.AdminAddress != e.AdminAddress || got.ID != e.ID {
		t.Fatalf("Via(http) = %+v", got)
	}
	if got := Via(e, nil, a); got.Address != e.Address || got.AdminAddress != a.Addr() || got.SecretFile != "s" {
		t.Fatalf("Via(admin) = %+v", got)
	}
	// A target that is down: the client sees the connection closed.
	c, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read through a proxy to a closed port succeeded")
	}
	_ = c.Close() // already closed by the proxy, as the read showed
	// Close drops held connections and is idempotent.
	h.SetMode(Slow(time.Hour))
	held, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }() // dropped by h.Close below; this only frees the descriptor
	eventually.WithinEvery(t, 5*time.Second, time.Millisecond, func() error {
		if h.Faulted() == 0 {
			return errors.New("the held connection is not faulted yet")
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a held connection")
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// DelayControl holds PURGE and BAN requests but lets visitor requests
// through on the same keep-alive connection.
func TestFaultProxyDelayControl(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "from edge "+r.Method)
	}))
	defer backend.Close()
	p := StartFaultProxy(t, backend.Listener.Addr().String())
	p.SetMode(DelayControl(time.Minute))
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	do := func(method string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.Addr()+"/a.js", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
		if err := do(m, 5*time.Second); err != nil {
			t.Fatalf("%s through delay-control: %v", m, err)
		}
	}
	if p.Faulted() != 0 {
		t.Fatalf("visitor requests held: faulted %d", p.Faulted())
	}
	for _, m := range []string{"PURGE", "BAN"} {
		if err := do(m, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: err = %v, want it held past the client's deadline", m, err)
		}
	}
	if p.Faulted() != 2 || p.Mode().String() != "delay-control(1m0s)" {
		t.Fatalf("mode %s, faulted %d, want 2 held bursts", p.Mode(), p.Faulted())
	}
}
