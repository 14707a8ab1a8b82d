package workflows

import (
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
)

// A running seq's per-edge rows: the queried state completed by the
// PurgeEdges heartbeat, each edge's error as the row carries it (never
// found in another edge's message); other activities' details are not
// PurgeEdges rows.
func TestPurgeStatusWithPending(t *testing.T) {
	if purgeEdgesActivity != "PurgeEdges" {
		t.Fatalf("PurgeEdges registered as %q", purgeEdgesActivity)
	}
	payloads := func(v any) *commonpb.Payloads {
		p, err := converter.GetDefaultDataConverter().ToPayloads(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	queried := PurgeStatus{State: PurgeRunning, Edges: []PurgeEdgeState{
		{EdgeID: "ATL56-C1", Error: "dial tcp: connection refused"},
		{EdgeID: "ATL56-C10"},
		{EdgeID: "ORD1", Confirmed: true, Verified: "probe"},
		{EdgeID: "SEA1"},
	}}
	pending := []*workflowpb.PendingActivityInfo{
		{ActivityType: &commonpb.ActivityType{Name: "PurgeEdges"}, HeartbeatDetails: payloads([]activities.PurgeEdgeOutcome{
			{EdgeID: "ATL56-C10", Error: "ATL56-C10: read: connection reset"},
			{EdgeID: "SEA1", Confirmed: true, Verified: "ban"},
			{EdgeID: "ORD1", Error: "late row of a confirmed edge"},
		})},
		{ActivityType: &commonpb.ActivityType{Name: "CatchUpEdge"}, HeartbeatDetails: payloads([]activities.PurgeEdgeOutcome{{EdgeID: "ATL56-C1", Confirmed: true}})},
	}
	st := PurgeStatusWithPending(queried, pending)
	want := []PurgeEdgeState{
		{EdgeID: "ATL56-C1", Error: "dial tcp: connection refused"},
		{EdgeID: "ATL56-C10", Error: "ATL56-C10: read: connection reset"},
		{EdgeID: "ORD1", Confirmed: true, Verified: "probe"},
		{EdgeID: "SEA1", Confirmed: true, Verified: "ban"},
	}
	for i := range want {
		if st.Edges[i] != want[i] {
			t.Errorf("edge %d = %+v, want %+v", i, st.Edges[i], want[i])
		}
	}
	if st.Progress != 50 {
		t.Errorf("progress %d, want 50", st.Progress)
	}
	if queried.Edges[3].Confirmed {
		t.Error("the queried status was modified")
	}
}
