package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

func prewarmEnv(t *testing.T, batch func(context.Context, activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PrewarmWorkflow)
	env.RegisterWorkflow(EdgePrewarmWorkflow)
	env.OnActivity((*activities.Prewarm)(nil).PrewarmBatch, mock.Anything, mock.Anything).Return(batch)
	// These tests run the job as histories recorded before the fan-out
	// (a child workflow per edge); prewarm_fanout_test.go runs the fan-out.
	env.OnGetVersion(prewarmFanoutChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
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

// An edge workflow continues as new after chunksPerRun chunks and the next
// run starts where the last one stopped: following the continue-as-new
// input run after run, every chunk is worked and reported exactly once.
func TestEdgePrewarmContinuesAsNew(t *testing.T) {
	defer func(n int) { chunksPerRun = n }(chunksPerRun)
	chunksPerRun = 2
	job := testJob(50, "A") // 5 chunks of 10: runs of 2, 2 and 1
	in := EdgePrewarmInput{Job: job, EdgeID: "A", ParentID: "parent", Deadline: time.Now().Add(time.Hour)}
	var mu sync.Mutex // activities run on their own goroutines
	worked := map[int]int{}
	reported := map[int]int{}
	var runs []int // NextChunk each run started at
	for run := 1; ; run++ {
		if run > 10 {
			t.Fatalf("no end after %d runs: started at %v", run-1, runs)
		}
		runs = append(runs, in.NextChunk)
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.SetStartTime(in.Deadline.Add(-time.Hour))
		env.RegisterWorkflow(EdgePrewarmWorkflow)
		env.OnActivity((*activities.Prewarm)(nil).PrewarmBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, b activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
			mu.Lock()
			worked[b.Chunk]++
			mu.Unlock()
			if b.Start != b.Chunk*job.ChunkSize || b.End != min(b.Start+job.ChunkSize, job.URLCount) {
				t.Errorf("chunk %d covers [%d,%d)", b.Chunk, b.Start, b.End)
			}
			return activities.PrewarmBatchResult{OK: b.End - b.Start}, nil
		})
		env.OnSignalExternalWorkflow(mock.Anything, "parent", "", SignalPrewarmChunk, mock.Anything).Return(
			func(_, _, _ string, _ string, arg interface{}) error {
				r := arg.(ChunkReport)
				mu.Lock()
				reported[r.Chunk]++
				mu.Unlock()
				return nil
			})
		env.ExecuteWorkflow(EdgePrewarmWorkflow, in)
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if err == nil {
			break
		}
		if !asContinueAsNew(err, &can) {
			t.Fatalf("run %d: %v", run, err)
		}
		var next EdgePrewarmInput
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
			t.Fatalf("decode the continue-as-new input: %v", err)
		}
		if next.Job.JobID != job.JobID || next.ParentID != in.ParentID || next.EdgeID != in.EdgeID || !next.Deadline.Equal(in.Deadline) {
			t.Fatalf("run %d continues as new with %+v, want the same job, edge, parent and deadline", run, next)
		}
		if next.NextChunk <= in.NextChunk {
			t.Fatalf("run %d started at chunk %d and continues at %d", run, in.NextChunk, next.NextChunk)
		}
		in = next
	}
	if len(runs) != 3 || runs[1] != 2 || runs[2] != 4 {
		t.Fatalf("runs started at chunks %v, want [0 2 4]", runs)
	}
	for c := 0; c < 5; c++ {
		if worked[c] != 1 || reported[c] != 1 {
			t.Errorf("chunk %d worked %d times, reported %d times; want once each", c, worked[c], reported[c])
		}
	}
	if len(worked) != 5 || len(reported) != 5 {
		t.Errorf("chunks worked %v, reported %v; want 0 to 4", worked, reported)
	}
}

// Chunk reports are signals, delivered at least once: a second report of
// the same edge and chunk (here a late duplicate that even claims a
// failure) changes nothing, so no URL is counted twice or turned failed.
func TestPrewarmIgnoresDuplicateChunkReport(t *testing.T) {
	var mu sync.Mutex
	calls := map[int]int{}
	env := prewarmEnv(t, func(_ context.Context, in activities.PrewarmBatchInput) (activities.PrewarmBatchResult, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[in.Chunk]++
		// The last chunk fails twice first, so the job is still running
		// (retry backoff in workflow time) when the duplicate arrives.
		if in.Chunk == 2 && calls[2] < 3 {
			return activities.PrewarmBatchResult{}, errors.New("edge busy")
		}
		return activities.PrewarmBatchResult{OK: in.End - in.Start}, nil
	})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPrewarmChunk, ChunkReport{EdgeID: "A", Chunk: 0, Start: 0, End: 10, Failed: []int{3}})
	}, 500*time.Millisecond)
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(30, "A"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if calls[2] != 3 {
		t.Fatalf("chunk 2 ran %d times, want 3 (the duplicate must arrive mid-job)", calls[2])
	}
	if st.Status != PrewarmCompleted || st.Total != 30 || st.SuccessCount != 30 || st.FailedCount != 0 ||
		st.Edges[0].Done != 30 || st.Edges[0].Failed != 0 {
		t.Fatalf("after a duplicate report: %+v", st)
	}
}
