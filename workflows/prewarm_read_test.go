package workflows

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/payload"
)

// A job's status read from its memo and chunk summaries is what the job
// itself answers: here, with every chunk's summary published as
// PrewarmChunk publishes it, the job's final tally; with one chunk
// unfinished, its URLs in progress; finished with lists longer than the
// result holds, the lists from the summaries and the status from the
// result.
func TestReadPrewarmStatusFromSummaries(t *testing.T) {
	ctx := context.Background()
	job := testJob(25, "A", "B")
	job.URLsKey = payload.PrewarmURLsKey("r")
	var mu sync.Mutex
	chunks := map[int]activities.PrewarmChunkInput{}
	result := func(in activities.PrewarmChunkInput) activities.PrewarmChunkResult {
		res := allOK(in)
		if in.Start <= 7 && 7 < in.End {
			res.Edges[0].OK--
			res.Edges[0].Failed = []int{7}
		}
		return res
	}
	env := chunkEnv(t, func(_ context.Context, in activities.PrewarmChunkInput) (activities.PrewarmChunkResult, error) {
		mu.Lock()
		chunks[in.Chunk] = in
		mu.Unlock()
		return result(in), nil
	})
	env.ExecuteWorkflow(PrewarmWorkflow, job)
	var want PrewarmStatus
	if err := env.GetWorkflowResult(&want); err != nil {
		t.Fatal(err)
	}
	info := PrewarmJobMemo(job)[MemoPrewarmJob].(PrewarmJobInfo)
	// published is a store holding the summaries of the chunks listed, as
	// PrewarmChunk writes them.
	published := func(list ...int) payload.Store {
		t.Helper()
		store, err := payload.Open(ctx, payload.FileURL(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		for _, c := range list {
			if err := activities.PutChunkSummary(ctx, store, chunks[c], result(chunks[c])); err != nil {
				t.Fatal(err)
			}
		}
		return store
	}
	read := func(store payload.Store, r PrewarmRead) PrewarmStatus {
		t.Helper()
		r.Job = info
		st, err := ReadPrewarmStatus(ctx, store, r)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// Every chunk finished: the job's own tally.
	got := read(published(0, 1, 2), PrewarmRead{Query: PrewarmPage{Limit: 100}})
	if got.Status != PrewarmInProgress {
		t.Fatalf("running read: status %s", got.Status)
	}
	got.Status = want.Status
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from summaries %+v\njob's result   %+v", got, want)
	}

	// Chunk 1 (URLs 10..19) not finished yet.
	running := read(published(0, 2), PrewarmRead{Query: PrewarmPage{Limit: 5}})
	if running.Status != PrewarmInProgress || running.InProgress != 10 || running.Completed != 15 ||
		!slices.Equal(running.InProgressIdx, []int{10, 11, 12, 13, 14}) || running.FailedCount != 1 ||
		!slices.Equal(running.FailedIdx, []int{7}) || running.Edges[0].Done != 15 || running.Edges[1].Done != 15 || running.ChunkSize != 10 {
		t.Fatalf("chunk 1 unfinished: %+v", running)
	}
	// Nothing finished (the job's first task has not run): all in progress.
	if none := read(published(), PrewarmRead{Query: PrewarmPage{Limit: 3}}); none.InProgress != 25 || none.Total != 25 ||
		!slices.Equal(none.InProgressIdx, []int{0, 1, 2}) || len(none.Edges) != 2 {
		t.Fatalf("nothing finished: %+v", none)
	}

	// Finished, the result's lists whole: paged from the result alone.
	page := read(published(), PrewarmRead{Result: &want, Query: PrewarmPage{Offset: 20, Limit: 10}, WithSuccess: true})
	if page.Status != PrewarmCompleted || !slices.Equal(page.SuccessIdx, []int{21, 22, 23, 24}) || page.SuccessCount != 24 {
		t.Fatalf("finished, paged from the result: %+v", page)
	}
	// Finished, the result's success list cut short: the lists come from
	// the summaries, the status and error from the result.
	cut := want
	cut.SuccessIdx, cut.Error = cut.SuccessIdx[:3], "x"
	page = read(published(0, 1, 2), PrewarmRead{Result: &cut, Query: PrewarmPage{Offset: 20, Limit: 10}, WithSuccess: true})
	if page.Status != PrewarmCompleted || page.Error != "x" || !slices.Equal(page.SuccessIdx, []int{21, 22, 23, 24}) {
		t.Fatalf("finished, lists cut: %+v", page)
	}
	// Ended without a result: FAILED, with what the chunks did.
	if ended := read(published(0), PrewarmRead{Ended: "terminated", Query: PrewarmPage{Limit: 1}}); ended.Status != PrewarmFailed ||
		ended.Completed != 10 || ended.Error != "job workflow terminated" {
		t.Fatalf("terminated: %+v", ended)
	}
}

// A read stops asking for summaries past the (chunksInFlight+1)th
// missing chunk: the job starts chunks in order, at most chunksInFlight
// at once, so no later chunk has started.
func TestReadChunkSummariesStopsPastTheRunningChunks(t *testing.T) {
	ctx := context.Background()
	store, err := payload.Open(ctx, payload.FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	job := testJob(400, "A")
	put := func(c int) {
		in := activities.PrewarmChunkInput{JobID: job.JobID, URLsKey: job.URLsKey, EdgeIDs: job.EdgeIDs, Chunk: c, Start: c * 10, End: c*10 + 10}
		if err := activities.PutChunkSummary(ctx, store, in, allOK(in)); err != nil {
			t.Fatal(err)
		}
	}
	// Chunks 0-20 and 23 finished; 21, 22, 24 running (chunksInFlight);
	// 25 is the first not started. 30 cannot have a summary in a real job:
	// here it shows where the read stops.
	var want []int
	for c := 0; c <= 23; c++ {
		if c != 21 && c != 22 {
			put(c)
			want = append(want, c)
		}
	}
	put(30)
	sums, err := readChunkSummaries(ctx, store, job)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, s := range sums {
		got = append(got, s.Chunk)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chunks read %v, want %v", got, want)
	}
}
