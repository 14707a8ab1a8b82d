package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
)

// ErrOverloaded means the workers are behind: more workflow tasks wait in
// the task queue than --max-backlog. New jobs are refused (429 / 30001 with
// Retry-After) until they catch up, rather than queued where their status
// could not be answered and their deadlines would run out unstarted.
var ErrOverloaded = errors.New("the workers are behind; retry in a few seconds")

// backlogTTL is how long one backlog reading serves: admission costs one
// DescribeTaskQueue per second per API process, not one per request.
const backlogTTL = time.Second

// statsRefresh is about how often Temporal refreshes task queue
// statistics.
const statsRefresh = 5 * time.Second

// maxBacklogAge refuses new jobs once the oldest queued workflow task has
// waited this long: the workers are not keeping up.
const maxBacklogAge = 5 * time.Second

type backlogGate struct {
	mu      sync.Mutex
	at      time.Time
	backlog int64
	age     time.Duration // of the oldest queued task
	// admitted counts jobs this process let in since Temporal's statistics
	// last changed: they refresh every few seconds, and a burst admitted
	// in between must count before they show it.
	admitted int64
	reset    time.Time
}

// admitJob refuses a new job while the workflow task backlog is over the
// limit. If the backlog cannot be read, the job is admitted: admission
// protects against overload, it must not become an outage of its own.
func (s *Service) admitJob(ctx context.Context) error {
	if s.config.MaxBacklog <= 0 {
		return nil
	}
	err := s.gate.admit(ctx, s, int64(s.config.MaxBacklog))
	if err != nil && !errors.Is(err, ErrOverloaded) {
		if s.logger != nil {
			s.logger.Warn("read task queue backlog", zap.Error(err))
		}
		return nil
	}
	return err
}

// admit counts one job in, or refuses it with ErrOverloaded when the
// oldest queued task is too old, or the queue plus the jobs admitted since
// the statistics last changed would pass the limit.
func (g *backlogGate) admit(ctx context.Context, s *Service, limit int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refresh(ctx, s); err != nil {
		return err
	}
	if g.age > maxBacklogAge || g.backlog+g.admitted >= limit {
		return fmt.Errorf("%w (%d workflow tasks queued, the oldest for %s; %d jobs admitted since)",
			ErrOverloaded, g.backlog, g.age.Round(time.Second), g.admitted)
	}
	g.admitted++
	return nil
}

// refresh reads the task queue statistics at most once per backlogTTL.
func (g *backlogGate) refresh(ctx context.Context, s *Service) error {
	if time.Since(g.at) < backlogTTL {
		return nil
	}
	resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.config.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: s.config.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	if err != nil {
		return fmt.Errorf("describe task queue %s: %w", s.config.TaskQueue, err)
	}
	st := resp.GetStats()
	backlog, age := st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration()
	// A changed reading includes the jobs admitted before it; an unchanged
	// one is trusted again after statsRefresh, so the count cannot starve
	// admission on an idle queue whose statistics stay the same.
	if backlog != g.backlog || age != g.age || time.Since(g.reset) > statsRefresh {
		g.admitted, g.reset = 0, time.Now()
	}
	g.at, g.backlog, g.age = time.Now(), backlog, age
	return nil
}
