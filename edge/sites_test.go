package edge_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/origin"
)

func startOrigin(t *testing.T) (*origin.Handler, vcl.Backend) {
	t.Helper()
	o := &origin.Handler{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return o, vcl.Backend{Host: host, Port: p}
}

// get sends a raw GET through the edge so tests see every header.
func get(t *testing.T, addr, host, path string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Transport{Proxy: nil}).RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestSites(t *testing.T) {
	_, def := startOrigin(t)
	o1, b1 := startOrigin(t)
	_, b2 := startOrigin(t)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &def, Sites: []vcl.Site{
			{Name: "static", Hosts: []string{"static.test", "Alias.Test"}, Origins: []vcl.Backend{b1}, OriginPath: "/assets/", ForwardHostHeader: vcl.ForwardOriginHostname},
			{Name: "keep", Hosts: []string{"keep.test"}, Origins: []vcl.Backend{b2}, ForwardHostHeader: vcl.ForwardRequestHost},
			{Name: "ttl", Hosts: []string{"ttl.test"}, Origins: []vcl.Backend{b1}, TTL: time.Hour},
			{Name: "white", Hosts: []string{"white.test"}, Origins: []vcl.Backend{b1}, ReferrerType: vcl.ReferrerWhitelist, Referrers: []string{`^https?://(www\.)?good\.test/`}},
			{Name: "black", Hosts: []string{"black.test"}, Origins: []vcl.Backend{b1}, ReferrerType: vcl.ReferrerBlacklist, Referrers: []string{`evil`, `x"y`}, AllowEmptyReferrer: true},
			{Name: "off", Hosts: []string{"off.test"}, Origins: []vcl.Backend{b2}, Suspended: true},
		}}
	})
	e := edges[0].Edge
	addr := e.Address

	r := get(t, addr, "static.test", "/a.css?v=1", nil)
	if r.StatusCode != 200 || r.Header.Get("X-Origin-Path") != "/assets/a.css?v=1" || r.Header.Get("X-Origin-Host") != b1.Host+":"+strconv.Itoa(b1.Port) {
		t.Fatalf("static site: %d path=%q host=%q", r.StatusCode, r.Header.Get("X-Origin-Path"), r.Header.Get("X-Origin-Host"))
	}
	if r.Header.Get("X-Edge-Id") != e.ID || r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("headers: edge=%q cache=%q", r.Header.Get("X-Edge-Id"), r.Header.Get("X-Cache"))
	}
	for _, h := range []string{"x-cdn-host", "x-cdn-url", "xkey"} {
		if r.Header.Get(h) != "" {
			t.Fatalf("internal header %s leaked to the client", h)
		}
	}
	// The alias is its own cache key; the origin path prefix is applied once.
	if r := get(t, addr, "ALIAS.test:80", "/a.css?v=1", nil); r.Header.Get("X-Origin-Path") != "/assets/a.css?v=1" || r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("alias: path=%q cache=%q", r.Header.Get("X-Origin-Path"), r.Header.Get("X-Cache"))
	}
	// Bans match the client URL, not the origin one.
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	if err := c.BanPrefix(ctx, e, "static.test", "/a.css"); err != nil {
		t.Fatal(err)
	}
	if r := get(t, addr, "static.test", "/a.css?v=1", nil); r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("ban on client URL of an originPath site: %q", r.Header.Get("X-Cache"))
	}
	if r := get(t, addr, "alias.test", "/a.css?v=1", nil); r.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("ban leaked to alias host: %q", r.Header.Get("X-Cache"))
	}

	if r := get(t, addr, "keep.test", "/k", nil); r.Header.Get("X-Origin-Host") != "keep.test" || r.Header.Get("X-Origin-Path") != "/k" {
		t.Fatalf("request host site: host=%q path=%q", r.Header.Get("X-Origin-Host"), r.Header.Get("X-Origin-Path"))
	}
	if r := get(t, addr, "unknown.test", "/u", nil); r.Header.Get("X-Origin-Host") != "unknown.test" {
		t.Fatalf("default backend: host=%q", r.Header.Get("X-Origin-Host"))
	}

	// A forced TTL still never stores what the origin marks no-store
	// (cdnflow_private); it caches what the origin leaves uncached.
	before := o1.Requests()
	for i := range 2 {
		if r := get(t, addr, "ttl.test", "/nocache/x", nil); r.Header.Get("X-Cache") != "UNCACHEABLE" {
			t.Fatalf("ttl no-store #%d: %q, want UNCACHEABLE", i, r.Header.Get("X-Cache"))
		}
	}
	if n := o1.Requests() - before; n != 2 {
		t.Fatalf("origin saw %d requests for a no-store answer of a forced-TTL site, want 2", n)
	}
	if r := get(t, addr, "keep.test", "/nocache/x", nil); r.Header.Get("X-Cache") != "UNCACHEABLE" {
		t.Fatalf("origin TTL obeyed: %q", r.Header.Get("X-Cache"))
	}
	// Cookies are not part of the key by default: a cookie request is
	// answered from the cache.
	get(t, addr, "keep.test", "/c", nil)
	if r := get(t, addr, "keep.test", "/c", http.Header{"Cookie": {"s=1"}}); r.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("cookie request: %q", r.Header.Get("X-Cache"))
	}
	// Credentials still pass.
	if r := get(t, addr, "keep.test", "/c", http.Header{"Authorization": {"Basic eDp5"}}); r.Header.Get("X-Cache") != "PASS" {
		t.Fatalf("authorization request: %q", r.Header.Get("X-Cache"))
	}

	ref := func(host, referer string) int {
		h := http.Header{}
		if referer != "" {
			h.Set("Referer", referer)
		}
		return get(t, addr, host, "/r", h).StatusCode
	}
	for _, tc := range []struct {
		host, referer string
		want          int
	}{
		{"white.test", "https://good.test/page", 200},
		{"white.test", "https://www.good.test/page", 200},
		{"white.test", "https://bad.test/", 403},
		{"white.test", "", 403},
		{"black.test", "https://evil.test/", 403},
		{"black.test", "https://fine.test/", 200},
		{"black.test", "", 200},
		{"off.test", "", 404},
		{"static.test", "https://anything/", 200},
	} {
		if got := ref(tc.host, tc.referer); got != tc.want {
			t.Errorf("%s with Referer %q: %d, want %d", tc.host, tc.referer, got, tc.want)
		}
	}
	if r := get(t, addr, "bad host", "/", nil); r.StatusCode != 400 {
		t.Errorf("invalid host: %d", r.StatusCode)
	}
}

func TestUnknownHostWithoutDefault(t *testing.T) {
	_, b := startOrigin(t)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{{Name: "only", Hosts: []string{"only.test"}, Origins: []vcl.Backend{b}}}}
	})
	addr := edges[0].Edge.Address
	if r := get(t, addr, "other.test", "/", nil); r.StatusCode != 404 {
		t.Fatalf("unknown host: %d", r.StatusCode)
	}
	if r := get(t, addr, "only.test", "/", nil); r.StatusCode != 200 {
		t.Fatalf("site host: %d", r.StatusCode)
	}
}

func TestSoftPurgeServesStaleWhileRefetching(t *testing.T) {
	o, b := startOrigin(t)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &b}
	})
	e := edges[0].Edge
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	fetch(t, c, e, "s.test", "/soft")
	if err := c.Purge(ctx, e, "s.test", "/soft", true); err != nil {
		t.Fatal(err)
	}
	before := o.Requests()
	if r := fetch(t, c, e, "s.test", "/soft"); r.Cache != "HIT" {
		t.Fatalf("after soft purge the stale copy should be served, got %+v", r)
	}
	eventually.WithinEvery(t, 5*time.Second, 20*time.Millisecond, func() error {
		if o.Requests() == before {
			return errors.New("no background refetch after soft purge")
		}
		return nil
	})
	// A hard purge is not served stale (another path: the background
	// refetch above may still be inserting its object).
	fetch(t, c, e, "s.test", "/hard")
	if err := c.Purge(ctx, e, "s.test", "/hard", false); err != nil {
		t.Fatal(err)
	}
	if r := fetch(t, c, e, "s.test", "/hard"); r.Cache != "MISS" {
		t.Fatalf("after hard purge: %+v", r)
	}
	// A tag with a separator would purge keys of other hosts.
	if _, err := c.PurgeTag(ctx, e, "s.test", "a,other.test#b", false); err == nil {
		t.Fatal("tag with comma accepted")
	}
}

func TestReloadDoesNotLeakAndAuth(t *testing.T) {
	_, b := startOrigin(t)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &b}
	})
	e := edges[0].Edge
	secret, err := os.ReadFile(e.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := varnishadm.Dial(ctx, e.AdminAddress, []byte("wrong\n")); err == nil {
		t.Fatal("wrong secret accepted")
	}
	conn, err := varnishadm.Dial(ctx, e.AdminAddress, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close varnish cli: %v", err)
		}
	}()
	for i := 0; i < 5; i++ {
		src, err := vcl.Render(vcl.Config{EdgeID: "RELOAD" + strconv.Itoa(i), ConnectorPort: e.ConnectorPort(), DefaultBackend: &b, ControlToken: connector.ControlToken(secret)})
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Reload(ctx, "cdnflow_r"+strconv.Itoa(i), src); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	list, err := conn.VCLList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var managed []string
	for _, v := range list {
		if strings.HasPrefix(v.Name, varnishadm.ManagedPrefix) && v.Status != "discarded" {
			managed = append(managed, v.Name+"/"+v.Status)
		}
	}
	if len(managed) != 1 || managed[0] != "cdnflow_r4/active" {
		t.Fatalf("loaded cdnflow VCLs after 5 reloads: %v (all: %+v)", managed, list)
	}
	if r := get(t, e.Address, "x.test", "/", nil); r.Header.Get("X-Edge-Id") != "RELOAD4" {
		t.Fatalf("new VCL not active: X-Edge-Id %q", r.Header.Get("X-Edge-Id"))
	}
	if err := conn.Ban(ctx, "obj.http.x-cdn-host == x.test && obj.http.x-cdn-url ~ ^/a\\.b"); err != nil {
		t.Fatalf("cli ban: %v", err)
	}
	if bans, err := conn.BanList(ctx); err != nil || !strings.Contains(bans, `obj.http.x-cdn-url ~ ^/a\.b`) {
		t.Fatalf("ban list: %v\n%s", err, bans)
	}
	// A VCL that does not compile leaves the active one in place.
	err = conn.Reload(ctx, "cdnflow_bad", "vcl 4.1; sub vcl_recv { nonsense }")
	var cliErr *varnishadm.Error
	if err == nil || !asCLIError(err, &cliErr) || cliErr.Status != 106 {
		t.Fatalf("bad VCL: %v", err)
	}
	if r := get(t, e.Address, "x.test", "/", nil); r.Header.Get("X-Edge-Id") != "RELOAD4" {
		t.Fatal("bad VCL replaced the active one")
	}
}
