package workflows

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/activities"
)

// DesiredSites reads the desired edge state from the distribution
// workflows: the MemoEdgeSite and MemoRollout of every running
// DistributionWorkflow, from visibility. It implements activities.DesiredSites next to the workflow
// that writes the memo.
type DesiredSites struct {
	Temporal client.Client
}

// DesiredSites are the MemoEdgeSite specs and MemoRollout rollouts of the
// running distributions (ListDistributions), and the domain of each
// running one.
func (d DesiredSites) DesiredSites(ctx context.Context) (activities.Desired, error) {
	var out activities.Desired
	for l, err := range ListDistributions(ctx, d.Temporal, DistributionQuery{}) {
		if err != nil {
			return activities.Desired{}, err
		}
		out.Running = append(out.Running, l.Domain())
		if l.Site != nil { // nil: not applied yet
			out.Specs = append(out.Specs, *l.Site)
		}
		if l.Rollout != nil {
			out.Rollouts = append(out.Rollouts, *l.Rollout)
		}
	}
	return out, nil
}
