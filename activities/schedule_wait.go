package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// ScheduledWait is what AwaitScheduledRun waits for: the job a scheduled
// run started.
type ScheduledWait struct {
	Job ScheduledJob `json:"job"`
	Run ScheduledRun `json:"run"`
}

// RunWatcher tells whether a scheduled run's job has ended and how long a
// run waits for it at most (service.Service implements it,
// service/schedule_run.go).
type RunWatcher interface {
	ScheduledRunDone(ctx context.Context, job ScheduledJob, run ScheduledRun) (done bool, waitAtMost time.Duration, err error)
}

// scheduledPoll is how often AwaitScheduledRun looks at the job.
const scheduledPoll = 2 * time.Second

// AwaitScheduledRun returns once the job of a scheduled run has ended, so
// the run lasts as long as its job and the schedule's overlap policy
// governs the job itself; it heartbeats while it waits and stops waiting
// after the watcher's limit (a purge's deadline, a prewarm's timeout).
// Errors reading the job are retried at the next poll.
func (a *Scheduled) AwaitScheduledRun(ctx context.Context, w ScheduledWait) error {
	watcher, ok := a.Jobs.(RunWatcher)
	if !ok {
		return nil
	}
	start := activity.GetInfo(ctx).StartedTime
	for {
		done, limit, err := watcher.ScheduledRunDone(ctx, w.Job, w.Run)
		if err == nil && (done || time.Since(start) > limit) {
			return nil
		}
		if err != nil {
			activity.GetLogger(ctx).Warn("scheduled run: read its job", "error", err)
		}
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(scheduledPoll):
		}
	}
}
