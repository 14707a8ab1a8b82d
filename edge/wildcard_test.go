package edge_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/internal/origin"
)

func TestWildcardBanExpressionForm(t *testing.T) {
	expr, err := edge.WildcardBanExpression([]string{"Www.Example.com", "例え.jp.", "www.example.com"}, "/画像/*")
	if err != nil {
		t.Fatal(err)
	}
	want := `obj.http.x-cdn-host ~ ^(?:www\.example\.com|xn--r8jz45g\.jp)$ && obj.http.x-cdn-url ~ ^/%[Ee]7%9[Dd]`
	if !strings.HasPrefix(expr, `obj.http.x-cdn-host ~ ^(?:www\.example\.com|xn--r8jz45g\.jp)$ && obj.http.x-cdn-url ~ ^/%[Ee]7%94%[Bb][Bb]%[Ee]5%83%8[Ff]/`) {
		t.Fatalf("expression = %s (want prefix like %s)", expr, want)
	}
	if f := strings.Fields(expr); len(f) != 7 {
		t.Fatalf("expression has %d words, want 7: %q", len(f), f)
	}
	for _, bad := range [][]string{nil, {"a.test:80"}, {"a b.test"}, {"a.test/x"}} {
		if _, err := edge.WildcardBanExpression(bad, "/x/*"); !errors.Is(err, edge.ErrInvalidRequest) {
			t.Errorf("hosts %q: %v", bad, err)
		}
	}
	_, err = edge.WildcardBanExpression([]string{"a.test"}, "/a\\")
	if !errors.Is(err, edge.ErrInvalidRequest) || !errors.Is(err, cachekey.ErrInvalid) {
		t.Errorf("bad pattern: %v", err)
	}
}

// TestWildcardBansOnVarnish applies wildcard bans to a real varnishd, over
// the CLI (one expression for a domain and its alias) and over HTTP BAN
// (one per host), and checks HIT -> MISS for exactly the matching objects.
func TestWildcardBansOnVarnish(t *testing.T) {
	o := &origin.Handler{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	oh, op, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(op)
	re := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: oh, Port: port}}
	})[0]
	e := re.Edge
	admin := re.Admin(t)
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()

	const img = "/%E7%94%BB%E5%83%8F/a.png" // what a browser sends for /画像/a.png
	hosts := []string{"a.test", "alias.test", "other.test"}
	paths := []string{
		img,
		"/%e7%94%bb%e5%83%8f/b.png", // same folder, lower-case escapes
		"/%E7%94%BB%E5%83%8F2/a.png",
		"/images/sports/acme/a.jpg",
		"/images/sports/ace/a.jpg",
		"/images/sports/ac%E7%94%BBe/b.jpg",
		"/x/sports/y.jpg",
		"/sports/y.jpg",
		"/x/sports/y.jpg?v=2",
		"/images/a.png",
	}
	warmAll := func() {
		t.Helper()
		for _, h := range hosts {
			for _, p := range paths {
				fetch(t, c, e, h, p)
				if r := fetch(t, c, e, h, p); r.Cache != "HIT" {
					t.Fatalf("warm %s%s = %+v", h, p, r)
				}
			}
		}
	}
	// expect fetches every object once: banned ones must be MISS, the rest HIT.
	expect := func(step string, banned map[string]bool) {
		t.Helper()
		for _, h := range hosts {
			for _, p := range paths {
				want := "HIT"
				if banned[h+p] {
					want = "MISS"
				}
				if got := fetch(t, c, e, h, p).Cache; got != want {
					t.Errorf("%s: %s%s = %s, want %s", step, h, p, got, want)
				}
			}
		}
	}
	on := func(hs []string, ps ...string) map[string]bool {
		m := map[string]bool{}
		for _, h := range hs {
			for _, p := range ps {
				m[h+p] = true
			}
		}
		return m
	}
	domain := []string{"a.test", "alias.test"}

	warmAll()
	expr, err := edge.WildcardBanExpression([]string{"A.test", "alias.test."}, "/画像/*")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Ban(ctx, expr); err != nil {
		t.Fatalf("ban %s: %v", expr, err)
	}
	list, err := admin.BanList(ctx)
	if err != nil || !strings.Contains(list, `obj.http.x-cdn-host ~ ^(?:a\.test|alias\.test)$`) {
		t.Fatalf("ban.list does not show the ban: %v\n%s", err, list)
	}
	expect("/画像/* over CLI", on(domain, img, "/%e7%94%bb%e5%83%8f/b.png"))

	warmAll()
	expr, err = edge.WildcardBanExpression(domain, "/images/sports/ac?e/*")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Ban(ctx, expr); err != nil {
		t.Fatal(err)
	}
	expect("ac?e over CLI", on(domain, "/images/sports/acme/a.jpg", "/images/sports/ac%E7%94%BBe/b.jpg"))

	warmAll()
	urlRe, err := cachekey.WildcardRegex("/*/sports/*.jpg")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range domain {
		if err := c.BanURLRegex(ctx, e, h, urlRe); err != nil {
			t.Fatalf("BAN %s %s: %v", h, urlRe, err)
		}
	}
	expect("/*/sports/*.jpg over HTTP", on(domain, "/images/sports/acme/a.jpg", "/images/sports/ace/a.jpg", "/images/sports/ac%E7%94%BBe/b.jpg", "/x/sports/y.jpg"))

	// Hostile patterns become bans that match nothing cached here.
	warmAll()
	for _, p := range []string{`/a" && obj.status != 0 && "`, `/x || obj.http.x-cdn-host ~ .`, `/(.*)|^/`, "/*\\\\"} {
		expr, err := edge.WildcardBanExpression(domain, p)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		if err := admin.Ban(ctx, expr); err != nil {
			t.Fatalf("ban %q: %v", expr, err)
		}
		urlRe, err := cachekey.WildcardRegex(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.BanURLRegex(ctx, e, "a.test", urlRe); err != nil {
			t.Fatalf("BAN %q: %v", urlRe, err)
		}
	}
	expect("hostile patterns", nil)
}
