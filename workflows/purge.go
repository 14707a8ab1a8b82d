package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// Names shared by the purge workflow, worker and API.
const (
	// Purge outcomes kept in StatusAttr.
	PurgeRunning = "RUNNING"
	PurgeDone    = "DONE"
	PurgeExpired = "EXPIRED"
)

// PurgeSeq is one purge seq: at most one API page of paths (NHN splits
// longer lists into several seqs), applied on every edge.
type PurgeSeq struct {
	AppKey   string        `json:"appKey"`
	Domain   string        `json:"domain"`
	Hosts    []string      `json:"hosts"` // domain and aliases
	Type     string        `json:"type"`
	Paths    []string      `json:"paths"` // ITEM paths, WILDCARD prefixes, TAG names; empty for ALL
	Soft     bool          `json:"soft,omitempty"`
	Seq      int64         `json:"seq"`
	PurgeID  int64         `json:"purgeId"`
	EdgeIDs  []string      `json:"edgeIds"`
	Deadline time.Duration `json:"deadline"`
	// CatchUp > 0: an edge still unconfirmed at Deadline is owed a ban of
	// every host for up to CatchUp, sent when it answers again; it counts
	// toward progress (CaughtUp) once the edge registered it.
	CatchUp   time.Duration `json:"catchUp,omitempty"`
	PurgeTime int64         `json:"purgeTime"` // epoch ms the API accepted it
	// Parents maps an edge of EdgeIDs to its parent (shield), also in
	// EdgeIDs: the edge is purged only once its parent confirmed, and
	// caught up only once its parent did (purge_tiers.go). Empty: no
	// tiers, every edge at once.
	Parents map[string]string `json:"parents,omitempty"`
}

// PurgeEdgeState is one edge's part of a purge.
type PurgeEdgeState struct {
	EdgeID string `json:"edgeId"`
	// Confirmed: the edge applied every unit and showed it took effect
	// (Verified says how); only then does the edge count toward progress.
	Confirmed bool   `json:"confirmed"`
	Verified  string `json:"verified,omitempty"`
	Error     string `json:"error,omitempty"`
	// Owed: the edge missed the deadline and is owed a catch-up ban of the
	// domain and aliases; CaughtUp: it got it (and is Confirmed).
	Owed     bool `json:"owed,omitempty"`
	CaughtUp bool `json:"caughtUp,omitempty"`
	// The edge's receipt (activities.PurgeEdgeOutcome): its last HTTP
	// answer ("200 Purged", "200 Ban added", "503"), what the check after
	// it saw (Probe: MISS, the cache-only probe finds no copy cached before
	// the purge; BAN, the edge registered the ban; TAG, xkey answered its
	// count), when it confirmed (epoch ms) and how often it was tried.
	Answer    string `json:"answer,omitempty"`
	Probe     string `json:"probe,omitempty"`
	AppliedAt int64  `json:"appliedAt,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
}

// PurgeStatus answers QueryPurgeStatus. Progress counts confirmed
// edge×path units: it is 100 only when every edge confirmed every path.
type PurgeStatus struct {
	Seq           int64            `json:"seq"`
	Type          string           `json:"type"`
	Progress      int              `json:"progress"`
	State         string           `json:"state"`
	PurgeTime     int64            `json:"purgeTime"`
	LastCheckTime int64            `json:"lastCheckTime"`
	Edges         []PurgeEdgeState `json:"edges"`
}

// PurgeWorkflow applies one purge seq on every edge that serves the domain
// (purgeAllEdges: a Temporal cost independent of the number of edges). An
// unreachable edge is retried until the deadline, then owed a catch-up
// ban of the domain and aliases; progress never counts an edge before it
// confirmed.
func PurgeWorkflow(ctx workflow.Context, req PurgeSeq) (PurgeStatus, error) {
	st := PurgeStatus{Seq: req.Seq, Type: req.Type, State: PurgeRunning, PurgeTime: req.PurgeTime}
	st.LastCheckTime = workflow.Now(ctx).UnixMilli()
	for _, id := range req.EdgeIDs {
		st.Edges = append(st.Edges, PurgeEdgeState{EdgeID: id})
	}
	if err := workflow.SetQueryHandler(ctx, QueryPurgeStatus, func() (PurgeStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	deadline := req.Deadline
	if deadline <= 0 {
		deadline = 30 * time.Minute
	}
	// Tiers: parents before children (purge_tiers.go).
	tiered := len(req.Parents) > 0 && workflow.GetVersion(ctx, changePurgeTiers, workflow.DefaultVersion, 1) == 1
	var confirmed int
	if tiered {
		confirmed = purgeTiered(ctx, req, &st, deadline)
	} else {
		confirmed = purgeAllEdges(ctx, req, &st, deadline)
	}
	if req.CatchUp > 0 && confirmed < len(req.EdgeIDs) {
		if tiered {
			confirmed += catchUpTiered(ctx, req, &st, confirmed)
		} else {
			confirmed += catchUp(ctx, req, &st, confirmed)
		}
	}
	st.State = PurgeDone
	if confirmed < len(req.EdgeIDs) {
		st.State = PurgeExpired
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, StatusAttr.ValueSet(st.State)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert purge status", "error", err)
	}
	countFinished(ctx, KindPurge, st.State)
	PublishJobEvent(ctx, purgeDoneEvent(ctx, req, st))
	return st, nil
}

// purgeActivityOptions: edge activities retried until the deadline,
// heartbeating within the worker's heartbeat timeout.
func purgeActivityOptions(heartbeat, deadline time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ScheduleToCloseTimeout: deadline,
		StartToCloseTimeout:    2 * time.Minute,
		HeartbeatTimeout:       heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    500 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			// Unlimited attempts: the deadline is the bound.
			NonRetryableErrorTypes: []string{activities.ErrUnknownEdge, activities.ErrBadPurge},
		},
	}
}

// progressPercent rounds down, so 100 means every unit is confirmed.
func progressPercent(done, total int) int {
	if total == 0 {
		return 100
	}
	return done * 100 / total
}

// catchUp owes every unconfirmed edge a ban of the purge's hosts and waits
// (up to req.CatchUp) until each edge registered it; it answers how many
// edges caught up. Progress counts an edge only once it caught up.
func catchUp(ctx workflow.Context, req PurgeSeq, st *PurgeStatus, confirmed int) int {
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: req.CatchUp,
		StartToCloseTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrUnknownEdge, activities.ErrBadPurge},
		},
	})
	var a *activities.Purge
	sel := workflow.NewSelector(ctx)
	owed, caught := 0, 0
	for i := range st.Edges {
		if st.Edges[i].Confirmed {
			continue
		}
		i := i
		st.Edges[i].Owed = true
		owed++
		f := workflow.ExecuteActivity(cctx, a.CatchUpEdge, activities.CatchUpEdgeInput{EdgeID: st.Edges[i].EdgeID, Hosts: req.Hosts})
		sel.AddFuture(f, func(f workflow.Future) {
			var res activities.CatchUpEdgeResult
			if err := f.Get(ctx, &res); err != nil {
				st.Edges[i].Error = rootMessage(err)
				return
			}
			caught++
			markCaughtUp(ctx, st, i, res, confirmed+caught, len(req.EdgeIDs))
		})
	}
	for range owed {
		sel.Select(ctx)
	}
	return caught
}

// markCaughtUp records that edge i registered its catch-up ban: it is
// confirmed, its receipt is the ban's (answer, probe BAN, one more
// attempt, applied now) and progress counts done of total edges.
func markCaughtUp(ctx workflow.Context, st *PurgeStatus, i int, res activities.CatchUpEdgeResult, done, total int) {
	e := &st.Edges[i]
	e.Owed, e.CaughtUp, e.Confirmed = false, true, true
	e.Verified, e.Error = res.Verified, ""
	e.Answer, e.Probe, e.Attempts = "200 Ban added", "BAN", e.Attempts+1
	e.AppliedAt = workflow.Now(ctx).UnixMilli()
	st.Progress = progressPercent(done, total)
	st.LastCheckTime = e.AppliedAt
}
