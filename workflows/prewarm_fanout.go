package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// prewarmFanoutChange versions the job's shape (issue 19): from version 1
// the job runs one PrewarmChunk activity per chunk of URLs on every edge,
// instead of one child workflow per edge running one PrewarmBatch per chunk
// and edge. Histories recorded before replay the children.
const prewarmFanoutChange = "prewarm-fanout"

// Fan-out sizing, chosen by measurement with bench/prewarm (docs/performance.md):
//   - fanPairsPerChunk: URL×edge pairs per activity; a few seconds of work
//     each, so the Temporal round trip between two chunks is small beside
//     it, and a heartbeat of every pair stays well under Temporal's limits;
//   - fanChunksInFlight: chunks running at once, so one chunk's tail and
//     the round trip to start the next overlap the others' work.
const (
	fanPairsPerChunk  = 4000
	fanChunksInFlight = 3
	minFanChunkURLs   = 100
	maxFanChunkURLs   = 2000
)

// FanoutChunkSize returns the URLs per PrewarmChunk activity for a job of
// urls × edges: about fanPairsPerChunk pairs, between minFanChunkURLs and
// maxFanChunkURLs URLs, and never more than targetChunksPerJob chunks.
func FanoutChunkSize(urls, edges int) int {
	size := (fanPairsPerChunk + max(edges, 1) - 1) / max(edges, 1)
	size = min(max(size, minFanChunkURLs, (urls+targetChunksPerJob-1)/targetChunksPerJob), maxFanChunkURLs)
	return size
}

// fanout is a running job's chunk loop.
type fanout struct {
	st       *prewarmState
	job      PrewarmJob
	deadline time.Time
	running  int
	next     int
	chunks   int
	timedOut bool // an activity reached the job's deadline
	errMsg   string
}

// runFanout works the job's chunks, fanChunksInFlight at a time, each on
// every edge, and applies each chunk's per-edge outcome to st as it ends.
// It returns when every chunk is done, the job's deadline passed (timer),
// or a chunk failed for good (errMsg).
func runFanout(ctx workflow.Context, st *prewarmState, job PrewarmJob) (timerFired bool, errMsg string) {
	jobCtx, cancelJob := workflow.WithCancel(ctx)
	defer cancelJob()
	fo := &fanout{st: st, job: job, deadline: workflow.Now(ctx).Add(job.Timeout),
		chunks: (job.URLCount + job.ChunkSize - 1) / job.ChunkSize}
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(jobCtx, job.Timeout), func(f workflow.Future) {
		if f.Get(ctx, nil) == nil {
			timerFired = true
		}
	})
	for !timerFired && fo.errMsg == "" && (fo.next < fo.chunks || fo.running > 0) {
		for fo.running < fanChunksInFlight && fo.next < fo.chunks && !fo.timedOut {
			if !fo.start(ctx, jobCtx, sel) {
				fo.timedOut = true
			}
		}
		if fo.running == 0 && fo.timedOut {
			break
		}
		sel.Select(ctx)
	}
	// Chunks that stopped at the deadline leave pairs without an outcome;
	// the job's own timer (same deadline) turns that into TIMEOUT.
	for !timerFired && !st.allDone() && fo.errMsg == "" {
		sel.Select(ctx)
	}
	if fo.errMsg != "" {
		for i := range st.edges {
			if st.edges[i].Done < st.edges[i].Total {
				st.edges[i].Error = fo.errMsg
			}
		}
	}
	return timerFired, joinMessages([]string{fo.errMsg})
}

// start schedules the next chunk on sel; false when the deadline has
// passed and nothing was started.
func (fo *fanout) start(ctx, jobCtx workflow.Context, sel workflow.Selector) bool {
	remaining := fo.deadline.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		return false
	}
	actx := workflow.WithActivityOptions(jobCtx, workflow.ActivityOptions{
		// The deadline bounds everything; per-pair attempts and timeouts run
		// inside the activity, and this retry only covers a crashed worker
		// or a failed store (the heartbeat lets the next attempt resume).
		ScheduleToCloseTimeout: remaining,
		StartToCloseTimeout:    remaining,
		HeartbeatTimeout:       heartbeatOrDefault(fo.job.HeartbeatTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
	job := fo.job
	chunk, start := fo.next, fo.next*job.ChunkSize
	end := min(start+job.ChunkSize, job.URLCount)
	var a *activities.Prewarm
	f := workflow.ExecuteActivity(actx, a.PrewarmChunk, activities.PrewarmChunkInput{
		JobID: job.JobID, EdgeIDs: job.EdgeIDs, Domain: job.Domain, Scheme: job.Scheme, URLsKey: job.URLsKey,
		Chunk: chunk, Start: start, End: end, Header: job.Header, NeedInvalidate: job.NeedInvalidate,
		Attempts: job.Attempts, AttemptTimeout: job.AttemptTimeout, Concurrency: job.Concurrency,
	})
	fo.next++
	fo.running++
	sel.AddFuture(f, func(f workflow.Future) {
		fo.running--
		var res activities.PrewarmChunkResult
		err := f.Get(ctx, &res)
		switch {
		case err == nil:
			for _, r := range res.Edges {
				fo.st.apply(ChunkReport{EdgeID: r.EdgeID, Chunk: chunk, Start: start, End: end, Failed: r.Failed})
			}
		case temporal.IsCanceledError(err):
		case temporal.IsTimeoutError(err):
			fo.timedOut = true // the job's timer reports what is unfinished
		default:
			fo.errMsg = rootMessage(err)
		}
	})
	return true
}
