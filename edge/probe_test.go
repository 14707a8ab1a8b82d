package edge_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/origin"
)

// The cache-only probe on a real varnishd. It reports a fresh
// copy with its age, nothing after a PURGE, no fresh copy after a soft
// purge, never fetches from the origin, and is refused to clients outside
// the purge ACL.
func TestProbeIsCacheOnly(t *testing.T) {
	o := &origin.Handler{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	oh, op, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(op)
	cfg := func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: oh, Port: port}}
	}
	re := edgetest.StartEdges(t, 1, cfg)[0]
	e := re.Edge
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	const host, path = "probe.test", "/%E7%94%BB%E5%83%8F/p.png"

	probe := func(step string, fresh bool) edge.ProbeResult {
		t.Helper()
		r, err := c.Probe(ctx, e, host, path)
		if err != nil || r.Fresh != fresh {
			t.Fatalf("%s: probe = %+v %v, want fresh=%v", step, r, err, fresh)
		}
		return r
	}
	before := o.Requests()
	probe("never cached", false)
	if o.Requests() != before {
		t.Fatalf("the probe of an absent object fetched from the origin")
	}
	if r := fetch(t, c, e, host, path); r.Cache != "MISS" {
		t.Fatalf("probe cached something: first GET = %+v", r)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := probe("cached", true); r.Age < time.Second {
		t.Fatalf("age of a copy cached over a second ago = %s", r.Age)
	}
	if err := c.Purge(ctx, e, host, path, false); err != nil {
		t.Fatal(err)
	}
	probe("after PURGE", false)
	fetch(t, c, e, host, path)
	probe("cached again", true)
	if err := c.Purge(ctx, e, host, path, true); err != nil {
		t.Fatal(err)
	}
	probe("after soft purge", false)

	// A PURGE with PurgeVerifyHeader answers the probe of the
	// object it purged, hard or soft, in the same request; the object is
	// gone (or stale) as after a PURGE and a separate probe.
	for _, soft := range []bool{false, true} {
		// After a soft purge the first GET is served stale while Varnish
		// refetches in the background: fetch until a fresh copy is cached.
		for try := 0; ; try++ {
			fetch(t, c, e, host, path)
			if r, err := c.Probe(ctx, e, host, path); err == nil && r.Fresh {
				break
			}
			if try == 50 {
				t.Fatalf("no fresh copy cached before the verified purge (soft %v)", soft)
			}
			time.Sleep(100 * time.Millisecond)
		}
		r, verified, err := c.PurgeVerified(ctx, e, host, path, soft)
		if err != nil || !verified || r.Fresh {
			t.Fatalf("verified purge (soft %v) = %+v, verified %v, %v; want verified and no fresh copy", soft, r, verified, err)
		}
		probe("after a verified purge", false)
	}
	if _, verified, err := c.PurgeVerified(ctx, e, host, "/never-cached.css", false); err != nil || !verified {
		t.Fatalf("verified purge of an absent object: verified %v, %v", verified, err)
	}

	// Outside the purge ACL the probe is refused (no cache state leaks).
	other := cfg(e.ID)
	other.PurgeACL = []string{"192.0.2.1"}
	re.LoadVCL(t, "probe_acl", other)
	var se *edge.StatusError
	if _, err := c.Probe(ctx, e, host, path); !asStatus(err, &se) || se.Code != 403 {
		t.Fatalf("probe from outside the ACL = %v, want 403", err)
	}
	if _, _, err := c.PurgeVerified(ctx, e, host, path, false); !asStatus(err, &se) || se.Code != 403 {
		t.Fatalf("verified purge from outside the ACL = %v, want 403", err)
	}
}
