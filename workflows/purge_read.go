package workflows

import (
	"reflect"
	"runtime"
	"strings"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
)

// Reading a purge seq's status: the API's one read path of a seq
// (service.livePurge). A finished seq answers from its result. A running
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
