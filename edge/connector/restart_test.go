package connector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cdnflow/cdnflow/edge/varnishd"
)

// restartVCL sends every request to the connector, which routes by Host
// with its site table alone.
const restartVCL = `vcl 4.1;

backend cdnflow_connector {
    .host = "127.0.0.1";
    .port = "%d";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
}

sub vcl_recv {
    unset req.http.X-Cdnflow-Origins;
    unset req.http.X-Cdnflow-Origin-Host;
    set req.backend_hint = cdnflow_connector;
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
`

// startVarnish starts a varnishd with src as its VCL until the test ends.
func startVarnish(t *testing.T, src string) *varnishd.Process {
	t.Helper()
	dir := t.TempDir()
	var err error
	for range 3 {
		var listen, adm string
		if listen, err = varnishd.FreeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		if adm, err = varnishd.FreeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		var p *varnishd.Process
		p, err = varnishd.Start(context.Background(), varnishd.Options{
			Name: "CNX02-C1", WorkDir: filepath.Join(dir, "work"), ListenAddr: listen, AdminAddr: adm,
			SecretFile: filepath.Join(dir, "secret"), StorageMB: 64, ReadyTimeout: 60 * time.Second, VCL: src,
			Params: map[string]string{"thread_pool_min": "50", "thread_pools": "1"},
			Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("varnishd"),
		})
		if err == nil {
			t.Cleanup(func() { _ = p.Stop(context.Background()) })
			return p
		}
	}
	t.Fatalf("start varnishd: %v", err)
	return nil
}

// serveOn serves a connector with o on ln; stop shuts it down (Close
// included) and waits.
func serveOn(t *testing.T, ln net.Listener, o Options) (c *Connector, stop func()) {
	t.Helper()
	o.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("connector")
	c, err := New(o)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// A connector killed and started again on its state file serves the same
// table: Varnish keeps serving its cache while the connector is down, and
// afterwards every site is routed as before (cached objects stay hits,
// new objects come from the site's origin).
func TestRestartKeepsTableAndCache(t *testing.T) {
	requireVarnish(t)
	const sites, objects = 100, 100
	o := startOrigin(t, "O", "127.0.0.1", 0, nil)
	state := filepath.Join(t.TempDir(), "connector", "sites.json")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	opts := Options{Listen: addr, StateFile: state, AllowLoopback: []string{port(o)}}
	first, stop := serveOn(t, ln, opts)
	base := "http://" + addr
	for i := range sites {
		s := testSite(fmt.Sprintf("s%03d.test", i), int(o.Addr.Port()), Generation{Created: 1_700_000_000_000, Version: 1})
		s.Owner = "cp-test"
		var res PutResult
		if code := admin(t, base, http.MethodPut, s.Name, s, &res); code != 200 || !res.Applied {
			t.Fatalf("put %s: %d %+v", s.Name, code, res)
		}
	}
	before := first.Table().State()
	edge := startVarnish(t, fmt.Sprintf(restartVCL, ln.Addr().(*net.TCPAddr).Port))

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)
	type answer struct {
		code  int
		cache string
		body  string
	}
	fetch := func(host, path string) answer {
		req, _ := http.NewRequest(http.MethodGet, "http://"+edge.Options().ListenAddr+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return answer{body: err.Error()}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{code: resp.StatusCode, cache: resp.Header.Get("X-Cache"), body: string(b)}
	}
	// round fetches object j of site i for every i and j (every step-th
	// pair), 32 at
	// a time, and counts the right 200 answers and the hits among them.
	round := func(name string, step int) (ok, hits, total int) {
		start := time.Now()
		var nOK, nHit, n atomic.Int64
		var firstBad atomic.Value
		work := make(chan [2]int)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for ij := range work {
					a := fetch(fmt.Sprintf("s%03d.test", ij[0]), fmt.Sprintf("/o/%d.txt", ij[1]))
					n.Add(1)
					if a.code == 200 && a.body == fmt.Sprintf("served by O path /o/%d.txt", ij[1]) {
						nOK.Add(1)
						if a.cache == "HIT" {
							nHit.Add(1)
						}
					} else {
						firstBad.CompareAndSwap(nil, fmt.Sprintf("s%03d/%d: %d %s %q", ij[0], ij[1], a.code, a.cache, a.body))
					}
				}
			})
		}
		for k := 0; k < sites*objects; k += step {
			work <- [2]int{k / objects, k % objects}
		}
		close(work)
		wg.Wait()
		t.Logf("%s: %d fetched, %d ok, %d hits in %v; first bad: %v", name, n.Load(), nOK.Load(), nHit.Load(), time.Since(start).Round(time.Millisecond), firstBad.Load())
		return int(nOK.Load()), int(nHit.Load()), int(n.Load())
	}

	if ok, _, total := round("warm", 1); ok != total {
		t.Fatalf("warming the cache: %d of %d fetched", ok, total)
	}
	if n := o.requests.Load(); n != sites*objects {
		t.Fatalf("the origin got %d requests, want %d", n, sites*objects)
	}

	stop()
	// While the connector is down, Varnish serves what it cached; what it
	// did not cache fails.
	if ok, hits, total := round("connector down", 1); ok != total || hits != total {
		t.Fatalf("connector down: %d of %d served, %d hits", ok, total, hits)
	}
	if a := fetch("s000.test", "/never-cached"); a.code != http.StatusServiceUnavailable {
		t.Fatalf("a miss with the connector down: %d %q", a.code, a.body)
	}

	var ln2 net.Listener
	for range 50 {
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	second, _ := serveOn(t, ln2, opts)
	after := second.Table().State()
	if after.Digest != before.Digest || after.Loaded != sites || !after.Started.After(before.Started) {
		t.Fatalf("table after the restart: digest %s loaded %d started %v; before: digest %s started %v",
			after.Digest, after.Loaded, after.Started, before.Digest, before.Started)
	}
	originBefore := o.requests.Load()
	ok, hits, total := round("after the restart", 1)
	if ok != total || hits*100 < total*99 {
		t.Fatalf("after the restart: %d of %d served, %d hits (want >= 99%%)", ok, total, hits)
	}
	if n := o.requests.Load() - originBefore; n > int64(total-hits) {
		t.Fatalf("the origin got %d requests for %d misses", n, total-hits)
	}
	// Objects not cached yet come from each site's origin, as before the
	// restart: the table was not lost.
	for i := range sites {
		if a := fetch(fmt.Sprintf("s%03d.test", i), "/new.txt"); a.code != 200 || !strings.HasSuffix(a.body, "path /new.txt") || a.cache != "MISS" {
			t.Fatalf("a new object of s%03d.test after the restart: %d %s %q", i, a.code, a.cache, a.body)
		}
	}
}
