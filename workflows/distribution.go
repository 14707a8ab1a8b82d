package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

// DistributionInit starts a distribution's entity workflow. Its edges are
// the serving edges of the inventory of the worker that applies each
// change (activities.ApplySite), not a list fixed at creation. How a
// change is tried on the edges (attempts, heartbeat, the wait before a
// change in ERROR is tried again) is the worker's (activities.Knobs),
// asked once per run.
type DistributionInit struct {
	State distribution.State `json:"state"`
	// Version of the last change sent to edges (continue-as-new carries it).
	Version int `json:"version"`
	// Opened is set once the first apply finished (continue-as-new).
	Opened bool `json:"opened"`
	// Versions are the newest accepted changes (at most MaxVersions),
	// oldest first; the API starts the workflow with version 1 (the
	// creation) and continue-as-new carries them.
	Versions []distribution.Version `json:"versions,omitempty"`
}

// maxErrorRetry caps the wait between two tries of a change in ERROR.
const maxErrorRetry = 10 * time.Minute

// change is one accepted change as the lifecycle runs it: the
// transitional status, the status it ends in, the configuration and
// whether it suspends or deletes. A change that ended in ERROR is kept
// (entity.failed) to be tried again.
type change struct {
	during, final string
	cfg           distribution.Config
	suspended     bool
	deleted       bool
	// immediate skips the staged rollout: every edge at once (a rollback
	// that asked for it).
	immediate bool
}

// entity is a running distribution workflow: its input, state and the
// change in flight.
type entity struct {
	in DistributionInit
	// knobs are the worker's, asked once per run (nil until then).
	knobs    *activities.Knobs
	st       *distribution.State
	busy     bool
	closed   bool
	lastGood *distribution.Config
	lastSusp bool
	// callbacks still being delivered; the workflow outlives them.
	callbacks int
	// failed is the change that put the distribution in ERROR, if any.
	failed *change
	// edges is the site version each serving edge holds
	// (QueryEdgeVersions).
	edges EdgeVersions
}

// DistributionWorkflow is the one long-running entity of a distribution:
// its state machine (OPENING → OPEN, MODIFYING, SUSPENDING/SUSPEND, RESUME,
// CLOSING → CLOSE, ERROR) takes changes as Updates whose validators refuse
// a change in the wrong state or while another one runs.
func DistributionWorkflow(ctx workflow.Context, in DistributionInit) (distribution.State, error) {
	st := in.State
	d := &entity{in: in, st: &st}
	d.initVersions()
	if in.Opened {
		cfg := st.Config
		d.lastGood = &cfg
		d.lastSusp = st.Status == distribution.StatusSuspend
		// The last version sent (or a revert's, of equal content) is
		// what every edge holds as far as this run knows.
		d.edges.Version = in.Version
	}
	d.setServed()
	if err := workflow.SetQueryHandler(ctx, QueryDistribution, func() (distribution.State, error) { return *d.st, nil }); err != nil {
		return st, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryEdgeVersions, func() (EdgeVersions, error) { return d.edges, nil }); err != nil {
		return st, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryClaimedHosts, func() ([]string, error) { return d.claimedHosts(nil), nil }); err != nil {
		return st, err
	}
	d.registerUpdates(ctx)
	knobs := workerKnobs(ctx)
	d.knobs = &knobs
	workflow.Go(ctx, d.retryErrors)

	if !in.Opened {
		d.busy = true
		d.run(ctx, change{during: distribution.StatusOpening, final: distribution.StatusOpen, cfg: st.Config})
		d.in.Opened = true
		d.busy = false
	}
	err := workflow.Await(ctx, func() bool {
		return d.closed || (!d.busy && workflow.GetInfo(ctx).GetContinueAsNewSuggested())
	})
	if err != nil {
		return *d.st, err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && d.callbacks == 0 }); err != nil {
		return *d.st, err
	}
	if d.closed {
		return *d.st, nil
	}
	d.in.State = *d.st
	return *d.st, workflow.NewContinueAsNewError(ctx, DistributionWorkflow, d.in)
}

func (d *entity) registerUpdates(ctx workflow.Context) {
	guard := func(allowed ...string) func() error {
		return func() error {
			if d.busy {
				return temporal.NewApplicationError("another operation is in progress on "+d.st.Domain+" (status "+d.st.Status+")", ErrOperationInFlight)
			}
			for _, s := range allowed {
				if d.st.Status == s {
					return nil
				}
			}
			return temporal.NewApplicationError("distribution "+d.st.Domain+" is "+d.st.Status+"; this change needs one of "+joinStatus(allowed), ErrInvalidState)
		}
	}
	// guarded is guard plus the caller's If-Match (checkIfMatch).
	guarded := func(allowed ...string) func(ChangeRequest) error {
		return func(req ChangeRequest) error {
			if err := guard(allowed...)(); err != nil {
				return err
			}
			return d.checkIfMatch(req.IfMatch)
		}
	}
	// Each handler records its version before anything yields.
	_ = workflow.SetUpdateHandlerWithOptions(ctx, UpdateModify, func(ctx workflow.Context, req ChangeRequest) (distribution.State, error) {
		d.busy = true
		defer func() { d.busy = false }()
		// The validator refuses a request without a config; replay does
		// not run validators, and histories recorded when the argument
		// was the config itself decode to a request without one.
		cfg := d.st.Config
		if req.Config != nil {
			cfg = *req.Config
		}
		final := distribution.StatusOpen
		if d.st.Status == distribution.StatusSuspend {
			final = distribution.StatusSuspend
		}
		suspended := final == distribution.StatusSuspend
		d.record(ctx, distribution.Version{Action: distribution.ActionModify, KeyID: req.KeyID, RequestID: req.RequestID, Config: cfg, Suspended: suspended})
		d.run(ctx, change{during: distribution.StatusModifying, final: final, cfg: cfg, suspended: suspended})
		return *d.st, nil
	}, workflow.UpdateHandlerOptions{Validator: func(req ChangeRequest) error {
		if req.Config == nil {
			return temporal.NewApplicationError("modify needs a config", ErrInvalidState)
		}
		return guarded(distribution.StatusOpen, distribution.StatusSuspend, distribution.StatusError)(req)
	}})
	_ = workflow.SetUpdateHandlerWithOptions(ctx, UpdateSuspend, func(ctx workflow.Context, req ChangeRequest) (distribution.State, error) {
		d.busy = true
		defer func() { d.busy = false }()
		d.record(ctx, distribution.Version{Action: distribution.ActionSuspend, KeyID: req.KeyID, RequestID: req.RequestID, Config: d.st.Config, Suspended: true})
		d.run(ctx, change{during: distribution.StatusSuspending, final: distribution.StatusSuspend, cfg: d.st.Config, suspended: true})
		return *d.st, nil
	}, workflow.UpdateHandlerOptions{Validator: guarded(distribution.StatusOpen)})
	_ = workflow.SetUpdateHandlerWithOptions(ctx, UpdateResume, func(ctx workflow.Context, req ChangeRequest) (distribution.State, error) {
		d.busy = true
		defer func() { d.busy = false }()
		d.record(ctx, distribution.Version{Action: distribution.ActionResume, KeyID: req.KeyID, RequestID: req.RequestID, Config: d.st.Config})
		d.run(ctx, change{during: distribution.StatusResume, final: distribution.StatusOpen, cfg: d.st.Config})
		return *d.st, nil
	}, workflow.UpdateHandlerOptions{Validator: guarded(distribution.StatusSuspend)})
	_ = d.registerVersions(ctx, guard)
	_ = workflow.SetUpdateHandlerWithOptions(ctx, UpdateDelete, func(ctx workflow.Context) (distribution.State, error) {
		d.busy = true
		defer func() { d.busy = false }()
		d.run(ctx, change{during: distribution.StatusClosing, final: distribution.StatusClose, cfg: d.st.Config, deleted: true})
		d.st.Status = distribution.StatusClose // a domain is gone even if an edge lagged
		d.st.DeleteTime = workflow.Now(ctx).UnixMilli()
		d.setStatus(ctx, distribution.StatusClose)
		d.closed = true
		return *d.st, nil
	}, workflow.UpdateHandlerOptions{Validator: guard(distribution.StatusOpen, distribution.StatusSuspend, distribution.StatusError, distribution.StatusOpening)})
}

// run moves through a transitional status, applies the config on every
// edge, and ends in final — or in ERROR with the reason, after putting the
// last good config back on the edges.
func (d *entity) run(ctx workflow.Context, c change) {
	during, final, cfg, suspended, deleted := c.during, c.final, c.cfg, c.suspended, c.deleted
	// The hosts held before: those the change drops are released once it
	// ended (releaseHosts).
	before := d.claimedHosts(&cfg)
	d.failed = &c
	if deleted {
		d.failed = nil // a delete ends the entity whatever the edges said
	}
	d.setStatus(ctx, during)
	if during == distribution.StatusOpening || during == distribution.StatusModifying {
		if reason := d.probeOrigins(ctx, cfg); reason != "" {
			// Nothing of cfg reached an edge: they keep the last good
			// config (or never served this one).
			d.st.LastError = reason
			d.releaseHosts(ctx, before, false)
			d.setStatus(ctx, distribution.StatusError)
			d.notify(ctx)
			return
		}
	}
	if err, reverted, gated := d.apply(ctx, c); err != "" {
		d.st.LastError = err
		if gated {
			// The change itself failed the gate: trying it again would
			// put it on a canary again. The next change replaces it.
			d.failed = nil
		}
		if !deleted {
			switch {
			case reverted: // the rollout put its touched edges back
			case d.lastGood != nil:
				_, _, _ = d.apply(ctx, change{cfg: *d.lastGood, suspended: d.lastSusp})
			default:
				_, _, _ = d.apply(ctx, change{cfg: cfg, deleted: true}) // never served: take it off again
			}
			d.releaseHosts(ctx, before, false)
			d.setStatus(ctx, distribution.StatusError)
			d.notify(ctx)
			return
		}
	} else {
		d.st.LastError = ""
	}
	d.st.Config = cfg
	d.failed = nil
	if !deleted {
		good := cfg
		d.lastGood, d.lastSusp = &good, suspended
		d.setServed()
	}
	d.releaseHosts(ctx, before, deleted)
	d.setStatus(ctx, final)
	d.notify(ctx)
}

// retryErrors tries a change that ended in ERROR again, first after the
// worker's EdgeErrorRetry, then at doubling intervals up to
// maxErrorRetry, until it succeeds or another change (an update)
// replaces it: an edge that was unreachable or an origin that was
// unusable is taken up once the cause is gone, without anyone asking.
func (d *entity) retryErrors(ctx workflow.Context) {
	base := d.knobs.EdgeErrorRetry
	delay := base
	for {
		if err := workflow.Await(ctx, func() bool {
			return d.closed || (d.failed != nil && !d.busy && d.st.Status == distribution.StatusError)
		}); err != nil || d.closed {
			return
		}
		f := d.failed
		changed, err := workflow.AwaitWithTimeout(ctx, delay, func() bool { return d.failed != f || d.busy || d.closed })
		if err != nil {
			return
		}
		if changed {
			delay = base
			continue
		}
		d.busy = true
		if reason := d.claimForRetry(ctx, f); reason != "" {
			d.st.LastError = reason
			d.setStatus(ctx, distribution.StatusError)
		} else {
			d.run(ctx, *f)
		}
		d.busy = false
		if d.failed == nil {
			delay = base
		} else {
			delay = min(2*delay, maxErrorRetry)
		}
	}
}

// changeProbeLocal: the origin probe runs as a local activity.
const changeProbeLocal = "distribution-probe-local"

// probeOrigins checks cfg's origins as the edges' connectors will fetch
// them (ProbeDistributionOrigins) and returns why one is unusable for a
// lasting reason, or "".
func (d *entity) probeOrigins(ctx workflow.Context, cfg distribution.Config) string {
	// Up to 10 origins, each up to 8 addresses with a 5 s connect.
	timeout, retry := 2*time.Minute, &temporal.RetryPolicy{MaximumInterval: 10 * time.Second, MaximumAttempts: 5}
	req := activities.ProbeOriginsRequest{Domain: d.st.Domain, Config: cfg}
	var err error
	if workflow.GetVersion(ctx, changeProbeLocal, workflow.DefaultVersion, 1) == 1 {
		// A local activity: the probe and the ApplySite it gates fit in
		// one workflow task instead of two, a creation takes 2 tasks and 1
		// activity instead of 3 and 2 (issue 28). While it runs, a query
		// waits for that task (at most until its heartbeat, ~8 s).
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: timeout, RetryPolicy: retry})
		err = workflow.ExecuteLocalActivity(lctx, distributionActivities.ProbeDistributionOrigins, req).Get(ctx, nil)
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: timeout, RetryPolicy: retry})
		err = workflow.ExecuteActivity(actx, distributionActivities.ProbeDistributionOrigins, req).Get(ctx, nil)
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() == activities.ErrOriginUnusable {
		return rootMessage(err)
	}
	if err != nil {
		// The probe itself could not run (no worker answered): the edges'
		// connectors still refuse what the policy refuses.
		workflow.GetLogger(ctx).Warn("origin probe did not run", "error", err)
	}
	return ""
}

// apply puts one new version of the distribution with c's config on the
// edges: staged (rollout) when c is a staged change, else on every edge
// at once (applySite). It returns why the edges did not take it, or "";
// reverted true when a stopped rollout already put the last good config
// back on the edges it touched, gated true when that was its health gate.
func (d *entity) apply(ctx workflow.Context, c change) (reason string, reverted, gated bool) {
	spec := d.nextSpec(ctx, c.cfg, c.suspended, c.deleted)
	if d.staged(c) && workflow.GetVersion(ctx, changeRollout, workflow.DefaultVersion, 1) == 1 {
		reason, gated = d.rollout(ctx, spec)
		return reason, reason != "", gated
	}
	return d.applySite(ctx, spec), false, false
}

// nextSpec is the distribution's next site version with cfg.
func (d *entity) nextSpec(ctx workflow.Context, cfg distribution.Config, suspended, deleted bool) distribution.SiteSpec {
	d.in.Version++
	return distribution.SiteSpec{
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, AppKey: d.st.AppKey, Domain: d.st.Domain,
		Version: d.in.Version, Created: d.st.CreateTime, Config: cfg, Suspended: suspended, Deleted: deleted,
	}
}

// applySite puts spec into every edge's site table (one ApplySite
// activity, whatever the number of edges) and records it as the state the
// edge sync loop holds the edges to (MemoEdgeSite). It returns why the
// edges did not take it, or "".
func (d *entity) applySite(ctx workflow.Context, spec distribution.SiteSpec) string {
	if r := d.applyEdges(ctx, spec, nil); r != "" {
		return r
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoEdgeSite: spec}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert edge site memo", "error", err)
	}
	d.edges = EdgeVersions{Version: spec.Version}
	return ""
}

// applyEdges puts spec into the site table of the serving edges ids
// names (nil: every one) with one ApplySite activity. Retries count
// attempts (the worker's EdgeApplyAttempts), not wall-clock time: an
// outage of cdnflow or its store only delays the change. A refusal
// (activities.ErrBadSite) is not retried. It returns why the edges did
// not take it, or "".
func (d *entity) applyEdges(ctx workflow.Context, spec distribution.SiteSpec, ids []string) string {
	// An update taken in the run's first workflow task may get here
	// before the worker answered its knobs.
	if err := workflow.Await(ctx, func() bool { return d.knobs != nil }); err != nil {
		return rootMessage(err)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    d.knobs.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: int32(d.knobs.EdgeApplyAttempts),
			NonRetryableErrorTypes: []string{activities.ErrBadSite},
		},
	})
	in := activities.ApplySiteInput{Spec: spec, EdgeIDs: ids}
	if err := workflow.ExecuteActivity(actx, distributionActivities.ApplySite, in).Get(ctx, nil); err != nil {
		return rootMessage(err)
	}
	return ""
}

func (d *entity) setStatus(ctx workflow.Context, status string) {
	d.st.Status = status
	countFinished(ctx, KindDistribution, status)
	if err := workflow.UpsertTypedSearchAttributes(ctx, StatusAttr.ValueSet(status)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert status", "error", err)
	}
	// The state memo lets the API list a distribution while no worker can
	// answer a query.
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoDistributionState: *d.st}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert state memo", "error", err)
	}
	PublishJobEvent(ctx, distributionStateEvent(ctx, d.st))
}

// notify calls the callback without waiting: a slow or failing callback
// never holds the lifecycle; its outcome is recorded in the state.
func (d *entity) notify(ctx workflow.Context) {
	cb := d.st.Config.Callback
	if cb == nil || cb.URL == "" {
		return
	}
	req := activities.CallbackRequest{Callback: *cb, State: *d.st}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Minute,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrCallbackRefused},
		},
	})
	f := workflow.ExecuteActivity(actx, distributionActivities.DistributionCallback, req)
	status := d.st.Status
	d.callbacks++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { d.callbacks-- }()
		result := distribution.CallbackResult{Status: status, OK: true}
		if err := f.Get(ctx, nil); err != nil {
			result.OK, result.Error = false, rootMessage(err)
		}
		d.st.Callbacks = append(d.st.Callbacks, result)
		if len(d.st.Callbacks) > 20 {
			d.st.Callbacks = d.st.Callbacks[len(d.st.Callbacks)-20:]
		}
	})
}

func joinStatus(list []string) string {
	out := ""
	for i, s := range list {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
