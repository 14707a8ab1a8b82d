package edge_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/origin"
)

// startRelay is a plain TCP relay on loopback in front of addr, as a TLS
// terminator in front of an edge would be: every connection it makes to
// the edge comes from 127.0.0.1, inside the edge's default purge ACL. It
// returns the relay's address; it stops when the test ends.
func startRelay(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				_ = down.Close() // nothing to relay to
				continue
			}
			track(down)
			track(up)
			wg.Go(func() {
				_, _ = io.Copy(up, down)
				_ = up.(*net.TCPConn).CloseWrite()
			})
			wg.Go(func() {
				_, _ = io.Copy(down, up)
				_ = down.(*net.TCPConn).CloseWrite()
			})
		}
	})
	t.Cleanup(func() {
		// Closing ends the accept loop and every relayed connection; the
		// errors say nothing a test needs.
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// send is one raw request on a connection of its own; it returns the
// status and the body's first line.
func send(t *testing.T, addr, method, host, path string, h http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := (&http.Transport{Proxy: nil, DisableKeepAlives: true}).RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s%s via %s: %v", method, host, path, addr, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	line, _, _ := strings.Cut(string(data), "\n")
	return resp.StatusCode, line
}

// A proxy on loopback in front of the edge (inside its purge ACL) does not
// make its visitors admins: every control request without the edge's
// control token, or with a wrong one, is refused 403 and changes nothing
// (objects stay cached, the site table stays as it was). The control
// plane's client, with the token, gets through the same proxy. The token
// never reaches an origin.
func TestControlRequiresTheTokenBehindALoopbackProxy(t *testing.T) {
	o := &origin.Handler{}
	var leaked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-cdnflow-") {
				leaked.Add(1)
				t.Errorf("origin got %s on %s %s", k, r.Method, r.URL)
			}
		}
		o.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	b := vcl.Backend{Host: host, Port: p}
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &b,
			Sites: []vcl.Site{{Name: "keep.test", Hosts: []string{"keep.test"}, Origins: []vcl.Backend{b}}}}
	})
	e := edges[0].Edge
	token := edges[0].ControlToken(t)
	relay := startRelay(t, e.Address)
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()

	for _, path := range []string{"/a", "/tag/red/1"} {
		if code, _ := send(t, e.Address, http.MethodGet, "a.test", path, nil, ""); code != http.StatusOK {
			t.Fatalf("warm %s: %d", path, code)
		}
	}
	before, err := c.Table(ctx, e)
	if err != nil || len(before.Sites) != 1 {
		t.Fatalf("table before: %+v %v", before, err)
	}
	evil, _ := json.Marshal(connector.Site{Name: "evil.test", Hosts: []string{"evil.test"}, Gen: connector.Generation{Created: 9, Version: 1},
		Origins: []connector.SiteOrigin{{Origin: connector.Origin{Scheme: "http", Host: "192.0.2.7", Port: 80}}}})
	admin := http.Header{connector.HeaderAdmin: {"1"}, "Content-Type": {"application/json"}}
	requests := []struct {
		name, method, host, path string
		h                        http.Header
		body                     string
	}{
		{"PURGE", "PURGE", "a.test", "/a", nil, ""},
		{"PURGE verified", "PURGE", "a.test", "/a", http.Header{edge.PurgeVerifyHeader: {"1"}}, ""},
		{"PURGE tag", "PURGE", "a.test", "/", http.Header{"X-Purge-Tag": {"red"}}, ""},
		{"BAN regex", "BAN", "a.test", "/", http.Header{"X-Ban-Url-Regex": {"^/"}}, ""},
		{"BAN host", "BAN", "a.test", "/", nil, ""},
		{"probe", http.MethodGet, "a.test", "/a", http.Header{edge.ProbeHeader: {"1"}}, ""},
		{"table GET", http.MethodGet, "edge-admin.cdnflow", connector.AdminPath, admin, ""},
		{"site PUT", http.MethodPut, "edge-admin.cdnflow", connector.AdminPath + "evil.test", admin, string(evil)},
		{"table PUT", http.MethodPut, "edge-admin.cdnflow", connector.AdminPath, admin, "[]"},
		{"site DELETE", http.MethodDelete, "edge-admin.cdnflow", connector.AdminPath + "keep.test?created=9&version=9", admin, ""},
	}
	tokens := map[string]string{"no token": "", "wrong token": strings.Repeat("0", len(token)), "token prefix": token[:32]}
	for tname, tok := range tokens {
		for _, r := range requests {
			h := http.Header{}
			for k, v := range r.h {
				h[k] = v
			}
			if tok != "" {
				h.Set(connector.HeaderControl, tok)
			}
			if code, line := send(t, relay, r.method, r.host, r.path, h, r.body); code != http.StatusForbidden {
				t.Errorf("%s through the proxy with %s: %d %q, want 403", r.name, tname, code, line)
			}
		}
	}
	for _, path := range []string{"/a", "/tag/red/1"} {
		if pr, err := c.Probe(ctx, e, "a.test", path); err != nil || !pr.Fresh {
			t.Errorf("%s after the refused requests: %+v %v, want still cached", path, pr, err)
		}
	}
	after, err := c.Table(ctx, e)
	if err != nil || after.Digest != before.Digest || len(after.Sites) != 1 || after.Sites[0].Name != "keep.test" {
		t.Errorf("table after the refused requests: %+v %v, want %+v", after, err, before)
	}

	// A visitor's token and health header go no further than the edge.
	h := http.Header{connector.HeaderControl: {token}, connector.HeaderHealth: {"1"}}
	seen := o.Requests()
	if code, _ := send(t, relay, http.MethodGet, "a.test", connector.HealthPath, h, ""); code != http.StatusOK || o.Requests() != seen+1 {
		t.Errorf("a visitor's GET %s: %d, want the origin's 200", connector.HealthPath, code)
	}
	resp := get(t, relay, "a.test", connector.HealthPath+"?x", h)
	if resp.Header.Get("X-Origin-Path") != connector.HealthPath+"?x" {
		t.Errorf("a visitor's health request was answered by the connector, not the origin: %v", resp.Header)
	}

	// The control plane's client, with the token, through the same proxy.
	via := e
	via.Address = relay
	if _, err := c.Table(ctx, via); err != nil {
		t.Fatalf("table with the token: %v", err)
	}
	res, err := c.PutSite(ctx, via, connector.Site{Name: "new.test", Hosts: []string{"new.test"}, Gen: connector.Generation{Created: 2, Version: 1},
		Origins: []connector.SiteOrigin{{Origin: connector.Origin{Scheme: "http", Host: host, Port: p}}}}, false)
	if err != nil || !res.Applied {
		t.Fatalf("put site with the token: %+v %v", res, err)
	}
	if res, err := c.DeleteSite(ctx, via, "new.test", connector.Generation{Created: 2, Version: 2}); err != nil || !res.Applied {
		t.Fatalf("delete site with the token: %+v %v", res, err)
	}
	if pr, err := c.Probe(ctx, via, "a.test", "/a"); err != nil || !pr.Fresh {
		t.Fatalf("probe with the token: %+v %v", pr, err)
	}
	if n, err := c.PurgeTag(ctx, via, "a.test", "red", false); err != nil || n != 1 {
		t.Fatalf("tag purge with the token: %d %v", n, err)
	}
	if pr, ok, err := c.PurgeVerified(ctx, via, "a.test", "/a", false); err != nil || !ok || pr.Fresh {
		t.Fatalf("verified purge with the token: %+v %v %v", pr, ok, err)
	}
	send(t, e.Address, http.MethodGet, "a.test", "/b", nil, "")
	answers := c.PurgeVerifiedBatch(ctx, via, []edge.PurgeUnit{{Host: "a.test", Path: "/b"}}, false)
	if a := answers[0]; a.Err != nil || !a.Verified || a.Probe.Fresh {
		t.Fatalf("pipelined purge with the token: %+v", a)
	}
	if err := c.BanPrefix(ctx, via, "a.test", "/"); err != nil {
		t.Fatalf("ban with the token: %v", err)
	}
	if err := c.BanURLRegex(ctx, via, "a.test", "^/x"); err != nil {
		t.Fatalf("url regex ban with the token: %v", err)
	}
	if leaked.Load() != 0 {
		t.Fatal("internal headers reached the origin")
	}
}

// The purge ACL stays the first check: from an address outside it (the
// ACL holds 192.0.2.1 only, the test connects from 127.0.0.1), control
// requests are refused even with the edge's control token.
func TestControlRefusedOutsideACLWithTheToken(t *testing.T) {
	_, b := startOrigin(t)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &b, PurgeACL: []string{"192.0.2.1"},
			Sites: []vcl.Site{{Name: "keep.test", Hosts: []string{"keep.test"}, Origins: []vcl.Backend{b}}}}
	})
	e := edges[0].Edge
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	send(t, e.Address, http.MethodGet, "a.test", "/a", nil, "")
	forbidden := func(what string, err error) {
		t.Helper()
		var se *edge.StatusError
		if !asStatus(err, &se) || se.Code != http.StatusForbidden {
			t.Errorf("%s outside the ACL with the token: %v, want 403", what, err)
		}
	}
	forbidden("PURGE", c.Purge(ctx, e, "a.test", "/a", false))
	_, err := c.PurgeTag(ctx, e, "a.test", "red", false)
	forbidden("tag PURGE", err)
	forbidden("BAN", c.BanPrefix(ctx, e, "a.test", ""))
	forbidden("BAN regex", c.BanURLRegex(ctx, e, "a.test", "^/a"))
	_, err = c.Probe(ctx, e, "a.test", "/a")
	forbidden("probe", err)
	_, err = c.Table(ctx, e)
	forbidden("table GET", err)
	_, err = c.DeleteSite(ctx, e, "keep.test", connector.Generation{Created: 9, Version: 9})
	forbidden("site DELETE", err)
	if st := edges[0].Connector.Table().State(); len(st.Sites) != 1 {
		t.Errorf("table changed from outside the ACL: %+v", st)
	}
	if r := get(t, e.Address, "a.test", "/a", nil); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("object after the refused purge: X-Cache %q, want HIT", r.Header.Get("X-Cache"))
	}
}

// While the connector (Varnish's only backend) is down, the edge serves
// what it has cached, past its TTL, instead of 503; what it never cached
// still fails. While the connector is up, an object more than the healthy
// grace (10 s) past its TTL is fetched again, not served stale.
func TestStaleServedWhileConnectorDown(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		_, _ = io.WriteString(w, "v"+strconv.Itoa(int(n.Add(1)))+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: host, Port: p}}
	})
	e := edges[0].Edge
	// body is the edge's answer to a GET of path: status, body, X-Cache.
	body := func(path string) (int, string, string) {
		resp, err := (&http.Transport{Proxy: nil, DisableKeepAlives: true}).RoundTrip(&http.Request{
			Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: e.Address, Path: path}, Host: "a.test", Header: http.Header{}})
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data), resp.Header.Get("X-Cache")
	}
	_, stale, _ := body("/stale")
	_, fresh, _ := body("/fresh")
	// Past TTL (1 s) plus the healthy grace (10 s).
	time.Sleep(12 * time.Second)
	if code, again, _ := body("/fresh"); code != http.StatusOK || again == fresh {
		t.Errorf("healthy connector, object 11 s stale: %d %q, want a new fetch (not %q)", code, again, fresh)
	}

	edges[0].StopConnector()
	admin := edges[0].Admin(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := admin.Do(context.Background(), "backend.list")
		if err == nil && sickLine(out, "cdnflow_connector_health") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connector's probe never failed: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, got, cache := body("/stale")
	if code != http.StatusOK || got != stale || cache != "HIT" {
		t.Errorf("connector down, cached object 12 s past its TTL: %d %q X-Cache %q; want 200 %q (stale HIT)", code, got, cache, stale)
	}
	if code, _, _ := body("/never"); code != http.StatusServiceUnavailable {
		t.Errorf("connector down, never cached: %d, want 503", code)
	}
}

// sickLine: backend.list shows backend name as sick.
func sickLine(list, name string) bool {
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, name) && strings.Contains(l, "sick") {
			return true
		}
	}
	return false
}
