package workflows

import (
	"reflect"
	"runtime"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
)

// Reading purge seqs: the API's one read path (service.ListPurges). A
// visibility scan lists the seqs: each one's PurgeListing, from what its
// start wrote (search attributes and PurgeMemo, both built and read here).
// A seq not finished there is read on its own (service.livePurge): a
// finished seq answers from its result. A running
// seq's status object is its query (QueryPurgeStatus: every edge's state
// as the workflow last heard it) completed by what its retrying PurgeEdges
// activity published since: the per-edge rows of its heartbeat
// (activities.PurgeEdgeOutcome), each edge's confirmation and last error
// as data. PurgeStatusWithPending is the one place that knows which
// pending activity carries those rows and how they are encoded.

// purgeEdgesActivity is the name PurgeEdges is registered under: its
// method name, as the SDK names an activity registered by method value.
var purgeEdgesActivity = methodName((*activities.Purge).PurgeEdges)

// methodName is the name of method expression f without its receiver.
func methodName(f any) string {
	name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	return strings.TrimSuffix(name[strings.LastIndex(name, ".")+1:], "-fm")
}

// PurgeStatusWithPending answers st, a running seq's queried status, with
// the rows its pending PurgeEdges activity heartbeated (pending: the
// seq's pending activities, as DescribeWorkflowExecution lists them):
// edges confirmed since the workflow last heard, and each unconfirmed
// edge's last error. Progress counts the confirmed edges.
func PurgeStatusWithPending(st PurgeStatus, pending []*workflowpb.PendingActivityInfo) PurgeStatus {
	st.Edges = append([]PurgeEdgeState(nil), st.Edges...)
	at := make(map[string]int, len(st.Edges))
	for i, e := range st.Edges {
		at[e.EdgeID] = i
	}
	for _, pa := range pending {
		details := pa.GetHeartbeatDetails()
		if pa.GetActivityType().GetName() != purgeEdgesActivity || details == nil {
			continue
		}
		var rows []activities.PurgeEdgeOutcome
		if err := converter.GetDefaultDataConverter().FromPayloads(details, &rows); err != nil {
			continue
		}
		for _, r := range rows {
			i, ok := at[r.EdgeID]
			if !ok || st.Edges[i].Confirmed {
				continue
			}
			st.Edges[i].Confirmed, st.Edges[i].Verified = r.Confirmed, r.Verified
			st.Edges[i].Answer, st.Edges[i].Probe, st.Edges[i].AppliedAt = r.Answer, r.Probe, r.AppliedAt
			st.Edges[i].Attempts = max(st.Edges[i].Attempts, r.Attempts)
			if r.Error != "" {
				st.Edges[i].Error = r.Error
			}
		}
	}
	confirmed := 0
	for _, e := range st.Edges {
		if e.Confirmed {
			confirmed++
		}
	}
	st.Progress = progressPercent(confirmed, len(st.Edges))
	return st
}

// PurgeMemo is the memo a purge seq is started with: what the purge list
// shows of it that its search attributes do not (PurgeListingOf reads it).
func PurgeMemo(req PurgeSeq, distributionSeq int64) map[string]any {
	return map[string]any{
		MemoPurgeID:              req.PurgeID,
		MemoPurgeDistributionSeq: distributionSeq,
		MemoPurgePath:            strings.Join(req.Paths, "\n"),
		MemoPurgeTime:            req.PurgeTime,
	}
}

// PurgeListing is one purge seq as a visibility scan lists it: what its
// start wrote (search attributes, PurgeMemo) and, once it finished, its
// outcome (State) and close time.
type PurgeListing struct {
	WorkflowID      string
	Seq             int64
	Type            string
	State           string // PurgeRunning until it finished, then PurgeDone or PurgeExpired
	PurgeID         int64
	DistributionSeq int64
	Path            string // the paths, '\n'-joined
	PurgeTime       int64  // epoch ms the API accepted it
	CloseTime       int64  // epoch ms; 0 while it runs
}

// PurgeListingOf reads a purge seq's visibility record.
func PurgeListingOf(ex *workflowpb.WorkflowExecutionInfo) PurgeListing {
	l := PurgeListing{WorkflowID: ex.GetExecution().GetWorkflowId()}
	dc := converter.GetDefaultDataConverter()
	attrs := ex.GetSearchAttributes().GetIndexedFields()
	memo := ex.GetMemo().GetFields()
	for _, f := range []struct {
		p *commonpb.Payload
		v any
	}{
		{attrs[SeqAttr.GetName()], &l.Seq}, {attrs[PurgeTypeAttr.GetName()], &l.Type}, {attrs[StatusAttr.GetName()], &l.State},
		{memo[MemoPurgeID], &l.PurgeID}, {memo[MemoPurgeDistributionSeq], &l.DistributionSeq}, {memo[MemoPurgePath], &l.Path},
		{memo[MemoPurgeTime], &l.PurgeTime},
	} {
		if f.p != nil {
			_ = dc.FromPayload(f.p, f.v)
		}
	}
	if ct := ex.GetCloseTime(); ct != nil {
		l.CloseTime = ct.AsTime().UnixMilli()
	}
	return l
}
