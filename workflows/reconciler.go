package workflows

import (
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// ReconcilerState is carried across continue-as-new.
type ReconcilerState struct {
	EdgeID string                         `json:"edgeId"`
	Sites  map[string]activities.SiteSpec `json:"sites"` // by workflow id; only live sites
	// Pending changes received but not yet applied when the run ended.
	Pending []activities.SiteSpec `json:"pending,omitempty"`
	// HeartbeatTimeout of the VCL load; 0 means the default.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
}

// coalesceWindow lets a burst of changes (100 distributions created at
// once) become one VCL load per edge instead of one each.
const coalesceWindow = 300 * time.Millisecond

var reconcileLoadsPerRun = 500

// EdgeReconcilerWorkflow owns one edge's configuration: distributions send
// it their desired state, it renders all of them into one VCL, loads it
// over the admin CLI and tells each distribution whether its version is
// live. A failed load leaves the edge on its last good VCL (Varnish keeps
// the active one when a new one does not compile or load).
func EdgeReconcilerWorkflow(ctx workflow.Context, st ReconcilerState) error {
	if st.Sites == nil {
		st.Sites = map[string]activities.SiteSpec{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryReconcilerSites, func() (map[string]activities.SiteSpec, error) { return st.Sites, nil }); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, SignalDesiredSite)
	resync := workflow.GetSignalChannel(ctx, SignalResyncEdge)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    heartbeatOrDefault(st.HeartbeatTimeout),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	for loads := 0; loads < reconcileLoadsPerRun; loads++ {
		pending := st.Pending
		st.Pending = nil
		if len(pending) == 0 {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var first activities.SiteSpec
				c.Receive(ctx, &first)
				pending = append(pending, first)
			})
			sel.AddReceive(resync, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
			sel.Select(ctx)
			_ = workflow.Sleep(ctx, coalesceWindow)
		}
		for {
			var more activities.SiteSpec
			if !ch.ReceiveAsync(&more) {
				break
			}
			pending = append(pending, more)
		}
		// Resyncs that arrived meanwhile are covered by this load.
		for resync.ReceiveAsync(nil) {
		}
		next := make(map[string]activities.SiteSpec, len(st.Sites)+len(pending))
		// A map copy: the order of the iteration does not show in the result.
		//workflowcheck:ignore
		for k, v := range st.Sites {
			next[k] = v
		}
		for _, p := range pending {
			if cur, ok := next[p.WorkflowID]; ok && cur.Version > p.Version {
				continue
			}
			if p.Deleted {
				delete(next, p.WorkflowID)
			} else {
				next[p.WorkflowID] = p
			}
		}
		err := workflow.ExecuteActivity(actx, distributionActivities.ApplyEdgeVCL, activities.ApplyEdgeVCLInput{EdgeID: st.EdgeID, Sites: sortedSites(next)}).Get(ctx, nil)
		msg := ""
		if err != nil {
			msg = rootMessage(err)
		} else {
			st.Sites = next
		}
		for _, p := range pending {
			a := EdgeApplied{EdgeID: st.EdgeID, Domain: p.Domain, Version: p.Version, OK: err == nil, Error: msg}
			// A distribution that ended meanwhile cannot be told; that is fine.
			_ = workflow.SignalExternalWorkflow(ctx, p.WorkflowID, "", SignalEdgeApplied, a).Get(ctx, nil)
		}
	}
	// Changes that arrived during the last load are carried into the next run.
	for {
		var more activities.SiteSpec
		if !ch.ReceiveAsync(&more) {
			break
		}
		st.Pending = append(st.Pending, more)
	}
	return workflow.NewContinueAsNewError(ctx, EdgeReconcilerWorkflow, st)
}

func sortedSites(m map[string]activities.SiteSpec) []activities.SiteSpec {
	keys := make([]string, 0, len(m))
	// Keys are sorted below, so the iteration order does not matter.
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]activities.SiteSpec, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
