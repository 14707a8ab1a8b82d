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

// PurgeRequest is one purge seq: at most one batch of paths (NHN splits
// longer lists into several seqs), applied on every edge.
type PurgeRequest struct {
	AppKey    string        `json:"appKey"`
	Domain    string        `json:"domain"`
	Hosts     []string      `json:"hosts"` // domain and aliases
	Type      string        `json:"type"`
	Paths     []string      `json:"paths"` // ITEM paths, WILDCARD prefixes, TAG names; empty for ALL
	Soft      bool          `json:"soft,omitempty"`
	Seq       int64         `json:"seq"`
	PurgeID   int64         `json:"purgeId"`
	EdgeIDs   []string      `json:"edgeIds"`
	Deadline  time.Duration `json:"deadline"`
	PurgeTime int64         `json:"purgeTime"` // epoch ms the API accepted it
	// HeartbeatTimeout of the per-edge activities; 0 means the default.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
}

// PurgeEdgeState is one edge's part of a purge.
type PurgeEdgeState struct {
	EdgeID string `json:"edgeId"`
	// Confirmed: the edge applied every unit and showed it took effect
	// (Verified says how); only then does the edge count toward progress.
	Confirmed bool   `json:"confirmed"`
	Verified  string `json:"verified,omitempty"`
	Error     string `json:"error,omitempty"`
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

// PurgeWorkflow applies one purge seq on every edge that serves the domain,
// one activity per edge. An unreachable edge is retried until the deadline;
// progress never counts an edge before it confirmed.
func PurgeWorkflow(ctx workflow.Context, req PurgeRequest) (PurgeStatus, error) {
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
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: deadline,
		StartToCloseTimeout:    2 * time.Minute,
		HeartbeatTimeout:       heartbeatOrDefault(req.HeartbeatTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    500 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			// Unlimited attempts: the deadline is the bound.
			NonRetryableErrorTypes: []string{activities.ErrUnknownEdge, activities.ErrBadPurge},
		},
	})
	var a *activities.Purge
	futures := make([]workflow.Future, len(req.EdgeIDs))
	for i, id := range req.EdgeIDs {
		futures[i] = workflow.ExecuteActivity(actx, a.PurgeEdge, activities.PurgeEdgeInput{
			EdgeID: id, Hosts: req.Hosts, Type: req.Type, Paths: req.Paths, Soft: req.Soft,
		})
	}
	confirmed := 0
	sel := workflow.NewSelector(ctx)
	for i := range futures {
		i := i
		sel.AddFuture(futures[i], func(f workflow.Future) {
			var res activities.PurgeEdgeResult
			if err := f.Get(ctx, &res); err != nil {
				st.Edges[i].Error = rootMessage(err)
			} else {
				st.Edges[i].Confirmed = true
				st.Edges[i].Verified = res.Verified
				confirmed++
			}
			st.Progress = progressPercent(confirmed, len(req.EdgeIDs))
			st.LastCheckTime = workflow.Now(ctx).UnixMilli()
		})
	}
	for range futures {
		sel.Select(ctx)
	}
	st.State = PurgeDone
	if confirmed < len(req.EdgeIDs) {
		st.State = PurgeExpired
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, StatusAttr.ValueSet(st.State)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert purge status", "error", err)
	}
	countFinished(ctx, KindPurge, st.State)
	return st, nil
}

// progressPercent rounds down, so 100 means every unit is confirmed.
func progressPercent(done, total int) int {
	if total == 0 {
		return 100
	}
	return done * 100 / total
}
