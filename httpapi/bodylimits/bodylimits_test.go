//go:build !unit

// Package bodylimits_test measures what the API holds while refusing
// bodies over their route's limit. It is a package of its own so that
// its test process holds nothing but this test's stack: the heap it
// samples is then the API's, not other tests' leftovers.
package bodylimits_test

import (
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

const (
	appKey = "bodylimits"
	secret = "bodylimits-secret"
)

// zeros is an endless body that costs the sender no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// A 32 MiB body is refused on every POST, PUT and PATCH route, in the
// route's envelope (413 PayloadTooLarge; NHN resultCode 10005 with HTTP
// 200), with Content-Length and chunked, and the API's heap grows by less
// than 20 MiB over all of them (sampled every 2 ms while they are sent).
func TestBodiesOverTheLimitRefusedOnEveryRoute(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
	}})
	srv := httpapi.New(httpapi.Deps{Temporal: env.Client, Config: env.Config, Inventory: env.Inventory, Logger: env.Logger, Payloads: env.Payloads})
	var routes []*echoRoute
	for _, r := range srv.Echo.Routes() {
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			routes = append(routes, &echoRoute{r.Method, r.Path})
		}
	}
	if len(routes) < 10 {
		t.Fatalf("only %d POST/PUT/PATCH routes found: %v", len(routes), routes)
	}
	// The heap is the whole test process's (the embedded Temporal server
	// and worker too): their own noise is added to a run, never taken
	// away, so the least growth of up to three runs is the API's. A body
	// held by the API shows in every run.
	var grew uint64
	for attempt := 1; attempt <= 3; attempt++ {
		base, peak := heapSampler(t)
		sendHugeBodies(t, env, routes)
		if t.Failed() {
			return
		}
		grew = peak() - base
		t.Logf("run %d: %d routes, 32 MiB each (with Content-Length and chunked): heap peak %d MiB over %d MiB before", attempt, len(routes), grew>>20, base>>20)
		if grew < 20<<20 {
			return
		}
	}
	t.Fatalf("heap grew by %d MiB in the best of three runs while 32 MiB bodies were refused; want < 20 MiB", grew>>20)
}

// sendHugeBodies sends a 32 MiB body to every route, with Content-Length
// and chunked, and checks each is refused as too large in its envelope.
func sendHugeBodies(t *testing.T, env *testenv.Env, routes []*echoRoute) {
	const size = 32 << 20
	for _, r := range routes {
		path := strings.NewReplacer(":appKey", appKey, ":domain", "x.example.com", ":id", "x").Replace(r.path)
		for _, chunked := range []bool{false, true} {
			req, _ := http.NewRequest(r.method, env.API.URL+path, io.LimitReader(zeros{}, size))
			req.ContentLength = size
			if chunked {
				req.ContentLength = -1
			}
			if strings.Contains(r.path, ":appKey") {
				// The appKey's SecretKey; the other routes are open (no
				// --api-keys in this env).
				req.Header.Set("Authorization", secret)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s %s (chunked %v): %v", r.method, path, chunked, err)
				continue
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if chunked && !readsBody(r) {
				continue // the route never reads a body: nothing is held
			}
			nhnRoute := strings.HasPrefix(path, "/v1.5/")
			ok := resp.StatusCode == http.StatusRequestEntityTooLarge && strings.Contains(string(data), `"code":"PayloadTooLarge"`)
			if nhnRoute {
				ok = resp.StatusCode == http.StatusOK && strings.Contains(string(data), `"resultCode":10005`)
			}
			if !ok {
				t.Errorf("%s %s (chunked %v) with 32 MiB = HTTP %d %.200s, want refused as too large", r.method, path, chunked, resp.StatusCode, data)
			}
		}
	}
}

type echoRoute struct{ method, path string }

// readsBody: the routes that take a body (the others ignore one, and a
// chunked body they never read is never held).
func readsBody(r *echoRoute) bool {
	switch {
	case strings.HasSuffix(r.path, "/pause"), strings.HasSuffix(r.path, "/unpause"), strings.HasSuffix(r.path, "/trigger"), strings.HasSuffix(r.path, "/cancel"), r.path == "/console/logout":
		return false
	}
	return true
}

// heapSampler answers the heap in use now (after a GC) and a function
// that stops sampling and answers the largest heap seen since. The test
// process also runs Temporal, the worker and the test's clients, so the
// garbage collector runs at 1 % growth meanwhile: the peak is then what
// is live (a body held whole would show), not garbage awaiting a cycle.
func heapSampler(t *testing.T) (uint64, func() uint64) {
	t.Helper()
	old := debug.SetGCPercent(1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	peak.Store(base)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(stop) }); <-done })
	return base, func() uint64 {
		once.Do(func() { close(stop) })
		<-done
		return peak.Load()
	}
}
