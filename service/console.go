package service

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

// FleetEdge is one edge of the fleet as the console shows it: what its
// site table holds (Applied: site name → version of the entry; Suspended
// names the suspended ones), whether it answered (Error says why not),
// and the edge sync loop's last report on it.
type FleetEdge struct {
	ID        string                     `json:"id"`
	Region    string                     `json:"region"`
	Draining  bool                       `json:"draining,omitempty"`
	Error     string                     `json:"error,omitempty"`
	Applied   map[string]int             `json:"applied"`
	Suspended map[string]bool            `json:"suspended,omitempty"`
	Sync      *activities.EdgeSyncReport `json:"sync,omitempty"`
}

// FleetDistribution is one distribution of the fleet: its latest accepted
// version, the version it last applied to the edges and the rollout in
// flight (RolloutVersion on RolloutEdges), from what its workflow
// publishes in visibility.
type FleetDistribution struct {
	AppKey         string   `json:"appKey"`
	Domain         string   `json:"domain"`
	Status         string   `json:"status"`
	Version        int      `json:"version"`
	Applied        int      `json:"applied"`
	RolloutVersion int      `json:"rolloutVersion,omitempty"`
	RolloutEdges   []string `json:"rolloutEdges,omitempty"`
	LastError      string   `json:"lastError,omitempty"`
	WorkflowID     string   `json:"workflowId"`
}

// Fleet is the console's fleet page: edges × distributions.
type Fleet struct {
	Edges         []FleetEdge         `json:"edges"`
	Distributions []FleetDistribution `json:"distributions"`
	SyncError     string              `json:"syncError,omitempty"`
}

// maxFleetDistributions bounds the distributions one fleet page lists.
const maxFleetDistributions = 500

// Fleet reads the fleet: running distributions from visibility (at most
// maxFleetDistributions, newest first), every edge's site table (in
// parallel, trafficTimeout each) and the edge sync reports. Errors: a
// failed visibility scan; an edge that does not answer is reported in
// its row.
func (s *Service) Fleet(ctx context.Context) (Fleet, error) {
	var f Fleet
	if s.temporal == nil {
		return f, ErrNoTemporal
	}
	for l, err := range workflows.ListDistributions(ctx, s.temporal, workflows.DistributionQuery{}) {
		if err != nil {
			return f, err
		}
		d := FleetDistribution{AppKey: l.State.AppKey, Domain: l.Domain(), Status: l.State.Status, Version: l.State.Version,
			LastError: l.State.LastError, WorkflowID: l.WorkflowID}
		if l.Site != nil {
			d.Applied = l.Site.Version
		}
		if l.Rollout != nil {
			d.RolloutVersion, d.RolloutEdges = l.Rollout.Spec.Version, l.Rollout.Edges
		}
		f.Distributions = append(f.Distributions, d)
		if len(f.Distributions) >= maxFleetDistributions {
			break
		}
	}
	sort.Slice(f.Distributions, func(i, j int) bool { return f.Distributions[i].Domain < f.Distributions[j].Domain })
	reports, err := s.EdgeSync(ctx)
	if err != nil {
		f.SyncError = err.Error()
	}
	f.Edges = s.fleetEdges(ctx, reports)
	return f, nil
}

// fleetEdges reads every edge's site table in parallel.
func (s *Service) fleetEdges(ctx context.Context, reports map[string]activities.EdgeSyncReport) []FleetEdge {
	draining := map[string]bool{}
	for _, id := range s.inventory.Draining() {
		draining[id] = true
	}
	out := make([]FleetEdge, len(s.inventory.Edges))
	var wg sync.WaitGroup
	for i, e := range s.inventory.Edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := FleetEdge{ID: e.ID, Region: e.Region, Draining: draining[e.ID], Applied: map[string]int{}, Suspended: map[string]bool{}}
			if r, ok := reports[e.ID]; ok {
				row.Sync = &r
			}
			st, err := trafficEdges().Table(ctx, e)
			if err != nil {
				row.Error = err.Error()
			}
			for _, site := range st.Sites {
				row.Applied[site.Name] = site.Gen.Version
				if site.Suspended {
					row.Suspended[site.Name] = true
				}
			}
			out[i] = row
		}()
	}
	wg.Wait()
	return out
}

// Job kinds the console lists.
const (
	JobPrewarm = "prewarm"
	JobPurge   = "purge"
)

// JobRow is one prewarm or purge job as visibility lists it.
type JobRow struct {
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId"`
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	Started    time.Time `json:"started"`
	Closed     time.Time `json:"closed,omitzero"`
}

// maxJobRows is how many jobs the console's job list shows.
const maxJobRows = 100

// Jobs lists the latest prewarm and purge jobs (at most maxJobRows,
// newest first).
func (s *Service) Jobs(ctx context.Context) ([]JobRow, error) {
	if s.temporal == nil {
		return nil, ErrNoTemporal
	}
	q := "WorkflowType = 'PrewarmWorkflow' OR WorkflowType = 'PurgeWorkflow'"
	resp, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: maxJobRows})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]JobRow, 0, len(resp.GetExecutions()))
	for _, ex := range resp.GetExecutions() {
		out = append(out, jobRow(ex))
	}
	// SQLite visibility has no ORDER BY: newest first is done here.
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out, nil
}

func jobRow(ex *workflowpb.WorkflowExecutionInfo) JobRow {
	r := JobRow{WorkflowID: ex.GetExecution().GetWorkflowId(), RunID: ex.GetExecution().GetRunId(), Kind: JobPurge,
		Status: strings.ToUpper(strings.TrimPrefix(ex.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"))}
	if ex.GetType().GetName() == "PrewarmWorkflow" {
		r.Kind = JobPrewarm
	}
	if t := ex.GetStartTime(); t != nil {
		r.Started = t.AsTime()
	}
	if t := ex.GetCloseTime(); t != nil {
		r.Closed = t.AsTime()
	}
	return r
}

// JobView is one job with its progress per edge: a prewarm's status
// (Prewarm, first 20 URLs of each list) or a purge's (Purge).
type JobView struct {
	JobRow
	Prewarm *PrewarmStatusResponse `json:"prewarm,omitempty"`
	Purge   *workflows.PurgeStatus `json:"purge,omitempty"`
	// Error says why the progress could not be read.
	Error string `json:"error,omitempty"`
}

// Job reads the job of workflow id (a prewarm's or a purge's). Errors:
// ErrNotFound for another workflow or none.
func (s *Service) Job(ctx context.Context, id string) (JobView, error) {
	if s.temporal == nil {
		return JobView{}, ErrNoTemporal
	}
	d, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if isNotFound(err) {
			return JobView{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		return JobView{}, fmt.Errorf("describe job %s: %w", id, err)
	}
	v := JobView{JobRow: jobRow(d.GetWorkflowExecutionInfo())}
	switch d.GetWorkflowExecutionInfo().GetType().GetName() {
	case "PrewarmWorkflow":
		st, err := s.PrewarmStatus(ctx, strings.TrimPrefix(id, "prewarm-"), 1, 20)
		if err != nil {
			v.Error = err.Error()
		} else {
			v.Prewarm = &st
		}
	case "PurgeWorkflow":
		st, err := s.purgeStatus(ctx, id)
		if err != nil {
			v.Error = err.Error()
		} else {
			v.Purge = &st
		}
	default:
		return JobView{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return v, nil
}
