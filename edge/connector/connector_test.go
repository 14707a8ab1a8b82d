package connector

import (
	"github.com/cdnflow/cdnflow/internal/dnstest"

	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cdnflow/cdnflow/internal/netguard"
)

func port(o *origin) string { return strconv.Itoa(int(o.Addr.Port())) }

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://Origin.Example:443, http://10.0.0.5:8080,http://[2001:db8::1]:80")
	if err != nil {
		t.Fatal(err)
	}
	if FormatOrigins(got) != "https://origin.example:443,http://10.0.0.5:8080,http://[2001:db8::1]:80" {
		t.Fatalf("got %v", FormatOrigins(got))
	}
	if got[0].HostHeader() != "origin.example" || got[1].HostHeader() != "10.0.0.5:8080" || got[2].HostHeader() != "[2001:db8::1]" {
		t.Fatalf("host headers %q %q %q", got[0].HostHeader(), got[1].HostHeader(), got[2].HostHeader())
	}
	for _, bad := range []string{
		"", "origin.example:443", "ftp://o.example:21", "https://o.example", "https://o.example:0",
		"https://o.example:65536", "https://o.example:443/path", "https://u@o.example:443", "https://o.example:443?x",
		"https://o..example:443", "https://-o.example:443", "http://2001:db8::1:80", "http://[fe80::1%eth0]:80",
		"https://o.example:0443", "https://o.example:443,", strings.Repeat("http://o.example:80,", 10) + "http://o.example:80",
	} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}

// Bad internal headers are answered 502 with a reason, a host without a
// site and without a default origin 404; nothing is forwarded.
func TestRefusesRequestsWithoutValidTarget(t *testing.T) {
	o := startOrigin(t, "plain", "127.0.0.1", 0, nil)
	_, base := newConnector(t, Options{AllowLoopback: []string{port(o)}})
	if resp, _ := get(t, base, "", "", "/x"); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("unknown host without a default origin: %d %q, want 404 no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, c := range []struct{ origins, host, reason string }{
		{"gopher://127.0.0.1:" + port(o), "", "want http://host:port"},
		{"http://127.0.0.1", "", "want scheme://host:port"},
		{"http://127.0.0.1:" + port(o), "bad host", "is not a valid Host"},
	} {
		resp, _ := get(t, base, c.origins, c.host, "/x")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), c.reason) {
			t.Errorf("origins %q host %q: %d %q, want 502 with %q", c.origins, c.host, resp.StatusCode, resp.Header.Get(HeaderError), c.reason)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("a refusal must not be cached: Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("the origin saw %d requests", n)
	}
}

// What goes upstream: the path and query, Varnish's X-Forwarded-*, the
// Host asked for; never an X-Cdnflow-* header either way.
func TestForwardsWithoutInternalHeaders(t *testing.T) {
	o := startOrigin(t, "plain", "127.0.0.1", 0, nil)
	_, base := newConnector(t, Options{AllowLoopback: []string{"127.0.0.1:" + port(o)}})
	req, _ := http.NewRequest(http.MethodGet, base+"/static/a.js?v=1", nil)
	req.Header.Set(HeaderOrigins, "http://127.0.0.1:"+port(o))
	req.Header.Set(HeaderOriginHost, "www.site.test")
	req.Header.Set("X-Cdnflow-Anything", "secret")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Host", "www.site.test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(HeaderError) != "" {
		t.Fatalf("status %d, %s %q (the origin's forged header must be dropped)", resp.StatusCode, HeaderError, resp.Header.Get(HeaderError))
	}
	host, _, hdr := o.seen()
	if host != "www.site.test" {
		t.Errorf("origin saw Host %q", host)
	}
	for k := range hdr {
		if strings.HasPrefix(k, "X-Cdnflow-") {
			t.Errorf("origin saw internal header %s", k)
		}
	}
	if hdr.Get("X-Forwarded-For") != "203.0.113.9" || hdr.Get("X-Forwarded-Host") != "www.site.test" {
		t.Errorf("X-Forwarded-* not kept: %v", hdr)
	}
	// Without X-Cdnflow-Origin-Host the origin's own name goes (ORIGIN_HOSTNAME).
	get(t, base, "http://127.0.0.1:"+port(o), "", "/b")
	if host, _, _ := o.seen(); host != "127.0.0.1:"+port(o) {
		t.Errorf("origin saw Host %q, want its own name", host)
	}
}

// TLS origins: SNI is the origin's name, the certificate is verified
// against the system CAs plus CAFile, and each bad certificate is a 502
// whose reason says what is wrong.
func TestTLSOrigins(t *testing.T) {
	dns := dnstest.Start(t)
	ca, otherCA := newCA(t, "cdnflow test CA"), newCA(t, "some other CA")
	now := time.Now()
	good := startOrigin(t, "good", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"good.tls.test"}, now.Add(-time.Hour), now.Add(time.Hour))))
	expired := startOrigin(t, "expired", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"expired.tls.test"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))))
	wrong := startOrigin(t, "wrong", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"other.tls.test"}, now.Add(-time.Hour), now.Add(time.Hour))))
	unknown := startOrigin(t, "unknown", "127.0.0.2", 0, ptr(otherCA.leaf(t, []string{"unknown.tls.test"}, now.Add(-time.Hour), now.Add(time.Hour))))
	for _, n := range []string{"good", "expired", "wrong", "unknown"} {
		dns.Set(n+".tls.test", 60, "127.0.0.2")
	}
	allow := []string{"127.0.0.2:" + port(good), "127.0.0.2:" + port(expired), "127.0.0.2:" + port(wrong), "127.0.0.2:" + port(unknown)}
	_, base := newConnector(t, Options{DNSServer: dns.Addr, AllowLoopback: allow, CAFile: ca.File(t)})

	resp, body := get(t, base, "https://good.tls.test:"+port(good), "www.site.test", "/a.css")
	if resp.StatusCode != 200 || body != "served by good path /a.css" {
		t.Fatalf("good origin: %d %q %q", resp.StatusCode, body, resp.Header.Get(HeaderError))
	}
	if host, sni, _ := good.seen(); sni != "good.tls.test" || host != "www.site.test" {
		t.Fatalf("good origin saw SNI %q Host %q", sni, host)
	}
	for _, c := range []struct {
		o      *origin
		name   string
		reason string
	}{
		{expired, "expired", "x509: certificate has expired or is not yet valid"},
		{wrong, "wrong", "x509: certificate is valid for other.tls.test, not wrong.tls.test"},
		{unknown, "unknown", "x509: certificate signed by unknown authority"},
	} {
		u := "https://" + c.name + ".tls.test:" + port(c.o)
		resp, _ := get(t, base, u, "", "/a.css")
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(HeaderError) == "" ||
			!strings.HasPrefix(resp.Header.Get(HeaderError), u+": "+c.reason) {
			t.Errorf("%s: %d %s=%q, want 502 with %q", c.name, resp.StatusCode, HeaderError, resp.Header.Get(HeaderError), c.reason)
		}
		if n := c.o.requests.Load(); n != 0 {
			t.Errorf("%s origin served %d requests over a bad certificate", c.name, n)
		}
	}

	// The test CA is trusted only through CAFile.
	_, base2 := newConnector(t, Options{DNSServer: dns.Addr, AllowLoopback: allow})
	resp, _ = get(t, base2, "https://good.tls.test:"+port(good), "", "/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), "unknown authority") {
		t.Fatalf("without CAFile: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
	}
	if _, err := New(Options{CAFile: "/nonexistent/ca.pem"}); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func ptr[T any](v T) *T { return &v }

// A name with two addresses: requests alternate between them, each address
// keeps its connection alive, and an address that refuses connections is
// skipped without failing a request.
func TestBalancesOverAllAddresses(t *testing.T) {
	dns := dnstest.Start(t)
	a, b := originPair(t, nil)
	p := port(a)
	dns.Set("lb.test", 1, "127.0.0.2", "127.0.0.3")
	clk := &skewClock{}
	_, base := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{p}}, clk))
	u := "http://lb.test:" + p
	for i := range 20 {
		if resp, body := get(t, base, u, "", "/x"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if a.requests.Load() != 10 || b.requests.Load() != 10 {
		t.Fatalf("requests: 127.0.0.2 %d, 127.0.0.3 %d; want 10 each", a.requests.Load(), b.requests.Load())
	}
	if a.conns.Load() != 1 || b.conns.Load() != 1 {
		t.Fatalf("connections: 127.0.0.2 %d, 127.0.0.3 %d; want 1 each (kept alive per address)", a.conns.Load(), b.conns.Load())
	}

	// A third address with nothing listening: skipped, never a failure.
	dns.Set("lb.test", 1, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	clk.Advance(1100 * time.Millisecond) // the record TTL
	a0, b0 := a.requests.Load(), b.requests.Load()
	for i := range 30 {
		if resp, body := get(t, base, u, "", "/y"); resp.StatusCode != 200 {
			t.Fatalf("request %d with a dead address: %d %q", i, resp.StatusCode, body)
		}
	}
	if da, db := a.requests.Load()-a0, b.requests.Load()-b0; da+db != 30 || da == 0 || db == 0 {
		t.Fatalf("with a dead address: 127.0.0.2 served %d, 127.0.0.3 %d", da, db)
	}
}

// An address change is followed once the record TTL has passed, and never
// later than MaxCacheTTL even when the record TTL is long; in between the
// answer is cached (no new queries). Time passes on the resolver's clock
// (skewClock).
func TestFollowsAddressChange(t *testing.T) {
	dns := dnstest.Start(t)
	a, _ := originPair(t, nil)
	p := port(a)
	clk := &skewClock{}
	c, base := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{p}}, clk))
	if c.res.maxTTL != MaxCacheTTL {
		t.Fatalf("default cache bound %v, want %v", c.res.maxTTL, MaxCacheTTL)
	}
	served := func(u string) string {
		resp, _ := get(t, base, u, "", "/")
		return resp.Header.Get("X-Origin")
	}
	waitFor := func(u, want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for served(u) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s still not served by %s after %v", u, want, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Record TTL 2 s: cached meanwhile, followed after.
	dns.Set("move.test", 2, "127.0.0.2")
	u := "http://move.test:" + p
	if got := served(u); got != "A" {
		t.Fatalf("first answer served by %q", got)
	}
	q := dns.Queries()
	for range 5 {
		served(u)
	}
	if dns.Queries() != q {
		t.Fatalf("answer not cached: %d more DNS queries", dns.Queries()-q)
	}
	dns.Set("move.test", 2, "127.0.0.3")
	clk.Advance(2100 * time.Millisecond)
	waitFor(u, "B", 10*time.Second) // far below the 30 s bound: the TTL was obeyed

	// Record TTL one hour, cache bound 1 s: the bound wins.
	c2, base2 := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{p}, MaxCacheTTL: time.Second}, clk))
	base = base2
	dns.Set("long.test", 3600, "127.0.0.2")
	u = "http://long.test:" + p
	if got := served(u); got != "A" {
		t.Fatalf("first answer served by %q", got)
	}
	dns.Set("long.test", 3600, "127.0.0.3")
	clk.Advance(1100 * time.Millisecond)
	waitFor(u, "B", 10*time.Second)
	if c3, _ := New(Options{MaxCacheTTL: time.Hour}); c3.res.maxTTL != MaxCacheTTL || c2.res.maxTTL != time.Second {
		t.Fatalf("cache bounds %v and %v", c3.res.maxTTL, c2.res.maxTTL)
	}
}

// The policy holds after a DNS change: a name that resolved to an allowed
// address and now resolves to metadata or to loopback on a port that is
// not listed is refused, and the internal service sees nothing.
func TestRefusesInternalTargetsAfterDNSChange(t *testing.T) {
	dns := dnstest.Start(t)
	var allowed, internal *origin
	for range 20 {
		allowed = startOrigin(t, "allowed", "127.0.0.2", 0, nil)
		o, err := listenOrigin(t, "internal", "127.0.0.1", int(allowed.Addr.Port()), nil)
		if err == nil {
			internal = o
			break
		}
		_ = allowed.srv.Close()
	}
	if internal == nil {
		t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	p := port(allowed)
	clk := &skewClock{}
	_, base := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{"127.0.0.2:" + p}, AllowPrivate: true}, clk))
	u := "http://rebind.test:" + p
	dns.Set("rebind.test", 1, "127.0.0.2")
	if resp, body := get(t, base, u, "", "/"); resp.StatusCode != 200 {
		t.Fatalf("allowed address: %d %q", resp.StatusCode, body)
	}
	for _, c := range []struct{ addr, reason string }{
		{"169.254.169.254", "address 169.254.169.254:" + p + " is link-local, metadata, multicast or reserved: refused"},
		{"fd00:ec2::254", "address [fd00:ec2::254]:" + p + " is link-local, metadata, multicast or reserved: refused"},
		{"127.0.0.1", "address 127.0.0.1:" + p + " is loopback: refused"},
	} {
		dns.Set("rebind.test", 1, c.addr)
		clk.Advance(1100 * time.Millisecond) // the record TTL
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, _ := get(t, base, u, "", "/")
			got := resp.Header.Get(HeaderError)
			if resp.StatusCode == http.StatusBadGateway && strings.Contains(got, c.reason) {
				break
			}
			// Until the cached answer expires the allowed origin still serves.
			stale := resp.StatusCode == 200 && resp.Header.Get("X-Origin") == "allowed"
			if (resp.StatusCode != http.StatusBadGateway && !stale) || time.Now().After(deadline) {
				t.Fatalf("%s: %d %q, want a 502 saying %q", c.addr, resp.StatusCode, got, c.reason)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := internal.conns.Load(); n != 0 {
		t.Fatalf("the internal service on 127.0.0.1:%s got %d connections", p, n)
	}
}

// The Control hook is the last word: even a connection that skips the
// resolve-time check (a pooled transport asked directly for an internal
// address) is refused before connect, and so is the connector's own port.
func TestControlHookRefusesEveryConnection(t *testing.T) {
	admin := startOrigin(t, "admin", "127.0.0.1", 0, nil)
	c, base := newConnector(t, Options{AllowLoopback: []string{"127.0.0.2:" + port(admin)}})
	o := Origin{Scheme: "http", Host: "127.0.0.1", Port: int(admin.Addr.Port())}
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin.Addr.String()+"/", nil)
	_, err := c.transportFor(o).RoundTrip(req)
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) || refused.Class != netguard.Loopback {
		t.Fatalf("direct dial of 127.0.0.1:%s: %v, want a refusal", port(admin), err)
	}
	resp, _ := get(t, base, o.String(), "", "/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), "is loopback: refused") {
		t.Fatalf("literal internal origin: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
	}
	if n := admin.conns.Load(); n != 0 {
		t.Fatalf("the refused service got %d connections", n)
	}

	// Its own port, even when listed, so it cannot loop into itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := ln.Addr().String()
	loop, err := New(Options{AllowLoopback: []string{self[strings.LastIndex(self, ":")+1:]}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	resp, _ = get(t, "http://"+self, "http://"+self, "", "/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), "is loopback: refused") {
		t.Fatalf("connector to itself: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
	}
}

func TestProbe(t *testing.T) {
	dns := dnstest.Start(t)
	ca := newCA(t, "cdnflow test CA")
	now := time.Now()
	good := startOrigin(t, "good", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"good.tls.test"}, now.Add(-time.Hour), now.Add(time.Hour))))
	expired := startOrigin(t, "expired", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"expired.tls.test"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))))
	dns.Set("good.tls.test", 60, "127.0.0.2")
	dns.Set("expired.tls.test", 60, "127.0.0.2")
	dns.Set("mixed.tls.test", 60, "127.0.0.2", "10.0.0.7")
	c, err := New(Options{DNSServer: dns.Addr, CAFile: ca.File(t), AllowLoopback: []string{port(good), port(expired)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Probe(ctx, Origin{"https", "good.tls.test", int(good.Addr.Port())}, "", "/health"); err != nil {
		t.Fatalf("good origin: %v", err)
	}
	if host, sni, _ := good.seen(); sni != "good.tls.test" || host != "good.tls.test:"+port(good) {
		t.Fatalf("probe sent SNI %q Host %q", sni, host)
	}
	if err := c.CheckAddresses(ctx, Origin{"https", "good.tls.test", 443}); err == nil {
		t.Fatal("CheckAddresses allowed 127.0.0.2:443, which is not listed")
	}
	if err := c.CheckAddresses(ctx, Origin{"https", "good.tls.test", int(good.Addr.Port())}); err != nil {
		t.Fatalf("CheckAddresses of the good origin: %v", err)
	}
	var oe *OriginError
	if err := c.CheckAddresses(ctx, Origin{"http", "mixed.tls.test", int(good.Addr.Port())}); !errors.As(err, &oe) || oe.Kind != KindRefused || !strings.Contains(err.Error(), "10.0.0.7") {
		t.Fatalf("CheckAddresses of a name with a private address: %v", err)
	}
	deadPort := startOrigin(t, "dead", "127.0.0.2", 0, nil)
	_ = deadPort.srv.Close()
	c2, _ := New(Options{DNSServer: dns.Addr, CAFile: ca.File(t), AllowLoopback: []string{port(good), port(expired), port(deadPort)}})
	for _, tc := range []struct {
		c         *Connector
		o         Origin
		kind      Kind
		permanent bool
		text      string
	}{
		{c, Origin{"https", "expired.tls.test", int(expired.Addr.Port())}, KindCertificate, true, "x509: certificate has expired"},
		{c, Origin{"https", "nx.tls.test", 443}, KindResolve, true, "no such host"},
		{c, Origin{"https", "mixed.tls.test", int(good.Addr.Port())}, KindRefused, true, "10.0.0.7"},
		{c, Origin{"http", "169.254.169.254", 80}, KindRefused, true, "metadata"},
		{c2, Origin{"http", "127.0.0.2", int(deadPort.Addr.Port())}, KindConnect, false, "connection refused"},
	} {
		err := tc.c.Probe(ctx, tc.o, "", "")
		var oe *OriginError
		if !errors.As(err, &oe) || oe.Kind != tc.kind || oe.Kind.Permanent() != tc.permanent || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("probe %s: %v (kind %v), want kind %s with %q", tc.o, err, kindOf(oe), tc.kind, tc.text)
		}
	}
}

func kindOf(oe *OriginError) Kind {
	if oe == nil {
		return ""
	}
	return oe.Kind
}
