package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

func edgeIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("e%04d", i)
	}
	return out
}

// Every edge is in exactly one wave, the first wave is one edge, the
// waves follow the shares (small fleets: canary, then all), every share
// gets a wave once the fleet has an edge per wave (so 10 and 1,000 edges
// cost the same waves), and canaries of different domains spread over
// the fleet.
func TestPlanWaves(t *testing.T) {
	shares := []float64{0.1, 0.5, 1}
	for _, tc := range []struct {
		n         int
		everyWave bool
		sizes     []int
	}{
		{0, true, nil}, {1, true, []int{1}}, {2, true, []int{1, 1}}, {3, true, []int{1, 2}},
		{4, true, []int{1, 1, 1, 1}}, // 10 % of 4 is the canary: the next edge is its wave
		{5, true, []int{1, 1, 1, 2}}, {10, true, []int{1, 1, 3, 5}},
		{50, true, []int{1, 4, 20, 25}}, {1000, true, []int{1, 99, 400, 500}},
		// Histories from before every wave ran skip a share that adds no edge.
		{4, false, []int{1, 1, 2}}, {10, false, []int{1, 4, 5}}, {1000, false, []int{1, 99, 400, 500}},
	} {
		waves := planWaves(edgeIDs(tc.n), shares, "d.test", tc.everyWave)
		var sizes []int
		var all []string
		for _, w := range waves {
			sizes = append(sizes, len(w))
			all = append(all, w...)
		}
		if !slices.Equal(sizes, tc.sizes) {
			t.Errorf("%d edges (every wave %v): wave sizes %v, want %v", tc.n, tc.everyWave, sizes, tc.sizes)
		}
		slices.Sort(all)
		if !slices.Equal(all, edgeIDs(tc.n)) {
			t.Errorf("%d edges: waves do not hold every edge once: %v", tc.n, waves)
		}
	}
	canaries := map[string]bool{}
	for i := range 50 {
		canaries[planWaves(edgeIDs(50), shares, fmt.Sprintf("d%d.test", i), true)[0][0]] = true
	}
	if len(canaries) < 20 {
		t.Fatalf("50 domains have %d canaries among 50 edges, want them spread", len(canaries))
	}
	if a, b := planWaves(edgeIDs(50), shares, "x.test", true), planWaves(edgeIDs(50), shares, "x.test", true); !slices.EqualFunc(a, b, slices.Equal) {
		t.Fatal("one domain's plan is not stable")
	}
}

// rolloutEnv runs an OPEN distribution of origin "good.origin" over n
// edges whose gate answers 200, except 500 on the edges that hold a
// config with origin "bad.origin".
type rolloutEnv struct {
	env   *testsuite.TestWorkflowEnvironment
	mu    sync.Mutex
	held  map[string]string // edge → origin it holds
	apply []activities.ApplySiteInput
	gates int
	edges []string
	// refuse, when set, may refuse an ApplySite (before it changes anything).
	refuse func(activities.ApplySiteInput) error
}

func newRolloutEnv(t *testing.T, n int, noPlan ...bool) *rolloutEnv {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	r := &rolloutEnv{env: ts.NewTestWorkflowEnvironment(), held: map[string]string{}, edges: edgeIDs(n)}
	for _, id := range r.edges {
		r.held[id] = "good.origin"
	}
	env := r.env
	env.RegisterWorkflow(DistributionWorkflow)
	env.RegisterActivity(&activities.Knobs{EdgeApplyAttempts: 2, EdgeErrorRetry: time.Minute})
	env.RegisterActivity(&activities.Distribution{})
	env.OnActivity(distributionActivities.ProbeDistributionOrigins, mock.Anything, mock.Anything).Return(nil)
	if len(noPlan) > 0 && noPlan[0] {
		env.OnActivity(distributionActivities.RolloutFleet, mock.Anything).Return(activities.RolloutFleet{}, errors.New("no plan"))
	} else {
		env.OnActivity(distributionActivities.RolloutFleet, mock.Anything).Return(activities.RolloutFleet{
			Edges: r.edges, RolloutKnobs: activities.RolloutKnobs{Bake: time.Second},
		}, nil)
	}
	env.OnActivity(distributionActivities.ApplySite, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ApplySiteInput) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.apply = append(r.apply, in)
		if r.refuse != nil {
			if err := r.refuse(in); err != nil {
				return err
			}
		}
		ids := in.EdgeIDs
		if len(ids) == 0 {
			ids = r.edges
		}
		for _, id := range ids {
			r.held[id] = in.Spec.Config.Origins[0].Origin
		}
		return nil
	})
	env.OnActivity(distributionActivities.GateEdges, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GateInput) ([]activities.EdgeStatus, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.gates++
		status := func(id string) int {
			if r.held[id] == "bad.origin" {
				return 500
			}
			return 200
		}
		for _, c := range in.Check {
			if s := status(c.Edge); s >= 500 && c.Status < 500 {
				return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("rollout gate failed: edge %s answers %d", c.Edge, s), activities.ErrGateFailed, nil)
			}
		}
		var out []activities.EdgeStatus
		for _, id := range in.Baseline {
			for _, h := range in.Hosts {
				out = append(out, activities.EdgeStatus{Edge: id, Host: h, Status: status(id)})
			}
		}
		return out, nil
	})
	return r
}

func originCfg(host string) distribution.Config {
	return distribution.Config{UseOrigin: "Y", Origins: []distribution.Origin{{Origin: host, Port: 80}}}
}

// run starts the OPEN distribution, sends a modify to cfg after a minute,
// then deletes it after an hour, and returns the state after the modify
// and its edge versions.
func (r *rolloutEnv) run(t *testing.T, cfg distribution.Config) (distribution.State, EdgeVersions) {
	t.Helper()
	var st distribution.State
	var ev EdgeVersions
	var out updateOutcome
	r.env.RegisterDelayedCallback(func() {
		r.env.UpdateWorkflow(UpdateModify, "m", recordUpdate{&out}, ChangeRequest{Config: &cfg})
	}, time.Minute)
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow(QueryDistribution)
		if err == nil {
			_ = v.Get(&st)
		}
		if v, err = r.env.QueryWorkflow(QueryEdgeVersions); err == nil {
			_ = v.Get(&ev)
		}
		r.env.UpdateWorkflow(UpdateDelete, "del", recordUpdate{&updateOutcome{}})
	}, time.Hour)
	r.env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State:   distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpen, Config: originCfg("good.origin")},
		Version: 1, Opened: true,
	})
	if err := r.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if out.rejected != nil || !out.done {
		t.Fatalf("modify: %+v", out)
	}
	return st, ev
}

// A good change reaches the fleet wave by wave (canary, 10 %, 50 %,
// 100 %), each edge once, behind a gate per wave, and ends OPEN with every
// edge on its version; activities grow with the waves, not the edges.
func TestRolloutGoodChangeInWaves(t *testing.T) {
	for _, n := range []int{3, 50, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := newRolloutEnv(t, n)
			st, ev := r.run(t, originCfg("new.origin"))
			if st.Status != distribution.StatusOpen {
				t.Fatalf("after the rollout: %+v", st)
			}
			waves := planWaves(r.edges, defaultRolloutWaves, "d.test", true)
			// The rollout's applies, then the delete's (every edge).
			applies := r.apply[:len(r.apply)-1]
			if len(applies) != len(waves) {
				t.Fatalf("%d ApplySite for %d waves", len(applies), len(waves))
			}
			for i, a := range applies {
				if !slices.Equal(a.EdgeIDs, waves[i]) || a.Spec.Version != 2 {
					t.Fatalf("apply %d: edges %v version %d, want wave %v version 2", i, a.EdgeIDs, a.Spec.Version, waves[i])
				}
			}
			if r.gates != len(waves)+1 {
				t.Fatalf("%d gates for %d waves, want one before and one per wave", r.gates, len(waves))
			}
			if ev.Version != 2 || len(ev.Edges) != 0 || ev.Wave != 0 {
				t.Fatalf("edge versions after the rollout: %+v", ev)
			}
		})
	}
}

// A change whose answers turn 5xx stops at the canary: the canary gets the
// last good config back as a newer version, the other edges never see
// the change, the distribution is in ERROR with the gate's reason and the
// change is not tried again by itself.
func TestRolloutBadChangeStopsAtCanary(t *testing.T) {
	r := newRolloutEnv(t, 50)
	st, ev := r.run(t, originCfg("bad.origin"))
	if st.Status != distribution.StatusError || !strings.Contains(st.LastError, "rollout gate failed") {
		t.Fatalf("after the bad change: %+v", st)
	}
	canary := planWaves(r.edges, defaultRolloutWaves, "d.test", true)[0]
	applies := r.apply[:len(r.apply)-1] // the delete's is last
	if len(applies) != 2 {
		t.Fatalf("%d ApplySite before the delete, want the canary's and its revert: %+v", len(applies), applies)
	}
	if a := applies[0]; !slices.Equal(a.EdgeIDs, canary) || a.Spec.Config.Origins[0].Origin != "bad.origin" {
		t.Fatalf("first apply: %+v", a)
	}
	if a := applies[1]; !slices.Equal(a.EdgeIDs, canary) || a.Spec.Config.Origins[0].Origin != "good.origin" || a.Spec.Version != 3 {
		t.Fatalf("revert: %+v, want the canary back on good.origin as version 3", a)
	}
	if ev.Version != 1 || len(ev.Edges) != 1 || ev.Edges[canary[0]] != 3 {
		t.Fatalf("edge versions after the revert: %+v", ev)
	}
	if st.Config.Origins[0].Origin != "good.origin" {
		t.Fatalf("state config after a failed rollout: %+v", st.Config)
	}
}

// Immediate changes, suspensions, deletions, creations and reverts are
// not staged; a staged change without a rollout plan (the worker did not
// answer) goes to every edge in one ApplySite.
func TestRolloutImmediate(t *testing.T) {
	cfg := originCfg("x")
	d := &entity{lastGood: &cfg}
	for _, c := range []change{
		{during: distribution.StatusModifying, immediate: true},
		{during: distribution.StatusSuspending},
		{during: distribution.StatusClosing, deleted: true},
		{during: distribution.StatusOpening},
		{}, // a revert
	} {
		if d.staged(c) {
			t.Errorf("%+v is staged", c)
		}
	}
	if !d.staged(change{during: distribution.StatusModifying}) || !d.staged(change{during: distribution.StatusResume}) {
		t.Error("a modify or resume of a served distribution is not staged")
	}
	if (&entity{}).staged(change{during: distribution.StatusModifying}) {
		t.Error("a modify of a distribution never served is staged")
	}
	r := newRolloutEnv(t, 50, true)
	st, _ := r.run(t, originCfg("new.origin"))
	if st.Status != distribution.StatusOpen || len(r.apply) != 2 || len(r.apply[0].EdgeIDs) != 0 || r.gates != 0 {
		t.Fatalf("state %+v, applies %+v, gates %d", st, r.apply, r.gates)
	}
}

// An edge of a later wave that refuses the change stops the rollout: every
// edge touched so far (the canary and that wave) gets the last good config
// back, the distribution is in ERROR with the refusal, and the change
// stays to be tried again (the refusal may be the edge's, not the
// change's).
func TestRolloutRefusalInLaterWaveRevertsTouched(t *testing.T) {
	r := newRolloutEnv(t, 10)
	waves := planWaves(r.edges, defaultRolloutWaves, "d.test", true)
	refusing := waves[1][0]
	r.refuse = func(in activities.ApplySiteInput) error {
		if in.Spec.Config.Origins[0].Origin == "new.origin" && slices.Contains(in.EdgeIDs, refusing) {
			return temporal.NewNonRetryableApplicationError("edge "+refusing+" refuses the entry", activities.ErrBadSite, nil)
		}
		return nil
	}
	st, ev := r.run(t, originCfg("new.origin"))
	applies := r.apply
	if st.Status != distribution.StatusError || !strings.Contains(st.LastError, refusing) {
		t.Fatalf("after the refusal: %+v", st)
	}
	touched := append(slices.Clone(waves[0]), waves[1]...)
	if len(applies) < 3 {
		t.Fatalf("applies %+v", applies)
	}
	if rev := applies[2]; !slices.Equal(rev.EdgeIDs, touched) || rev.Spec.Config.Origins[0].Origin != "good.origin" {
		t.Fatalf("revert %+v, want the canary and wave 2 %v back on good.origin", rev, touched)
	}
	if len(ev.Edges) != len(touched) {
		t.Fatalf("edge versions after the revert: %+v", ev)
	}
}
