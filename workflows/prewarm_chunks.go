package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// Chunk sizing, chosen by measurement with bench/prewarm (docs/performance.md):
//   - pairsPerChunk: URL×edge pairs per activity; a few seconds of work
//     each, so the Temporal round trip between two chunks is small beside
//     it, and a heartbeat of every pair stays well under Temporal's limits;
//   - chunksInFlight: chunks running at once, so one chunk's tail and the
//     round trip to start the next overlap the others' work. Chunks start
//     in order and never more than this at once: a status read stops
//     looking for summaries past that (readChunkSummaries).
const (
	pairsPerChunk  = 4000
	chunksInFlight = 3
	minChunkURLs   = 100
	maxChunkURLs   = 2000
)

// ChunkSizeFor returns the URLs per PrewarmChunk activity for a job of
// urls × edges: about pairsPerChunk pairs, between minChunkURLs and
// maxChunkURLs URLs, and never more than targetChunksPerJob chunks.
func ChunkSizeFor(urls, edges int) int {
	size := (pairsPerChunk + max(edges, 1) - 1) / max(edges, 1)
	return min(max(size, minChunkURLs, (urls+targetChunksPerJob-1)/targetChunksPerJob), maxChunkURLs)
}

// chunkLoop is a running job's chunks.
type chunkLoop struct {
	st       *prewarmState
	job      PrewarmJob
	knobs    activities.Knobs
	deadline time.Time
	running  int
	next     int
	chunks   int
	timedOut bool // an activity reached the job's deadline
	errMsg   string
}

// runChunks works the job's chunks, chunksInFlight at a time, each on
// every edge, and applies each chunk's per-edge outcome to st as it ends.
// It returns when every chunk is done, the job's deadline passed (timer),
// or a chunk failed for good (errMsg).
func runChunks(ctx workflow.Context, st *prewarmState, job PrewarmJob) (timerFired bool, errMsg string) {
	jobCtx, cancelJob := workflow.WithCancel(ctx)
	defer cancelJob()
	// The worker's heartbeat timeout for the chunks, asked before the
	// job's clock starts.
	knobs := workerKnobs(ctx)
	cl := &chunkLoop{st: st, job: job, knobs: knobs, deadline: workflow.Now(ctx).Add(job.Timeout),
		chunks: (job.URLCount + job.ChunkSize - 1) / job.ChunkSize}
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(jobCtx, job.Timeout), func(f workflow.Future) {
		if f.Get(ctx, nil) == nil {
			timerFired = true
		}
	})
	for !timerFired && cl.errMsg == "" && (cl.next < cl.chunks || cl.running > 0) {
		for cl.running < chunksInFlight && cl.next < cl.chunks && !cl.timedOut {
			if !cl.start(ctx, jobCtx, sel) {
				cl.timedOut = true
			}
		}
		if cl.running == 0 && cl.timedOut {
			break
		}
		sel.Select(ctx)
	}
	// Chunks that stopped at the deadline leave pairs without an outcome;
	// the job's own timer (same deadline) turns that into TIMEOUT.
	for !timerFired && !st.allDone() && cl.errMsg == "" {
		sel.Select(ctx)
	}
	if cl.errMsg == "" {
		return timerFired, "chunks ended before every pair had an outcome"
	}
	for i := range st.edges {
		if st.edges[i].Done < st.edges[i].Total {
			st.edges[i].Error = cl.errMsg
		}
	}
	return timerFired, cl.errMsg
}

// start schedules the next chunk on sel; false when the deadline has
// passed and nothing was started.
func (cl *chunkLoop) start(ctx, jobCtx workflow.Context, sel workflow.Selector) bool {
	remaining := cl.deadline.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		return false
	}
	actx := workflow.WithActivityOptions(jobCtx, workflow.ActivityOptions{
		// The deadline bounds everything; per-pair attempts and timeouts run
		// inside the activity (which stops at Deadline itself: these
		// timeouts count from when the server scheduled it, later than
		// now), and this retry only covers a crashed worker or a failed
		// store (the heartbeat lets the next attempt resume).
		ScheduleToCloseTimeout: remaining,
		StartToCloseTimeout:    remaining,
		HeartbeatTimeout:       cl.knobs.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
	job := cl.job
	chunk, start := cl.next, cl.next*job.ChunkSize
	end := min(start+job.ChunkSize, job.URLCount)
	var a *activities.Prewarm
	f := workflow.ExecuteActivity(actx, a.PrewarmChunk, activities.PrewarmChunkInput{
		JobID: job.JobID, EdgeIDs: job.EdgeIDs, Domain: job.Domain, Scheme: job.Scheme, URLsKey: job.URLsKey,
		Chunk: chunk, Start: start, End: end, Header: job.Header, NeedInvalidate: job.NeedInvalidate,
		Deadline: cl.deadline,
	})
	cl.next++
	cl.running++
	sel.AddFuture(f, func(f workflow.Future) {
		cl.running--
		var res activities.PrewarmChunkResult
		err := f.Get(ctx, &res)
		switch {
		case err == nil:
			for _, r := range res.Edges {
				cl.st.apply(ChunkReport{EdgeID: r.EdgeID, Chunk: chunk, Start: start, End: end, Failed: r.Failed})
			}
		case temporal.IsCanceledError(err):
		case temporal.IsTimeoutError(err), isApplicationError(err, activities.ErrJobDeadline):
			cl.timedOut = true // the job's timer reports what is unfinished
		default:
			cl.errMsg = rootMessage(err)
		}
	})
	return true
}

// isApplicationError reports whether err is an activity's application error
// of type errType.
func isApplicationError(err error, errType string) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == errType
}
