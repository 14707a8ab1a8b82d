package workflows

import (
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// Time bounds of the first pass over the edges, a local activity run inside the
// purge's first workflow task: most purges end there, so a purge costs one
// workflow task and no activity task whatever the number of edges.
const (
	purgeLocalBudget = 2 * time.Second
	// purgeLastPassGrace lets the activity's last attempt, started after the
	// deadline, make its pass and report every edge.
	purgeLastPassGrace = 2 * time.Minute
)

// purgeAllEdges applies the purge on every edge with PurgeEdges: first as a
// local activity (up to purgeLocalBudget), then — for the edges still
// unconfirmed — as one activity that Temporal retries with backoff until
// the deadline, resuming from its heartbeat. It answers how many edges
// confirmed; st has every edge's state.
func purgeAllEdges(ctx workflow.Context, req PurgeSeq, st *PurgeStatus, deadline time.Duration) int {
	start := workflow.Now(ctx)
	var a *activities.Purge
	in := activities.PurgeEdgesInput{EdgeIDs: req.EdgeIDs, Hosts: req.Hosts, Type: req.Type, Paths: req.Paths, Soft: req.Soft,
		Budget: min(purgeLocalBudget, deadline/2)}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: in.Budget + 5*time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var first activities.PurgeEdgesResult
	if err := workflow.ExecuteLocalActivity(lctx, a.PurgeEdges, in).Get(ctx, &first); err != nil {
		workflow.GetLogger(ctx).Warn("purge first pass failed; the activity retries every edge", "error", err)
	}
	applyOutcomes(ctx, st, first.Edges)
	var rest []string
	var resume []activities.PurgeEdgeOutcome
	for _, r := range first.Edges {
		if !r.Confirmed && !r.Final {
			rest = append(rest, r.EdgeID)
			resume = append(resume, r)
		}
	}
	if len(first.Edges) == 0 {
		rest = req.EdgeIDs
	}
	if len(rest) > 0 {
		remaining := max(deadline-workflow.Now(ctx).Sub(start), time.Second)
		// Only a purge that outlives its first pass asks the worker for its
		// heartbeat timeout: most purges end in one workflow task.
		opts := purgeActivityOptions(workerKnobs(ctx).HeartbeatTimeout, remaining+purgeLastPassGrace)
		in.EdgeIDs, in.Budget, in.Resume, in.Until = rest, 0, resume, start.Add(deadline).UnixMilli()
		var res activities.PurgeEdgesResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.PurgeEdges, in).Get(ctx, &res); err != nil {
			rows, _ := outcomesFromError(err)
			applyOutcomes(ctx, st, rows)
			for i := range st.Edges {
				// Only this pass's edges: a tiered purge runs passes side by side.
				if !st.Edges[i].Confirmed && st.Edges[i].Error == "" && slices.Contains(req.EdgeIDs, st.Edges[i].EdgeID) {
					st.Edges[i].Error = rootMessage(err)
				}
			}
		} else {
			applyOutcomes(ctx, st, res.Edges)
		}
	}
	return confirmedEdges(st)
}

// applyOutcomes copies PurgeEdges rows into the purge's edge states.
func applyOutcomes(ctx workflow.Context, st *PurgeStatus, rows []activities.PurgeEdgeOutcome) {
	at := map[string]int{}
	for i, e := range st.Edges {
		at[e.EdgeID] = i
	}
	for _, r := range rows {
		i, ok := at[r.EdgeID]
		if !ok || st.Edges[i].Confirmed {
			continue
		}
		st.Edges[i].Confirmed, st.Edges[i].Verified = r.Confirmed, r.Verified
		st.Edges[i].Answer, st.Edges[i].Probe, st.Edges[i].AppliedAt = r.Answer, r.Probe, r.AppliedAt
		st.Edges[i].Attempts = max(st.Edges[i].Attempts, r.Attempts)
		if r.Error != "" || r.Confirmed {
			st.Edges[i].Error = r.Error
		}
	}
	st.Progress = progressPercent(confirmedEdges(st), len(st.Edges))
	st.LastCheckTime = workflow.Now(ctx).UnixMilli()
}

func confirmedEdges(st *PurgeStatus) int {
	n := 0
	for _, e := range st.Edges {
		if e.Confirmed {
			n++
		}
	}
	return n
}

// outcomesFromError reads the rows a failed PurgeEdges left: the last
// heartbeat of a timed-out attempt, or the details of its last failure.
func outcomesFromError(err error) ([]activities.PurgeEdgeOutcome, bool) {
	var rows []activities.PurgeEdgeOutcome
	var te *temporal.TimeoutError
	if errors.As(err, &te) && te.HasLastHeartbeatDetails() && te.LastHeartbeatDetails(&rows) == nil {
		return rows, true
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.HasDetails() && ae.Details(&rows) == nil {
		return rows, true
	}
	return nil, false
}
