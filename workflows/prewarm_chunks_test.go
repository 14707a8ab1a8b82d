package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

func chunkEnv(t *testing.T, chunk func(context.Context, activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PrewarmWorkflow)
	env.OnActivity((*activities.Prewarm)(nil).PrewarmChunk, mock.Anything, mock.Anything).Return(chunk)
	return env
}

func testJob(urls int, edges ...string) PrewarmJob {
	return PrewarmJob{
		JobID: "prewarm-test", Domain: "a.test", Scheme: "http", URLsKey: "k", URLCount: urls,
		EdgeIDs: edges, Timeout: 10 * time.Minute, ChunkSize: 10,
	}
}

// allOK answers a chunk with every pair stored on every edge.
func allOK(in activities.PrewarmChunkInput) activities.PrewarmChunkResult {
	var res activities.PrewarmChunkResult
	for _, e := range in.EdgeIDs {
		res.Edges = append(res.Edges, activities.EdgeChunkResult{EdgeID: e, OK: in.End - in.Start})
	}
	return res
}

// One activity per chunk whatever the number of edges: 25 URLs in chunks
// of 10 on 3 edges are 3 activities, each covering every edge, together
// covering every URL once; a failure on one edge fails that URL only.
func TestPrewarmChunksOneActivityPerChunk(t *testing.T) {
	var mu sync.Mutex
	var seen []activities.PrewarmChunkInput
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		mu.Lock()
		seen = append(seen, in)
		mu.Unlock()
		res := allOK(in)
		if in.Start <= 13 && 13 < in.End { // URL 13 fails on edge B only
			res.Edges[1].OK--
			res.Edges[1].Failed = []int{13}
		}
		return res, nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(25, "A", "B", "C"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Fatalf("%d activities for 3 chunks on 3 edges, want 3", len(seen))
	}
	covered := make([]int, 25)
	for _, in := range seen {
		if !slices.Equal(in.EdgeIDs, []string{"A", "B", "C"}) || in.Start != in.Chunk*10 || in.End != min(in.Start+10, 25) {
			t.Fatalf("chunk %+v", in)
		}
		for i := in.Start; i < in.End; i++ {
			covered[i]++
		}
	}
	for i, n := range covered {
		if n != 1 {
			t.Fatalf("URL %d covered %d times", i, n)
		}
	}
	if st.Status != PrewarmCompleted || st.Completed != 25 || st.FailedCount != 1 || st.SuccessCount != 24 ||
		!slices.Equal(st.FailedIdx, []int{13}) || st.Edges[1].Failed != 1 || st.Edges[0].Failed != 0 || st.Edges[2].Done != 25 {
		t.Fatalf("status = %+v", st)
	}
}

func TestPrewarmChunksRetriesCrashedChunk(t *testing.T) {
	calls := map[int]int{}
	var mu sync.Mutex
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[in.Chunk]++
		if in.Chunk == 1 && calls[1] < 3 {
			return activities.PrewarmChunkResult{}, errors.New("worker lost")
		}
		return allOK(in), nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(30, "A", "B"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmCompleted || st.SuccessCount != 30 || calls[1] != 3 || st.Edges[1].Done != 30 {
		t.Fatalf("status = %+v calls = %v", st, calls)
	}
}

func TestPrewarmChunksNonRetryableFailureFailsJob(t *testing.T) {
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		return activities.PrewarmChunkResult{}, temporal.NewNonRetryableApplicationError("url list missing", activities.ErrPayloadMissing, nil)
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(5, "A", "B"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmFailed || st.Error != "url list missing" || st.Edges[0].Error == "" || st.Edges[1].Error == "" {
		t.Fatalf("status = %+v", st)
	}
}

func TestPrewarmChunksDeadlineTimesOut(t *testing.T) {
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		if in.Chunk == 0 {
			return allOK(in), nil
		}
		// The edges hang until the activity's deadline (the job's) passes.
		return activities.PrewarmChunkResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil)
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

// A chunk the job's deadline cut (the activity's ErrJobDeadline: its
// pairs have no outcome) leaves the job TIMEOUT once its timer fires,
// never COMPLETED with those pairs failed; every chunk input carries the
// job's deadline.
func TestPrewarmChunkCutByJobDeadlineTimesOut(t *testing.T) {
	var mu sync.Mutex
	var deadlines []time.Time
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		mu.Lock()
		deadlines = append(deadlines, in.Deadline)
		mu.Unlock()
		if in.Chunk == 0 {
			return allOK(in), nil
		}
		return activities.PrewarmChunkResult{}, temporal.NewNonRetryableApplicationError("the job's deadline came", activities.ErrJobDeadline, nil)
	})
	job := testJob(30, "A")
	job.Timeout = time.Minute
	start := env.Now()
	env.ExecuteWorkflow(PrewarmWorkflow, job)
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmTimeout || st.Completed != 10 || st.InProgress != 20 || st.FailedCount != 0 {
		t.Fatalf("status = %+v", st)
	}
	for _, d := range deadlines {
		if !d.Equal(start.Add(job.Timeout)) {
			t.Fatalf("chunk deadlines %v, want the job's %v", deadlines, start.Add(job.Timeout))
		}
	}
}

// At most chunksInFlight chunks run at once.
func TestPrewarmChunksBoundsChunksInFlight(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return allOK(in), nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, testJob(100, "A"))
	var st PrewarmStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != PrewarmCompleted || most > chunksInFlight || most < 2 {
		t.Fatalf("status %s, at most %d chunks at once (limit %d)", st.Status, most, chunksInFlight)
	}
}

func TestChunkSizeFor(t *testing.T) {
	for _, tc := range []struct{ urls, edges, want int }{
		{20000, 4, 1000},
		{100000, 20, 200},
		{100000, 250, 100},
		{10, 1, 2000},
		{3, 3, 1334},
	} {
		if got := ChunkSizeFor(tc.urls, tc.edges); got != tc.want {
			t.Errorf("ChunkSizeFor(%d, %d) = %d, want %d", tc.urls, tc.edges, got, tc.want)
		}
	}
}
