package workflows

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/distribution"
)

// DesiredSites reads the desired edge state from the distribution
// workflows: the MemoEdgeSite of every running DistributionWorkflow, from
// visibility. It implements activities.DesiredSites next to the workflow
// that writes the memo.
type DesiredSites struct {
	Temporal client.Client
}

// DesiredSites pages through the running distributions (1,000 a page):
// their MemoEdgeSite specs, and the domain of each (the last segment of
// DistributionWorkflowID).
func (d DesiredSites) DesiredSites(ctx context.Context) ([]distribution.SiteSpec, []string, error) {
	q := "WorkflowType = 'DistributionWorkflow' AND ExecutionStatus = 'Running'"
	dc := converter.GetDefaultDataConverter()
	var out []distribution.SiteSpec
	var running []string
	var token []byte
	for {
		resp, err := d.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, nil, fmt.Errorf("list distributions: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			id := ex.GetExecution().GetWorkflowId()
			running = append(running, id[strings.LastIndexByte(id, '/')+1:])
			p, ok := ex.GetMemo().GetFields()[MemoEdgeSite]
			if !ok {
				continue // not applied yet
			}
			var spec distribution.SiteSpec
			if err := dc.FromPayload(p, &spec); err != nil {
				return nil, nil, fmt.Errorf("memo of %s: %w", id, err)
			}
			out = append(out, spec)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, running, nil
		}
	}
}
