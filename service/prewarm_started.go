package service

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/workflows"
)

// Prewarm status freshness (issue 19: a release pipeline that polls must
// never wait on, or slow, the job it polls). A running job's answer is
// read at most once per prewarmRunningTTL per page, whatever the number of
// pollers; past that it is still served for prewarmStaleFor while one
// background read refreshes it, so a poller gets the answer at once and
// it is at most prewarmRunningTTL + prewarmStaleFor (+ one read) old. A
// job this process started answers its first polls from its input (nothing
// done yet) for prewarmStaleFor, and the process awaits its result: once
// the job completes, the next poll reads its final state.
const (
	prewarmRunningTTL = 250 * time.Millisecond
	prewarmStaleFor   = 2 * time.Second
	// maxPrewarmAwaits bounds the job results awaited at once (one long
	// poll each); jobs past it answer as any other.
	maxPrewarmAwaits = 256
)

// startedPrewarms are the jobs this process started in the last
// prewarmStaleFor, by request id. Safe for concurrent use.
type startedPrewarms struct {
	mu     sync.Mutex
	jobs   map[string]startedPrewarm
	awaits chan struct{}
}

type startedPrewarm struct {
	job workflows.PrewarmJob
	at  time.Time
}

func (p *startedPrewarms) add(requestID string, job workflows.PrewarmJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jobs == nil {
		p.jobs = map[string]startedPrewarm{}
	}
	now := time.Now()
	for id, j := range p.jobs {
		if now.Sub(j.at) > prewarmStaleFor {
			delete(p.jobs, id)
		}
	}
	p.jobs[requestID] = startedPrewarm{job: job, at: now}
}

// pending is the status of a job started here within prewarmStaleFor, as
// its input gives it (nothing done).
func (p *startedPrewarms) pending(requestID string, q workflows.PrewarmStatusQuery) (prewarmAnswer, bool) {
	p.mu.Lock()
	j, ok := p.jobs[requestID]
	p.mu.Unlock()
	if !ok || time.Since(j.at) > prewarmStaleFor {
		return prewarmAnswer{}, false
	}
	return prewarmAnswer{st: workflows.PendingPrewarmStatus(j.job, q)}, true
}

// prewarmStarted remembers a job this process just started (a new
// workflow, not an idempotent repeat) and awaits its result, so pollers
// see it finish at once.
func (s *Service) prewarmStarted(requestID string, job workflows.PrewarmJob, run client.WorkflowRun) {
	s.reads.prewarmsStarted.add(requestID, job)
	select {
	case s.reads.prewarmsStarted.awaits <- struct{}{}:
	default:
		return
	}
	wait := job.Timeout // the job ends by its deadline
	if wait <= 0 {
		wait = time.Hour
	}
	go func() {
		defer func() { <-s.reads.prewarmsStarted.awaits }()
		ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
		defer cancel()
		if err := run.Get(ctx, nil); err != nil && ctx.Err() != nil {
			return
		}
		// Finished (or failed): the next poll reads the final state.
		s.reads.prewarms.forgetPrefix(requestID + "/")
	}()
}
