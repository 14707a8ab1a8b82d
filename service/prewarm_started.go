package service

import (
	"context"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/workflows"
)

// Prewarm status freshness: a release pipeline that polls must never wait
// on, or slow, the job it polls.
//
// A job this process started is followed (watchPrewarm): one long poll of
// its history per job, whatever the number of pollers, applies each
// finished chunk as Temporal records it, and every poll answers from that
// tally at once (prewarmTally: the same rules as a read of the history).
// A completed job's result answers its polls for finishedTTL when it holds
// the URL lists whole; when the job ends otherwise, or its history holds
// an event the tally cannot account for, the job is read as any other.
//
// Any other job is read from Temporal at most once per prewarmRunningTTL
// per page while it runs; past that its answer is still served for
// prewarmStaleFor while one background read refreshes it.
const (
	prewarmRunningTTL = 250 * time.Millisecond
	prewarmStaleFor   = 2 * time.Second
	// maxPrewarmWatches bounds the jobs followed at once (one long poll
	// each); jobs past it are read as any other.
	maxPrewarmWatches = 256
	// maxKeptResults bounds the finished jobs' results kept (finishedTTL
	// each); past it a finished job is read from Temporal.
	maxKeptResults = 10_000
)

// startedPrewarms are the jobs this process follows, by request id. Safe
// for concurrent use.
type startedPrewarms struct {
	mu      sync.Mutex
	watches map[string]*prewarmWatch
	slots   chan struct{}
	// successShown: answers carry the success list (--show-success-urls).
	successShown bool
}

// prewarmWatch is one followed job's tally, and its result once it
// completed.
type prewarmWatch struct {
	mu    sync.Mutex
	tally *prewarmTally
	exact bool
	// final is the completed job's result when it holds its URL lists
	// whole; kept finishedTTL after the end.
	final *workflows.PrewarmStatus
	ended time.Time
}

// live answers a followed job's status from its tally.
func (p *startedPrewarms) live(requestID string, q workflows.PrewarmStatusQuery) (prewarmAnswer, bool) {
	p.mu.Lock()
	w, ok := p.watches[requestID]
	p.mu.Unlock()
	if !ok {
		return prewarmAnswer{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.final != nil {
		st, ok, _ := pageResult(*w.final, q, p.successShown)
		return prewarmAnswer{st: st}, ok
	}
	if !w.exact {
		return prewarmAnswer{}, false
	}
	st, ok := w.tally.status(q)
	return prewarmAnswer{st: st}, ok
}

func (p *startedPrewarms) set(requestID string, w *prewarmWatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w == nil {
		delete(p.watches, requestID)
		return
	}
	if p.watches == nil {
		p.watches = map[string]*prewarmWatch{}
	}
	now := time.Now()
	for id, old := range p.watches { // finished ones are kept finishedTTL
		old.mu.Lock()
		expired := !old.ended.IsZero() && now.Sub(old.ended) > finishedTTL
		old.mu.Unlock()
		if expired {
			delete(p.watches, id)
		}
	}
	p.watches[requestID] = w
}

// end records how the watch of requestID ended: with the completed job's
// result (kept), or not (dropped: the job is read as any other).
func (p *startedPrewarms) end(requestID string, w *prewarmWatch, final *workflows.PrewarmStatus) {
	p.mu.Lock()
	full := len(p.watches) > maxKeptResults
	p.mu.Unlock()
	if final == nil || full {
		p.set(requestID, nil)
		return
	}
	w.mu.Lock()
	w.final, w.ended = final, time.Now()
	w.mu.Unlock()
}

// watchPrewarm follows a job this process just started (a new workflow,
// not an idempotent repeat) until it ends or its deadline passes, when a
// slot is free; the job's input is known, so it answers at once.
func (s *Service) watchPrewarm(requestID string, job workflows.PrewarmJob, run client.WorkflowRun) {
	select {
	case s.reads.prewarmsStarted.slots <- struct{}{}:
	default:
		return
	}
	t := newPrewarmTally()
	t.job, t.started = job, true
	w := &prewarmWatch{tally: t, exact: true}
	s.reads.prewarmsStarted.set(requestID, w)
	wait := job.Timeout // the job ends by its deadline
	if wait <= 0 {
		wait = time.Hour
	}
	go func() {
		defer func() { <-s.reads.prewarmsStarted.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
		defer cancel()
		final := s.followPrewarm(ctx, run, w)
		s.reads.prewarmsStarted.end(requestID, w, final)
		s.reads.prewarms.forgetPrefix(requestID + "/")
	}()
}

// followPrewarm applies the job's history events to w as Temporal records
// them, until the job ends (its result, when it completed) or an event
// only the query explains (nil; w is no longer exact).
func (s *Service) followPrewarm(ctx context.Context, run client.WorkflowRun, w *prewarmWatch) *workflows.PrewarmStatus {
	defer func() { w.mu.Lock(); w.exact = false; w.mu.Unlock() }()
	it := s.temporal.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Debug("prewarm watch stopped", zap.String("workflowId", run.GetID()), zap.Error(err))
			}
			return nil
		}
		if done := ev.GetWorkflowExecutionCompletedEventAttributes(); done != nil {
			var st workflows.PrewarmStatus
			if converter.GetDefaultDataConverter().FromPayloads(done.GetResult(), &st) != nil {
				return nil
			}
			return &st
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_TIMER_CANCELED:
			continue // the input is known; the deadline timer ends with the job
		}
		w.mu.Lock()
		ok := w.tally.add(ev)
		w.mu.Unlock()
		if !ok {
			return nil
		}
	}
	return nil
}
