package workflows

import (
	"context"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/distribution"
)

// pagedVisibility answers ListWorkflow with its pages in order and records
// the queries it was asked.
type pagedVisibility struct {
	client.Client
	pages   [][]*workflowpb.WorkflowExecutionInfo
	queries []string
}

func (v *pagedVisibility) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	v.queries = append(v.queries, req.GetQuery())
	i := len(req.GetNextPageToken())
	resp := &workflowservice.ListWorkflowExecutionsResponse{Executions: v.pages[i]}
	if i+1 < len(v.pages) {
		resp.NextPageToken = make([]byte, i+1)
	}
	return resp, nil
}

// The listing reads every page, decodes the published state and the
// applied site from the memo, and for a distribution that has published
// nothing yet falls back to its search attributes.
func TestListDistributionsDecodesTheMemoOnce(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	payload := func(v any) *commonpb.Payload {
		p, err := dc.ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	st := distribution.State{AppKey: "k1", Domain: "a.example.com", Status: distribution.StatusOpen, Seq: 7}
	spec := distribution.SiteSpec{Domain: "a.example.com", Version: 3}
	published := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: DistributionWorkflowID("k1", "a.example.com")},
		Memo:      &commonpb.Memo{Fields: map[string]*commonpb.Payload{MemoDistributionState: payload(st), MemoEdgeSite: payload(spec)}},
	}
	fresh := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: DistributionWorkflowID("k2", "B.example.com")},
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			AppKeyAttr.GetName(): payload("k2"), DomainAttr.GetName(): payload("b.example.com"), StatusAttr.GetName(): payload(distribution.StatusOpening),
		}},
	}
	v := &pagedVisibility{pages: [][]*workflowpb.WorkflowExecutionInfo{{published}, {fresh}}}
	var got []ListedDistribution
	for l, err := range ListDistributions(context.Background(), v, DistributionQuery{AppKey: "k'1"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	if len(got) != 2 || len(v.queries) != 2 {
		t.Fatalf("listed %d in %d pages, want 2 in 2", len(got), len(v.queries))
	}
	if q := v.queries[0]; !strings.Contains(q, "CdnflowAppKey = 'k1'") || !strings.Contains(q, "ExecutionStatus = 'Running'") {
		t.Errorf("query %q", q)
	}
	if a := got[0]; !a.Published || a.State.Seq != 7 || a.Site == nil || a.Site.Version != 3 || a.Domain() != "a.example.com" {
		t.Errorf("published distribution %+v", a)
	}
	if b := got[1]; b.Published || b.Site != nil || b.State.AppKey != "k2" || b.State.Status != distribution.StatusOpening || b.Domain() != "b.example.com" {
		t.Errorf("unpublished distribution %+v", b)
	}

	// An applied site that does not decode is an error, never a site
	// taken off the edges.
	published.Memo.Fields[MemoEdgeSite] = payload("not a spec")
	v = &pagedVisibility{pages: [][]*workflowpb.WorkflowExecutionInfo{{published}}}
	errs := 0
	for _, err := range ListDistributions(context.Background(), v, DistributionQuery{Ended: true}) {
		if err == nil {
			t.Fatal("an undecodable site memo was listed")
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("%d errors, want 1", errs)
	}
	if strings.Contains(v.queries[0], "Running") {
		t.Errorf("Ended query %q lists running distributions only", v.queries[0])
	}
}
