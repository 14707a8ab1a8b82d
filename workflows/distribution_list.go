package workflows

import (
	"context"
	"fmt"
	"iter"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

// DistributionQuery selects DistributionWorkflows in visibility. Empty
// fields select everything.
type DistributionQuery struct {
	AppKey string
	// Domain is a lower-case domain name.
	Domain string
	// Status is a CDN status code (StatusAttr).
	Status string
	// Ended includes distributions whose workflow has ended (CLOSE);
	// otherwise only running ones are listed.
	Ended bool
}

// String is q as a visibility query.
func (q DistributionQuery) String() string {
	s := "WorkflowType = 'DistributionWorkflow'"
	for _, f := range []struct{ attr, v string }{
		{AppKeyAttr.GetName(), q.AppKey}, {DomainAttr.GetName(), q.Domain}, {StatusAttr.GetName(), q.Status},
	} {
		if f.v != "" {
			s += fmt.Sprintf(" AND %s = '%s'", f.attr, strings.ReplaceAll(f.v, "'", ""))
		}
	}
	if !q.Ended {
		s += " AND ExecutionStatus = 'Running'"
	}
	return s
}

// ListedDistribution is one DistributionWorkflow as visibility lists it,
// with what the workflow publishes in its memo decoded.
type ListedDistribution struct {
	WorkflowID string
	// State is the state the workflow published at its last status change
	// (MemoDistributionState). Before it publishes one (Published false),
	// State holds the appKey, domain and status search attributes and the
	// start time as CreateTime: callers that need the rest query the
	// workflow.
	State     distribution.State
	Published bool
	// Site is the last spec the workflow applied to the edges
	// (MemoEdgeSite); nil before its first apply.
	Site *distribution.SiteSpec
	// Rollout is the staged change in flight (MemoRollout); nil when none.
	Rollout *activities.SiteRollout
}

// Domain is the lower-case domain the workflow ID names
// (DistributionWorkflowID).
func (l ListedDistribution) Domain() string {
	return l.WorkflowID[strings.LastIndexByte(l.WorkflowID, '/')+1:]
}

// listPageSize is how many executions one visibility page holds.
const listPageSize = 1000

// ListDistributions is the one visibility scan of DistributionWorkflows and
// the one place their memo is decoded: every distribution q selects, page
// by page, until the caller stops or an error, which ends the sequence. A
// state memo that does not decode counts as not published; an edge site
// memo that does not decode is an error, since treating it as never
// applied would take the site off the edges.
func ListDistributions(ctx context.Context, c client.Client, q DistributionQuery) iter.Seq2[ListedDistribution, error] {
	query := q.String()
	return func(yield func(ListedDistribution, error) bool) {
		dc := converter.GetDefaultDataConverter()
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: listPageSize, NextPageToken: token})
			if err != nil {
				yield(ListedDistribution{}, fmt.Errorf("list distributions: %w", err))
				return
			}
			for _, ex := range resp.GetExecutions() {
				l := ListedDistribution{WorkflowID: ex.GetExecution().GetWorkflowId()}
				memo := ex.GetMemo().GetFields()
				if p, ok := memo[MemoDistributionState]; ok {
					l.Published = dc.FromPayload(p, &l.State) == nil
				}
				if !l.Published {
					fields := ex.GetSearchAttributes().GetIndexedFields()
					l.State = distribution.State{
						AppKey: keyword(dc, fields[AppKeyAttr.GetName()]),
						Domain: keyword(dc, fields[DomainAttr.GetName()]),
						Status: keyword(dc, fields[StatusAttr.GetName()]),
					}
					if t := ex.GetStartTime(); t != nil {
						l.State.CreateTime = t.AsTime().UnixMilli()
					}
				}
				if p, ok := memo[MemoEdgeSite]; ok {
					var spec distribution.SiteSpec
					if err := dc.FromPayload(p, &spec); err != nil {
						yield(ListedDistribution{}, fmt.Errorf("memo %s of %s: %w", MemoEdgeSite, l.WorkflowID, err))
						return
					}
					l.Site = &spec
				}
				if p, ok := memo[MemoRollout]; ok {
					// A rollout memo that does not decode is an error too: its
					// edges would be put back to the previous spec mid-rollout.
					var r *activities.SiteRollout
					if err := dc.FromPayload(p, &r); err != nil {
						yield(ListedDistribution{}, fmt.Errorf("memo %s of %s: %w", MemoRollout, l.WorkflowID, err))
						return
					}
					l.Rollout = r
				}
				if !yield(l, nil) {
					return
				}
			}
			token = resp.GetNextPageToken()
			if len(token) == 0 {
				return
			}
		}
	}
}

// keyword is a keyword search attribute's value; "" when absent.
func keyword(dc converter.DataConverter, p *commonpb.Payload) string {
	var v string
	if p != nil {
		_ = dc.FromPayload(p, &v)
	}
	return v
}
