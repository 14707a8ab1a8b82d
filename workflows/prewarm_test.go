package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

func prewarmEnv(t *testing.T, batch func(context.Context, activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PrewarmWorkflow)
	env.RegisterWorkflow(EdgePrewarmWorkflow)
	env.OnActivity((*activities.Prewarm)(nil).PrewarmBatch, mock.Anything, mock.Anything).Return(batch)
	return env
}

func testJob(urls int, edges ...string) PrewarmJob {
	return PrewarmJob{
		JobID: "prewarm-test", Domain: "a.test", Scheme: "http", URLsKey: "k", URLCount: urls,
		EdgeIDs: edges, Timeout: 10 * time.Minute, Attempts: 3, AttemptTimeout: time.Second,
		Concurrency: 4, ChunkSize: 10,
	}
}

func TestPrewarmPartialFailureCompletes(t *testing.T) {
	env := prewarmEnv(t, func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		// URL 13 fails on edge B only (say, a 404 there).
		res := activities.PrewarmBatchResult{}
		for i := in.Start; i < in.End; i++ {
			if i == 13 && in.EdgeID == "B" {
				res.Failed = append(res.Failed, i)
			} else {
				res.OK++
			}
		}
		return res, nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(25, "A", "B"))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmCompleted || st.Total != 25 || st.Completed != 25 || st.InProgress != 0 || st.FailedCount != 1 || st.SuccessCount != 24 {
		t.Fatalf("status = %+v", st)
	}
	if len(st.FailedIdx) != 1 || st.FailedIdx[0] != 13 {
		t.Fatalf("failed = %v", st.FailedIdx)
	}
	if st.Edges[0].Done != 25 || st.Edges[0].Failed != 0 || st.Edges[1].Failed != 1 {
		t.Fatalf("edges = %+v", st.Edges)
	}
}

func TestPrewarmRetriesCrashedBatch(t *testing.T) {
	calls := map[int]int{}
	var mu sync.Mutex // the test env runs activities on their own goroutines
	env := prewarmEnv(t, func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[in.Chunk]++
		if in.Chunk == 1 && calls[1] < 3 {
			return activities.PrewarmBatchResult{}, errors.New("worker lost")
		}
		return activities.PrewarmBatchResult{OK: in.End - in.Start}, nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(30, "A"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmCompleted || st.SuccessCount != 30 || calls[1] != 3 {
		t.Fatalf("status = %+v calls = %v", st, calls)
	}
}

func TestPrewarmNonRetryableFailureFailsJob(t *testing.T) {
	env := prewarmEnv(t, func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		return activities.PrewarmBatchResult{}, temporal.NewNonRetryableApplicationError("url list missing", activities.ErrPayloadMissing, nil)
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(5, "A"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmFailed || st.Edges[0].Error == "" {
		t.Fatalf("status = %+v", st)
	}
}

func TestPrewarmDeadlineTimesOut(t *testing.T) {
	env := prewarmEnv(t, func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		if in.Chunk == 0 {
			return activities.PrewarmBatchResult{OK: in.End - in.Start}, nil
		}
		// The edge hangs until the activity's deadline (the job's) passes.
		return activities.PrewarmBatchResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil)
	})
	job := testJob(30, "A")
	job.Timeout = time.Minute
	env.ExecuteWorkflow(PrewarmWorkflow, job)
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmTimeout || st.Completed != 10 || st.InProgress != 20 || len(st.InProgressIdx) != 20 {
		t.Fatalf("status = %+v", st)
	}
}

func TestEdgePrewarmContinuesAsNew(t *testing.T) {
	defer func(n int) { chunksPerRun = n }(chunksPerRun)
	chunksPerRun = 2
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(EdgePrewarmWorkflow)
	env.OnActivity((*activities.Prewarm)(nil).PrewarmBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		return activities.PrewarmBatchResult{OK: in.End - in.Start}, nil
	})
	var reports []ChunkReport
	env.OnSignalExternalWorkflow(mock.Anything, "parent", "", SignalPrewarmChunk, mock.Anything).Return(
		func(_, _, _ string, _ string, arg interface{}) error {
			reports = append(reports, arg.(ChunkReport))
			return nil
		})
	env.ExecuteWorkflow(EdgePrewarmWorkflow, EdgePrewarmInput{Job: testJob(50, "A"), EdgeID: "A", ParentID: "parent", Deadline: env.Now().Add(time.Hour)})
	err := env.GetWorkflowError()
	if err == nil || !isContinueAsNew(err) {
		t.Fatalf("want continue-as-new after 2 chunks, got %v", err)
	}
	if len(reports) != 2 || reports[0].Start != 0 || reports[1].End != 20 {
		t.Fatalf("reports = %+v", reports)
	}
}
