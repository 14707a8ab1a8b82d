package activities

import (
	"errors"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/inventory"
)

func TestGateWorse(t *testing.T) {
	for _, c := range []struct {
		before, now int
		worse       bool
	}{
		{200, 200, false}, {200, 404, false}, {404, 200, false}, {200, 500, true}, {200, 502, true},
		{404, 503, true}, {500, 502, false}, {200, 403, true}, {403, 403, false}, {403, 200, false}, {503, 403, true},
		{200, noAnswer, true}, {noAnswer, noAnswer, false}, {noAnswer, 200, false}, {noAnswer, 500, true},
	} {
		if got := worse(c.before, c.now); got != c.worse {
			t.Errorf("worse(%d, %d) = %v", c.before, c.now, got)
		}
	}
}

// gate runs GateEdges on a.
func gate(t *testing.T, a *Distribution, in GateInput) ([]EdgeStatus, error) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	var out []EdgeStatus
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.GateEdges, in, &out)
	return out, err
}

// applyOn runs ApplySite of spec on the edges ids.
func applyOn(t *testing.T, a *Distribution, spec distribution.SiteSpec, ids ...string) error {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	return runActivity(t, ts.NewTestActivityEnvironment(), a.ApplySite, ApplySiteInput{Spec: spec, EdgeIDs: ids}, nil)
}

// A rollout as the distribution workflow runs it, on 3 real edges (canary,
// then the 2 others): a good change passes both gates and is live on
// every edge; a change whose origin answers 500, one whose referrer rule
// refuses the distribution's own pages (a new 403), and one whose origin
// certificate the connector does not trust (502) each fail the canary's
// gate, and the revert puts the canary back on the previous
// configuration while the other edges never held the change.
func TestRolloutGateOnRealEdges(t *testing.T) {
	f := startApplyEdges(t, 3)
	a := f.activity(t, []int{0, 1, 2})
	ids := []string{f.edges[0].Edge.ID, f.edges[1].Edge.ID, f.edges[2].Edge.ID}
	tlsOrigin := httptest.NewTLSServer(&origin.Handler{})
	t.Cleanup(tlsOrigin.Close)
	_, tlsPort, _ := net.SplitHostPort(tlsOrigin.Listener.Addr().String())
	tp, _ := strconv.Atoi(tlsPort)

	version := 1
	good := f.spec(version, "/good", false)
	if err := applyOn(t, a, good); err != nil {
		t.Fatal(err)
	}
	others := good.Version // what the edges past the canary hold
	hosts := []string{good.Domain}
	gateIn := func(check []EdgeStatus, baseline []string) GateInput {
		return GateInput{Domain: good.Domain, Hosts: hosts, Path: "/", Check: check, Baseline: baseline}
	}
	for _, tc := range []struct {
		name string
		cfg  func(*distribution.Config)
		want string // in the gate's reason; "" passes
	}{
		{"origin 500", func(c *distribution.Config) { c.Origins[0].OriginPath = "/status/500" }, "answers 500"},
		{"referrer 403", func(c *distribution.Config) {
			c.ReferrerType, c.Referrers, c.IsAllowWhenEmptyReferrer = "WHITELIST", `other\.example`, false
		}, "answers 403"},
		{"bad certificate", func(c *distribution.Config) {
			c.Origins[0] = distribution.Origin{Origin: "127.0.0.1", HTTPSPort: tp}
		}, "answers 502"},
		{"good", func(c *distribution.Config) { c.Origins[0].OriginPath = "/better" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version++
			next := f.spec(version, "/good", false)
			tc.cfg(&next.Config)
			base, err := gate(t, a, gateIn(nil, ids[:1]))
			if err != nil || len(base) != 1 || base[0].Status != 200 {
				t.Fatalf("canary baseline: %+v, %v", base, err)
			}
			if err := applyOn(t, a, next, ids[0]); err != nil {
				t.Fatal(err)
			}
			f.requireGen(t, 0, version)
			f.requireGen(t, 1, others)
			rest, err := gate(t, a, gateIn(base, ids[1:]))
			if tc.want == "" {
				if err != nil || len(rest) != 2 {
					t.Fatalf("good change's canary gate: %+v, %v", rest, err)
				}
				if err := applyOn(t, a, next, ids[1:]...); err != nil {
					t.Fatal(err)
				}
				if _, err := gate(t, a, gateIn(rest, nil)); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					f.requireGen(t, i, version)
					if p, _ := f.fetch(t, i, "/x"); p != "/better/x" {
						t.Fatalf("edge %d fetched %s, want /better/x", i, p)
					}
				}
				return
			}
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != ErrGateFailed || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("canary gate: %v, want %s failing with %q", err, ErrGateFailed, tc.want)
			}
			failed := time.Now()
			version++
			back := f.spec(version, "/good", false)
			if err := applyOn(t, a, back, ids[0]); err != nil {
				t.Fatal(err)
			}
			t.Logf("canary back on the previous configuration %v after the failed gate", time.Since(failed).Round(time.Millisecond))
			f.requireGen(t, 0, version)
			for i := 1; i < 3; i++ {
				f.requireGen(t, i, others) // never saw the change
			}
			for i := range 3 {
				if p, _ := f.fetch(t, i, "/y"+strconv.Itoa(version)); p != "/good/y"+strconv.Itoa(version) {
					t.Fatalf("edge %d fetched %s after the revert", i, p)
				}
			}
		})
	}
	// An edge that does not answer (here: nothing listens at its address)
	// is "no answer": a baseline, and a failure where it answered before.
	dead := f.edges[0].Edge
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Address = ln.Addr().String()
	_ = ln.Close() // the port is free now: connections are refused
	inv, err := inventory.New([]inventory.Edge{dead})
	if err != nil {
		t.Fatal(err)
	}
	da := &Distribution{Inventory: inv, Edges: f.client, ControlPlane: applyCP}
	if out, err := gate(t, da, gateIn(nil, []string{dead.ID})); err != nil || len(out) != 1 || out[0].Status != noAnswer {
		t.Fatalf("baseline of an edge without answer: %+v, %v", out, err)
	}
	_, err = gate(t, da, gateIn([]EdgeStatus{{Edge: dead.ID, Host: hosts[0], Status: 200}}, nil))
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != ErrGateFailed || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("gate of an edge that stopped answering: %v", err)
	}
	// An edge that left the inventory since the plan is skipped, not a
	// failure.
	if out, err := gate(t, a, gateIn([]EdgeStatus{{Edge: "GONE01-C1", Host: hosts[0], Status: 200}}, []string{"GONE01-C1"})); err != nil || len(out) != 0 {
		t.Fatalf("gate of an edge gone from the inventory: %+v, %v", out, err)
	}
}

// The edge sync holds each edge to its own version while a rollout runs:
// the edges the rollout reached keep (or get) its spec, the others keep
// the distribution's last applied one, round after round; once the
// rollout is published done, every edge gets the new spec.
func TestEdgeSyncHonoursRollout(t *testing.T) {
	f := startSyncEdges(t, 3)
	d := &fakeDesired{}
	s := f.sync("cp", f.inventory(t), d)
	v1, v2 := f.spec("r.sync.test", 1, "/v1"), f.spec("r.sync.test", 2, "/v2")
	d.set([]distribution.SiteSpec{v1})
	last := round(t, s, nil, false)
	// The rollout reached edge 0 (put there by ApplySite) and edge 1 (not
	// yet: the sync puts it).
	f.put(t, 0, entry(t, v2, "cp"), false)
	d.roll(SiteRollout{Spec: v2, Edges: []string{f.edges[0].Edge.ID, f.edges[1].Edge.ID}})
	for range 3 {
		last = round(t, s, last, false)
	}
	if r := last[f.edges[0].Edge.ID].Rollouts; len(r) != 1 || r[0] != "r.sync.test@"+entry(t, v2, "cp").Gen.String() {
		t.Fatalf("edge 0's report names rollouts %v", r)
	}
	if r := last[f.edges[2].Edge.ID].Rollouts; len(r) != 0 {
		t.Fatalf("edge 2's report names rollouts %v", r)
	}
	for i, want := range []int{2, 2, 1} {
		if got := f.table(t, i)["r.sync.test"].Gen.Version; got != want {
			t.Fatalf("edge %d holds version %d during the rollout, want %d", i, got, want)
		}
	}
	d.set([]distribution.SiteSpec{v2})
	d.roll()
	round(t, s, last, false)
	for i := range 3 {
		if got := f.table(t, i)["r.sync.test"].Gen.Version; got != 2 {
			t.Fatalf("edge %d holds version %d after the rollout, want 2", i, got)
		}
	}
}
