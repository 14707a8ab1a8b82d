package workflows

import (
	"context"
	"fmt"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
)

// DesiredSites reads the desired edge state from the distribution
// workflows: the MemoEdgeSite of every running DistributionWorkflow, from
// visibility. It implements activities.DesiredSites next to the workflow
// that writes the memo.
type DesiredSites struct {
	Temporal client.Client
}

// DesiredSites pages through the running distributions (1,000 a page).
func (d DesiredSites) DesiredSites(ctx context.Context) ([]activities.SiteSpec, error) {
	q := "WorkflowType = 'DistributionWorkflow' AND ExecutionStatus = 'Running'"
	dc := converter.GetDefaultDataConverter()
	var out []activities.SiteSpec
	var token []byte
	for {
		resp, err := d.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list distributions: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			p, ok := ex.GetMemo().GetFields()[MemoEdgeSite]
			if !ok {
				continue // not applied yet (or recorded before the site table)
			}
			var spec activities.SiteSpec
			if err := dc.FromPayload(p, &spec); err != nil {
				return nil, fmt.Errorf("memo of %s: %w", ex.GetExecution().GetWorkflowId(), err)
			}
			out = append(out, spec)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}
