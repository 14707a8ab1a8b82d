package workflows

import (
	"errors"
	"hash/fnv"
	"math"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

// changeRollout: a modification (or resume) of a served distribution goes
// to the edges in waves behind a health gate instead of to every edge in
// one ApplySite.
const changeRollout = "distribution-rollout"

// changeEveryWave: every configured rollout share gets a wave of at
// least one edge while edges are left (planWaves), so the waves, and the
// Temporal events a change costs, are the same from a fleet of one edge
// per wave up.
const changeEveryWave = "rollout-every-wave"

// Rollout defaults, for knobs a worker leaves unset.
var defaultRolloutWaves = []float64{0.1, 0.5, 1}

const (
	defaultRolloutHealthPath = "/"
	// smallFleet: fleets of up to this many edges go canary, then all.
	smallFleet = 3
	// gateMaxHosts caps the hosts a gate requests through each edge (the
	// domain first, then aliases).
	gateMaxHosts = 3
)

// EdgeVersions is which site version (distribution.SiteSpec.Version, the
// generation the workflow applied) the serving edges hold, as this
// distribution's workflow applied it.
type EdgeVersions struct {
	// Version is held by every serving edge not in Edges (0: none yet).
	Version int `json:"version"`
	// Edges hold another version: those a rollout in flight reached (its
	// new version), or those a failed rollout put back (the revert's
	// version, whose content is Version's). At most the fleet's size.
	Edges map[string]int `json:"edges,omitempty"`
	// Wave is the rollout wave in flight (1: the canary) of Waves; 0 when
	// no rollout runs.
	Wave  int `json:"wave,omitempty"`
	Waves int `json:"waves,omitempty"`
}

// staged reports whether c goes to the edges in waves: a modification or
// a resume of a distribution the edges serve (lastGood), unless it asks
// for all edges at once (immediate). A creation has no previous answer to
// gate against, and a suspension, a deletion and a revert must reach
// every edge at once.
func (d *entity) staged(c change) bool {
	return !c.immediate && !c.deleted && d.lastGood != nil &&
		(c.during == distribution.StatusModifying || c.during == distribution.StatusResume)
}

// planWaves splits the serving edges into rollout waves: a canary (one
// edge, the one a hash of domain picks, so canaries spread over the
// fleet), then the edges up to each cumulative share of the fleet
// (rounded up). With everyWave, each share's wave holds at least one
// edge while edges are left, so a fleet with an edge per wave runs every
// configured wave and a change costs the same whatever its size (without
// it, shares that add no edge are skipped). Fleets of up to smallFleet
// edges go canary, then all. The edges keep inventory order from the
// canary on, wrapping around. No edges: no waves.
func planWaves(edges []string, shares []float64, domain string, everyWave bool) [][]string {
	n := len(edges)
	if n == 0 {
		return nil
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(domain))
	start := int(h.Sum32() % uint32(n))
	order := append(append(make([]string, 0, n), edges[start:]...), edges[:start]...)
	waves := [][]string{order[:1]}
	if n == 1 {
		return waves
	}
	if n <= smallFleet {
		return append(waves, order[1:])
	}
	done := 1
	for _, s := range shares {
		upto := min(n, int(math.Ceil(s*float64(n)-1e-9)))
		if everyWave {
			upto = min(n, max(upto, done+1))
		}
		if upto <= done {
			continue
		}
		waves = append(waves, order[done:upto])
		done = upto
	}
	if done < n {
		waves = append(waves, order[done:])
	}
	return waves
}

// rolloutFleet asks the worker for its serving edges and rollout knobs
// (activities.RolloutFleet, a local activity history records), with
// defaults for the waves and health path when it leaves them unset.
func (d *entity) rolloutFleet(ctx workflow.Context) (activities.RolloutFleet, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var f activities.RolloutFleet
	if err := workflow.ExecuteLocalActivity(lctx, distributionActivities.RolloutFleet).Get(ctx, &f); err != nil {
		return f, err
	}
	if len(f.Waves) == 0 {
		f.Waves = defaultRolloutWaves
	}
	// Bake is taken as answered: 0 is no bake (--rollout-bake 0).
	f.Bake = max(f.Bake, 0)
	if f.HealthPath == "" {
		f.HealthPath = defaultRolloutHealthPath
	}
	return f, nil
}

// rollout puts spec on the serving edges wave by wave (planWaves). Before
// a wave, the gate records how its edges answer; after it (and its bake,
// but for the last wave), the gate checks they answer no worse
// (activities.GateEdges) and records the next wave's answers in the same
// activity. While it runs, MemoEdgeSite stays the previous spec and
// MemoRollout names the spec and the edges it reached, so the edge sync
// holds each edge to its own version. A refused apply or a failed gate
// stops it: every touched edge gets the last good config back (a newer
// version with the old content) and the reason is returned with
// gated true when the gate failed. Cost: one local activity and one
// GateEdges at the start, one ApplySite and one GateEdges per wave, one
// ApplySite for a revert: O(waves), whatever the number of edges.
func (d *entity) rollout(ctx workflow.Context, spec distribution.SiteSpec) (reason string, gated bool) {
	// An update taken in the run's first workflow task may get here
	// before the worker answered its knobs.
	if err := workflow.Await(ctx, func() bool { return d.knobs != nil }); err != nil {
		return rootMessage(err), false
	}
	fleet, err := d.rolloutFleet(ctx)
	if err != nil {
		// No plan: the change goes to every edge at once, as unstaged.
		workflow.GetLogger(ctx).Warn("rollout plan unavailable; applying to every edge at once", "error", err)
		return d.applySite(ctx, spec), false
	}
	everyWave := workflow.GetVersion(ctx, changeEveryWave, workflow.DefaultVersion, 1) == 1
	waves := planWaves(fleet.Edges, fleet.Waves, d.st.Domain, everyWave)
	if len(waves) == 0 {
		return d.applySite(ctx, spec), false
	}
	hosts := append([]string{spec.Domain}, spec.Config.Aliases()...)
	if len(hosts) > gateMaxHosts {
		hosts = hosts[:gateMaxHosts]
	}
	gctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    d.knobs.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 5 * time.Second, MaximumAttempts: 3,
			NonRetryableErrorTypes: []string{activities.ErrGateFailed},
		},
	})
	gate := func(check []activities.EdgeStatus, baseline []string) ([]activities.EdgeStatus, error) {
		var out []activities.EdgeStatus
		in := activities.GateInput{Domain: spec.Domain, Hosts: hosts, Path: fleet.HealthPath, Check: check, Baseline: baseline}
		err := workflow.ExecuteActivity(gctx, distributionActivities.GateEdges, in).Get(ctx, &out)
		return out, err
	}
	var touched []string
	fail := func(why string, gated bool) (string, bool) {
		d.revert(ctx, touched)
		return why, gated
	}
	base, err := gate(nil, waves[0])
	if err != nil {
		return rootMessage(err), false // nothing touched
	}
	d.edges.Waves = len(waves)
	for i, wave := range waves {
		d.edges.Wave = i + 1
		touched = append(touched, wave...)
		// Published before the apply: a sync round during it must not put
		// the previous spec back on the wave's edges.
		d.upsertRollout(ctx, &activities.SiteRollout{Spec: spec, Edges: touched})
		if r := d.applyEdges(ctx, spec, wave); r != "" {
			return fail(r, false)
		}
		if d.edges.Edges == nil {
			d.edges.Edges = map[string]int{}
		}
		for _, id := range wave {
			d.edges.Edges[id] = spec.Version
		}
		var next []string
		if i+1 < len(waves) {
			next = waves[i+1]
			if err := workflow.Sleep(ctx, fleet.Bake); err != nil {
				return fail(rootMessage(err), false)
			}
		}
		nextBase, err := gate(base, next)
		if err != nil {
			var ae *temporal.ApplicationError
			return fail(rootMessage(err), errors.As(err, &ae) && ae.Type() == activities.ErrGateFailed)
		}
		base = nextBase
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoEdgeSite: spec, MemoRollout: nil}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert edge site memo", "error", err)
	}
	d.edges = EdgeVersions{Version: spec.Version}
	return "", false
}

// revert puts the last good config back on the touched edges of a
// stopped rollout, as a new version (a normal put: its generation is
// newer than the rolled-out one), and publishes it as the desired state:
// the edges the rollout did not reach hold the same content and the edge
// sync leaves them. An edge the revert could not reach is put back by the
// sync. It logs how long the revert took.
func (d *entity) revert(ctx workflow.Context, touched []string) {
	defer d.upsertRollout(ctx, nil)
	d.edges.Wave, d.edges.Waves = 0, 0
	if len(touched) == 0 || d.lastGood == nil {
		return
	}
	start := workflow.Now(ctx)
	spec := d.nextSpec(ctx, *d.lastGood, d.lastSusp, false)
	r := d.applyEdges(ctx, spec, touched)
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoEdgeSite: spec}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert edge site memo", "error", err)
	}
	if d.edges.Edges == nil {
		d.edges.Edges = map[string]int{}
	}
	for _, id := range touched {
		d.edges.Edges[id] = spec.Version
	}
	workflow.GetLogger(ctx).Warn("rollout reverted", "edges", len(touched), "took", workflow.Now(ctx).Sub(start), "error", r)
}

// upsertRollout publishes r as MemoRollout (nil: none in flight).
func (d *entity) upsertRollout(ctx workflow.Context, r *activities.SiteRollout) {
	var v any
	if r != nil {
		v = *r
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoRollout: v}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert rollout memo", "error", err)
	}
}
