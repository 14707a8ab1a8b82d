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

// maxBacklogAge refuses new jobs once the oldest queued workflow task has
// waited this long: the workers are not keeping up.
const maxBacklogAge = 5 * time.Second

type backlogGate struct {
	mu      sync.Mutex
	at      time.Time
	backlog int64
	age     time.Duration // of the oldest queued task
	// recent holds when this process admitted its jobs of the last
	// admitWindow: Temporal's statistics refresh every few seconds, so a
	// burst admitted in between must count before they show it; a job
	// admitted earlier has had its first task taken (an eager start never
	// queues one) or shows in the statistics' age.
	recent []time.Time
	// refreshing: one caller is reading the statistics.
	refreshing bool
}

// admitWindow is how long an admitted job counts against the limit by
// itself: the limit is then also a rate (MaxBacklog jobs per window) while
// the queue looks empty, and only a queue that is really behind (its
// oldest task older than maxBacklogAge, or more than the limit queued)
// refuses more: never because readers are busy.
const admitWindow = time.Second

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
// oldest queued task is too old, or the queue plus the jobs admitted in
// the last admitWindow would pass the limit.
func (g *backlogGate) admit(ctx context.Context, s *Service, limit int64) error {
	if err := g.refresh(ctx, s); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for len(g.recent) > 0 && now.Sub(g.recent[0]) > admitWindow {
		g.recent = g.recent[1:]
	}
	if g.age > maxBacklogAge || g.backlog+int64(len(g.recent)) >= limit {
		return fmt.Errorf("%w (%d workflow tasks queued, the oldest for %s; %d jobs admitted in the last %s)",
			ErrOverloaded, g.backlog, g.age.Round(time.Second), len(g.recent), admitWindow)
	}
	g.recent = append(g.recent, now)
	return nil
}

// refresh reads the task queue statistics at most once per backlogTTL.
// One caller reads them while the others decide on the last reading, so
// no new job waits on a DescribeTaskQueue that takes seconds under load;
// only the very first readings are waited for.
func (g *backlogGate) refresh(ctx context.Context, s *Service) error {
	g.mu.Lock()
	if time.Since(g.at) < backlogTTL || (g.refreshing && !g.at.IsZero()) {
		g.mu.Unlock()
		return nil
	}
	g.refreshing = true
	g.mu.Unlock()
	resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.config.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: s.config.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshing = false
	if err != nil {
		return fmt.Errorf("describe task queue %s: %w", s.config.TaskQueue, err)
	}
	st := resp.GetStats()
	g.at, g.backlog, g.age = time.Now(), st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration()
	return nil
}
