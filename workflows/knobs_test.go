package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cdnflow/cdnflow/activities"
)

// The heartbeat timeout of a job's chunks is the worker's knob, asked by
// the workflow (WorkerKnobs), with nothing about it in the job's input; a
// worker that answers none gives the default.
func TestPrewarmHeartbeatIsTheWorkers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		knobs *activities.Knobs
		want  time.Duration
	}{
		{"worker's", &activities.Knobs{HeartbeatTimeout: 7 * time.Second}, 7 * time.Second},
		{"default", &activities.Knobs{}, defaultHeartbeatTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []time.Duration
			env := chunkEnv(t, func(ctx context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
				mu.Lock()
				got = append(got, activity.GetInfo(ctx).HeartbeatTimeout)
				mu.Unlock()
				res := activities.PrewarmChunkResult{}
				for _, e := range in.EdgeIDs {
					res.Edges = append(res.Edges, activities.EdgeChunkResult{EdgeID: e, OK: in.End - in.Start})
				}
				return res, nil
			})
			env.RegisterActivity(tc.knobs)
			env.ExecuteWorkflow(PrewarmWorkflow, testJob(20, "A"))
			var st PrewarmStatus
			if err := env.GetWorkflowResult(&st); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != tc.want || got[1] != tc.want {
				t.Fatalf("chunk heartbeat timeouts %v, want %v each", got, tc.want)
			}
		})
	}
}
