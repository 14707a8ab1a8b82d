package workflows

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"golang.org/x/sync/errgroup"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/payload"
)

// Reading a prewarm job's status: the API's one read path of a job
// (service.PrewarmStatus and the pair view), answered from what the job
// publishes for readers, never from its history or a query:
//
//   - at start the job's memo (MemoPrewarmJob) holds PrewarmJobInfo: what
//     its status needs of its input (domain, URL list key and count, edges,
//     chunk size); PrewarmJobMemo builds it from the job;
//   - each finished chunk writes its summary (activities.ChunkSummary)
//     beside its per-pair rows in the payload store;
//   - a finished job's result is its final status.
//
// So a running job's status is its input plus its chunks' summaries (the
// same per-edge rows the job applies to its own tally); a finished job
// answers from its result, and from the summaries when the result's URL
// lists are cut short (more than 100 entries).

// MemoPrewarmJob is the memo key of a prewarm job's PrewarmJobInfo.
const MemoPrewarmJob = "prewarmJob"

// PrewarmJobInfo is what a job's status needs of its input.
type PrewarmJobInfo struct {
	JobID     string   `json:"jobId"`
	Domain    string   `json:"domain"`
	URLsKey   string   `json:"urlsKey"`
	URLCount  int      `json:"urlCount"`
	EdgeIDs   []string `json:"edgeIds"`
	Shields   []string `json:"shields,omitempty"` // PrewarmJob.Shields
	ChunkSize int      `json:"chunkSize"`
}

// PrewarmJobMemo is the memo a job is started with (MemoPrewarmJob).
func PrewarmJobMemo(job PrewarmJob) map[string]any {
	return map[string]any{MemoPrewarmJob: PrewarmJobInfo{
		JobID: job.JobID, Domain: job.Domain, URLsKey: job.URLsKey, URLCount: job.URLCount,
		EdgeIDs: job.EdgeIDs, Shields: job.Shields, ChunkSize: prewarmChunkSize(job),
	}}
}

// prewarmChunkSize is the URLs per chunk of job, as PrewarmWorkflow runs it.
func prewarmChunkSize(job PrewarmJob) int {
	if job.ChunkSize > 0 {
		return job.ChunkSize
	}
	return ChunkSizeFor(job.URLCount, len(job.EdgeIDs))
}

// PrewarmJobFromMemo reads the PrewarmJobInfo of a job's memo; a memo
// without one answers the zero info (ReadPrewarmStatus then answers only
// from a result that holds the lists whole).
func PrewarmJobFromMemo(memo *commonpb.Memo) (PrewarmJobInfo, error) {
	var info PrewarmJobInfo
	p := memo.GetFields()[MemoPrewarmJob]
	if p == nil {
		return info, nil
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &info); err != nil {
		return info, fmt.Errorf("decode prewarm job memo: %w", err)
	}
	return info, nil
}

// PrewarmRead is one read of a job's status.
type PrewarmRead struct {
	Job PrewarmJobInfo
	// Result is the finished job's result; nil while it runs.
	Result *PrewarmStatus
	// Ended, when the workflow closed without a result (terminated,
	// cancelled, failed), says how: the job is FAILED with what its chunks
	// did.
	Ended string
	Query PrewarmPage
	// WithSuccess: the answer's success list is shown, so a result whose
	// success list is cut short is read from the summaries.
	WithSuccess bool
}

// ReadPrewarmStatus answers r: a finished job from its result when that
// holds the page's lists whole, otherwise the tally of the job's chunk
// summaries in store (with a finished job's status, error and per-edge
// errors from its result).
func ReadPrewarmStatus(ctx context.Context, store payload.Store, r PrewarmRead) (PrewarmStatus, error) {
	if r.Result != nil {
		if st, ok := pageResult(*r.Result, r.Query, r.WithSuccess); ok {
			return st, nil
		}
	}
	job := PrewarmJob{JobID: r.Job.JobID, Domain: r.Job.Domain, URLsKey: r.Job.URLsKey, URLCount: r.Job.URLCount,
		EdgeIDs: r.Job.EdgeIDs, Shields: r.Job.Shields, ChunkSize: r.Job.ChunkSize}
	if job.ChunkSize <= 0 {
		return PrewarmStatus{}, fmt.Errorf("prewarm job has no %q memo to read its chunks by", MemoPrewarmJob)
	}
	sums, err := readChunkSummaries(ctx, store, job)
	if err != nil {
		return PrewarmStatus{}, err
	}
	st := newPrewarmState(job)
	for _, s := range sums {
		for _, e := range s.Edges {
			st.apply(ChunkReport{EdgeID: e.EdgeID, Chunk: s.Chunk, Start: s.Start, End: s.End, Failed: e.Failed})
		}
	}
	switch {
	case r.Result != nil:
		st.status, st.errMsg = r.Result.Status, r.Result.Error
		for _, e := range r.Result.Edges {
			if i, ok := st.byEdge[e.EdgeID]; ok {
				st.edges[i].Error = e.Error
			}
		}
	case r.Ended != "":
		st.status, st.errMsg = PrewarmFailed, "job workflow "+r.Ended
	}
	return st.snapshot(r.Query), nil
}

// pageResult answers page q of a finished job from its result, when the
// result holds the lists the answer shows whole (the workflow cuts them at
// 100 entries).
func pageResult(st PrewarmStatus, q PrewarmPage, withSuccess bool) (PrewarmStatus, bool) {
	if len(st.FailedIdx) != st.FailedCount || len(st.InProgressIdx) != st.InProgress || (withSuccess && len(st.SuccessIdx) != st.SuccessCount) {
		return st, false
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	page := func(list []int) []int {
		from := min(q.Offset, len(list))
		return list[from:min(from+q.Limit, len(list))]
	}
	st.FailedIdx, st.SuccessIdx, st.InProgressIdx = page(st.FailedIdx), page(st.SuccessIdx), page(st.InProgressIdx)
	return st, true
}

// summaryReads is how many chunk summaries one read fetches at once.
const summaryReads = 16

// readChunkSummaries reads the summaries of job's finished chunks, in
// chunk order. The job starts its chunks in order, at most
// chunksInFlight at once, so among the chunks without a summary at
// most chunksInFlight have started: past the (chunksInFlight+1)th
// missing one no chunk has started, and the read stops there instead of
// asking for every chunk of the job.
func readChunkSummaries(ctx context.Context, store payload.Store, job PrewarmJob) ([]activities.ChunkSummary, error) {
	chunks := (job.URLCount + job.ChunkSize - 1) / job.ChunkSize
	var out []activities.ChunkSummary
	missing := 0
	for from := 0; from < chunks; from += summaryReads {
		n := min(summaryReads, chunks-from)
		got := make([]activities.ChunkSummary, n)
		found := make([]bool, n)
		g, gctx := errgroup.WithContext(ctx)
		for i := range n {
			g.Go(func() error {
				var err error
				got[i], found[i], err = activities.ReadChunkSummary(gctx, store, job.JobID, job.URLsKey, from+i)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for i := range n {
			if !found[i] {
				if missing++; missing > chunksInFlight {
					return out, nil
				}
				continue
			}
			out = append(out, got[i])
		}
	}
	return out, nil
}
