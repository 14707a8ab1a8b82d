package workflows

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/distribution"
)

// DesiredSites reads the desired edge state from the distribution
// workflows: the MemoEdgeSite of every running DistributionWorkflow, from
// visibility. It implements activities.DesiredSites next to the workflow
// that writes the memo.
type DesiredSites struct {
	Temporal client.Client
}

// DesiredSites are the MemoEdgeSite specs of the running distributions
// (ListDistributions), and the domain of each running one.
func (d DesiredSites) DesiredSites(ctx context.Context) ([]distribution.SiteSpec, []string, error) {
	var out []distribution.SiteSpec
	var running []string
	for l, err := range ListDistributions(ctx, d.Temporal, DistributionQuery{}) {
		if err != nil {
			return nil, nil, err
		}
		running = append(running, l.Domain())
		if l.Site != nil { // nil: not applied yet
			out = append(out, *l.Site)
		}
	}
	return out, running, nil
}
