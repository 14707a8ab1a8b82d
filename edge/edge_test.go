package edge_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/inventory"
)

func startEdge(t *testing.T) (inventory.Edge, *origin.Handler) {
	t.Helper()
	o := &origin.Handler{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: host, Port: p}}
	})
	return edges[0].Edge, o
}

func fetch(t *testing.T, c *edge.Client, e inventory.Edge, host, path string) edge.FetchResult {
	t.Helper()
	res, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: host, Path: path})
	if err != nil {
		t.Fatalf("fetch %s%s: %v", host, path, err)
	}
	return res
}

func TestFetchCachesPerNormalisedHost(t *testing.T) {
	e, o := startEdge(t)
	c := edge.NewClient(edge.Options{})
	if r := fetch(t, c, e, "example.com", "/a.js"); r.Cache != "MISS" || !r.Cached || r.Status != 200 || r.Bytes == 0 {
		t.Fatalf("first = %+v", r)
	}
	if r := fetch(t, c, e, "example.com", "/a.js"); r.Cache != "HIT" {
		t.Fatalf("second = %+v", r)
	}
	if r := fetch(t, c, e, "EXAMPLE.com:80", "/a.js"); r.Cache != "HIT" {
		t.Fatalf("case/port variant = %+v", r)
	}
	if r := fetch(t, c, e, "other.example", "/a.js"); r.Cache != "MISS" {
		t.Fatalf("other host = %+v", r)
	}
	if o.Requests() != 2 {
		t.Fatalf("origin saw %d requests, want 2", o.Requests())
	}
}

func TestFetchFailures(t *testing.T) {
	e, _ := startEdge(t)
	c := edge.NewClient(edge.Options{})
	_, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: "example.com", Path: "/status/404/x"})
	var se *edge.StatusError
	if !asStatus(err, &se) || se.Code != 404 || edge.IsRetryable(err) {
		t.Fatalf("404: %v", err)
	}
	_, err = c.Fetch(context.Background(), e, edge.FetchRequest{Host: "example.com", Path: "/status/503/x"})
	if !asStatus(err, &se) || se.Code != 503 || !edge.IsRetryable(err) {
		t.Fatalf("503: %v", err)
	}
	res, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: "example.com", Path: "/nocache/x"})
	if err == nil || res.Cached || res.Cache != "UNCACHEABLE" {
		t.Fatalf("nocache: %+v %v", res, err)
	}
	down := e
	down.Address = "127.0.0.1:1"
	if _, err := c.Fetch(context.Background(), down, edge.FetchRequest{Host: "example.com", Path: "/x"}); err == nil || !edge.IsRetryable(err) {
		t.Fatalf("down edge: %v", err)
	}
}

func TestPurgeBanAndTags(t *testing.T) {
	e, _ := startEdge(t)
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	warm := func(host string, paths ...string) {
		for _, p := range paths {
			fetch(t, c, e, host, p)
			if r := fetch(t, c, e, host, p); r.Cache != "HIT" {
				t.Fatalf("warm %s%s = %+v", host, p, r)
			}
		}
	}
	state := func(host, path string) string { return fetch(t, c, e, host, path).Cache }

	warm("a.test", "/one", "/two")
	if err := c.Purge(ctx, e, "a.test", "/one", false); err != nil {
		t.Fatal(err)
	}
	if s := state("a.test", "/one"); s != "MISS" {
		t.Fatalf("purged object = %s", s)
	}
	if s := state("a.test", "/two"); s != "HIT" {
		t.Fatalf("other object = %s", s)
	}

	warm("a.test", "/img/x.png", "/img.png", "/imgs/y.png", "/css/img/z.png")
	warm("b.test", "/img/x.png")
	if err := c.BanPrefix(ctx, e, "a.test", "/img/"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/img/x.png": "MISS", "/img.png": "HIT", "/imgs/y.png": "HIT", "/css/img/z.png": "HIT"} {
		if s := state("a.test", path); s != want {
			t.Fatalf("after prefix ban a.test%s = %s, want %s", path, s, want)
		}
	}
	if s := state("b.test", "/img/x.png"); s != "HIT" {
		t.Fatalf("ban leaked to b.test: %s", s)
	}
	// A dot in the prefix is literal, not "any character".
	warm("a.test", "/v1.2/app.js", "/v1x2/app.js")
	if err := c.BanPrefix(ctx, e, "a.test", "/v1.2/"); err != nil {
		t.Fatal(err)
	}
	if s := state("a.test", "/v1x2/app.js"); s != "HIT" {
		t.Fatalf("dot matched any character: %s", s)
	}
	if s := state("a.test", "/v1.2/app.js"); s != "MISS" {
		t.Fatalf("dotted prefix not banned: %s", s)
	}

	warm("a.test", "/all1")
	warm("b.test", "/all1")
	if err := c.BanPrefix(ctx, e, "a.test", ""); err != nil {
		t.Fatal(err)
	}
	if s := state("a.test", "/all1"); s != "MISS" {
		t.Fatalf("host ban a = %s", s)
	}
	if s := state("b.test", "/all1"); s != "HIT" {
		t.Fatalf("host ban leaked to b = %s", s)
	}

	warm("a.test", "/tag/red,blue/1", "/tag/green/2")
	warm("b.test", "/tag/red/3")
	n, err := c.PurgeTag(ctx, e, "a.test", "red", false)
	if err != nil || n != 1 {
		t.Fatalf("purge tag: %d %v", n, err)
	}
	if s := state("a.test", "/tag/red,blue/1"); s != "MISS" {
		t.Fatalf("tagged = %s", s)
	}
	if s := state("a.test", "/tag/green/2"); s != "HIT" {
		t.Fatalf("untagged = %s", s)
	}
	if s := state("b.test", "/tag/red/3"); s != "HIT" {
		t.Fatalf("tag purge leaked to b = %s", s)
	}

	// Soft purge: the stale copy may still be served (grace) while the edge
	// refetches; what matters is that the next fresh fetch happened.
	warm("a.test", "/soft")
	if err := c.Purge(ctx, e, "a.test", "/soft", true); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeRefusedOutsideACL(t *testing.T) {
	o := &origin.Handler{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: host, Port: p}, PurgeACL: []string{"10.9.9.9"}}
	})
	c := edge.NewClient(edge.Options{})
	err := c.Purge(context.Background(), edges[0].Edge, "a.test", "/x", false)
	var se *edge.StatusError
	if !asStatus(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("purge outside ACL: %v", err)
	}
}
