package workflows

import (
	"github.com/cdnflow/cdnflow/activities"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// EdgePrewarmInput is one edge's share of a prewarm job.
type EdgePrewarmInput struct {
	Job      PrewarmJob `json:"job"`
	EdgeID   string     `json:"edgeId"`
	ParentID string     `json:"parentId"`
	Deadline time.Time  `json:"deadline"`
	// NextChunk is where a continued run resumes.
	NextChunk int `json:"nextChunk"`
}

// edgeChunksInFlight overlaps one chunk's tail with the next one's start.
const edgeChunksInFlight = 2

// chunksPerRun bounds each run's history before continue-as-new.
var chunksPerRun = 200

// EdgePrewarmWorkflow warms the job's URLs on one edge, a chunk per
// activity, and reports every finished chunk to the job workflow.
func EdgePrewarmWorkflow(ctx workflow.Context, in EdgePrewarmInput) error {
	job := in.Job
	if job.ChunkSize <= 0 {
		job.ChunkSize = ChunkSizeFor(job.URLCount, len(job.EdgeIDs))
	}
	chunks := (job.URLCount + job.ChunkSize - 1) / job.ChunkSize
	remaining := in.Deadline.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		return nil // the job's timer reports the unfinished pairs
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The deadline bounds everything; per-pair attempts and timeouts run
		// inside the activity, and this retry only covers a crashed worker
		// (the heartbeat lets the next attempt resume where it stopped).
		ScheduleToCloseTimeout: remaining,
		StartToCloseTimeout:    remaining,
		HeartbeatTimeout:       heartbeatOrDefault(job.HeartbeatTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
	type inflight struct {
		chunk, start, end int
		f                 workflow.Future
	}
	var a *activities.Prewarm
	var queue []inflight
	next, started := in.NextChunk, 0
	for next < chunks || len(queue) > 0 {
		for len(queue) < edgeChunksInFlight && next < chunks && started < chunksPerRun {
			start := next * job.ChunkSize
			end := start + job.ChunkSize
			if end > job.URLCount {
				end = job.URLCount
			}
			f := workflow.ExecuteActivity(actx, a.PrewarmBatch, activities.PrewarmBatchInput{
				JobID: job.JobID, EdgeID: in.EdgeID, Domain: job.Domain, Scheme: job.Scheme,
				URLsKey: job.URLsKey, Chunk: next, Start: start, End: end, Header: job.Header,
				NeedInvalidate: job.NeedInvalidate, Attempts: job.Attempts,
				AttemptTimeout: job.AttemptTimeout, Concurrency: job.Concurrency,
			})
			queue = append(queue, inflight{chunk: next, start: start, end: end, f: f})
			next++
			started++
		}
		if len(queue) == 0 {
			break // this run's share is done; continue as new below
		}
		head := queue[0]
		queue = queue[1:]
		var res activities.PrewarmBatchResult
		if err := head.f.Get(ctx, &res); err != nil {
			if temporal.IsTimeoutError(err) {
				// The job's deadline passed: its timer reports what is unfinished.
				return nil
			}
			return err
		}
		report := ChunkReport{EdgeID: in.EdgeID, Chunk: head.chunk, Start: head.start, End: head.end, Failed: res.Failed}
		if err := workflow.SignalExternalWorkflow(ctx, in.ParentID, "", SignalPrewarmChunk, report).Get(ctx, nil); err != nil {
			return err
		}
	}
	if next < chunks {
		in.NextChunk = next
		return workflow.NewContinueAsNewError(ctx, EdgePrewarmWorkflow, in)
	}
	return nil
}
