package connector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/dnstest"
)

// While the DNS server fails (no answer, SERVFAIL, REFUSED), an origin
// name's last good addresses keep being used until the serve-stale bound
// past their TTL: requests wait at most staleAnswerWait, then none while
// the failure recheck timer runs; the address policy still applies to the
// stale answer; past the bound the fetch fails as a resolver failure (not
// permanent); once DNS answers again the new answer is used. The TTL and
// the bound are passed on the resolver's clock (skewClock); the client
// response timer is cut to 400 ms (still above the 300 ms a later miss
// may take) and the lookup timeout to 1 s (above the timer plus the
// 500 ms margin, so a miss that waited for the lookup fails).
func TestDNSServeStaleWhileResolverFails(t *testing.T) {
	a, _ := originPair(t, nil)
	p := port(a)
	for _, tc := range []struct {
		name   string
		outage dnstest.Outage
	}{
		{"no-answer", dnstest.OutageDrop},
		{"servfail", dnstest.OutageServFail},
		{"refused", dnstest.OutageRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dns := dnstest.Start(t)
			const bound = 3 * time.Second
			clk := &skewClock{}
			c, base := newConnector(t, Options{DNSServer: dns.Addr, AllowLoopback: []string{p}, DNSServeStale: bound,
				testResolver: func(r *resolver) {
					r.now, r.answerWait, r.lookupTimeout = clk.Now, 400*time.Millisecond, time.Second
				}})
			host := tc.name + ".stale.test"
			dns.Set(host, 1, "127.0.0.2")
			dns.Set("mixed."+host, 1, "127.0.0.2", "10.0.0.7")
			u := "http://" + host + ":" + p
			if resp, body := get(t, base, u, "", "/warm"); resp.StatusCode != 200 {
				t.Fatalf("before the outage: %d %q", resp.StatusCode, body)
			}
			mixed := Origin{"http", "mixed." + host, int(a.Addr.Port())}
			var oe *OriginError
			if err := c.CheckAddresses(context.Background(), mixed); !errors.As(err, &oe) || oe.Kind != KindRefused {
				t.Fatalf("a name with a private address before the outage: %v", err)
			}

			dns.SetOutage(tc.outage)
			clk.Advance(1100 * time.Millisecond) // past the record TTL
			for i := range 6 {
				start := time.Now()
				resp, body := get(t, base, u, "", "/miss")
				if took := time.Since(start); resp.StatusCode != 200 || resp.Header.Get("X-Origin") != "A" || took > c.res.answerWait+500*time.Millisecond {
					t.Fatalf("miss %d during the outage: %d %q from %q in %v", i, resp.StatusCode, body, resp.Header.Get("X-Origin"), took)
				}
				if i > 0 && time.Since(start) > 300*time.Millisecond {
					t.Fatalf("miss %d waited %v: the failure recheck timer should answer stale at once", i, time.Since(start))
				}
			}
			// The policy is applied to stale answers as to fresh ones.
			if err := c.CheckAddresses(context.Background(), mixed); !errors.As(err, &oe) || oe.Kind != KindRefused || !strings.Contains(err.Error(), "10.0.0.7") {
				t.Fatalf("stale answer with a private address: %v", err)
			}

			clk.Advance(bound) // past TTL plus bound: 1.1 s + bound after the outage began
			resp, _ := get(t, base, u, "", "/late")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("past the serve-stale bound: %d, want 502", resp.StatusCode)
			}
			err := c.Probe(context.Background(), Origin{"http", host, int(a.Addr.Port())}, "", "")
			if !errors.As(err, &oe) || oe.Kind != KindResolver || oe.Kind.Permanent() {
				t.Fatalf("probe past the bound: %v (kind %v), want a transient resolver failure", err, kindOf(oe))
			}

			dns.Set(host, 1, "127.0.0.3")
			dns.SetOutage(dnstest.OutageNone)
			if resp, body := get(t, base, u, "", "/back"); resp.StatusCode != 200 || resp.Header.Get("X-Origin") != "B" {
				t.Fatalf("DNS back: %d %q from %q", resp.StatusCode, body, resp.Header.Get("X-Origin"))
			}
		})
	}
}

// An authoritative answer that the name is gone (no A/AAAA records) is
// not a resolver failure: the last good addresses are dropped at once and
// the error is permanent. With serve-stale off (negative bound), a
// resolver failure past the TTL fails at once.
func TestDNSServeStaleEndsOnAnswer(t *testing.T) {
	a, _ := originPair(t, nil)
	p := port(a)
	dns := dnstest.Start(t)
	clk := &skewClock{}
	c, base := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{p}}, clk))
	off, baseOff := newConnector(t, withClock(Options{DNSServer: dns.Addr, AllowLoopback: []string{p}, DNSServeStale: -1}, clk))
	if c.res.staleFor != DefaultServeStale || off.res.staleFor != 0 {
		t.Fatalf("serve-stale bounds %v (default) and %v (off)", c.res.staleFor, off.res.staleFor)
	}
	dns.Set("gone.test", 1, "127.0.0.2")
	dns.Set("down.test", 1, "127.0.0.2")
	for _, b := range []string{base, baseOff} {
		for _, h := range []string{"gone.test", "down.test"} {
			if resp, body := get(t, b, "http://"+h+":"+p, "", "/"); resp.StatusCode != 200 {
				t.Fatalf("first fetch of %s: %d %q", h, resp.StatusCode, body)
			}
		}
	}
	dns.Set("gone.test", 1)              // known, no addresses: an answer
	clk.Advance(1100 * time.Millisecond) // past the record TTL
	if resp, _ := get(t, base, "http://gone.test:"+p, "", "/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("the name has no addresses, still %d", resp.StatusCode)
	}
	var oe *OriginError
	if err := c.CheckAddresses(context.Background(), Origin{"http", "gone.test", int(a.Addr.Port())}); !errors.As(err, &oe) || oe.Kind != KindResolve || !oe.Kind.Permanent() {
		t.Fatalf("a name without addresses: %v (kind %v), want permanent %s", err, kindOf(oe), KindResolve)
	}

	dns.SetOutage(dnstest.OutageServFail)
	if resp, _ := get(t, base, "http://down.test:"+p, "", "/"); resp.StatusCode != 200 {
		t.Fatalf("default bound, resolver failing: %d, want the stale answer", resp.StatusCode)
	}
	if resp, _ := get(t, baseOff, "http://down.test:"+p, "", "/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("serve-stale off, resolver failing: %d, want 502", resp.StatusCode)
	}
}
