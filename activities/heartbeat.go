package activities

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// beatInterval heartbeats three times per heartbeat timeout, so one lost
// heartbeat never times an attempt out, and at least every 2 s so progress
// recorded for a resumed attempt is recent.
func beatInterval(ctx context.Context) time.Duration {
	d := activity.GetInfo(ctx).HeartbeatTimeout / 3
	if d <= 0 || d > 2*time.Second {
		d = 2 * time.Second
	}
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

// beatWhile calls beat every beatInterval until the returned stop is
// called (or ctx ends); stop waits for the last beat to finish.
func beatWhile(ctx context.Context, beat func()) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(beatInterval(ctx))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// keepAlive heartbeats until stopped, for activities whose one step (a
// VCL compile) has no progress of its own to report.
func keepAlive(ctx context.Context) (stop func()) {
	return beatWhile(ctx, func() { activity.RecordHeartbeat(ctx) })
}

// progress is the finished items of an activity attempt, by index, as the
// detail rows D it heartbeats; a retried attempt restores them and skips
// those items. Safe for concurrent use.
type progress[D any] struct {
	mu    sync.Mutex
	index func(D) int
	done  map[int]D
}

// resumeProgress restores the rows the previous attempt heartbeated (a
// []D) whose index lies in [lo, hi); index reads a row's item index.
func resumeProgress[D any](ctx context.Context, lo, hi int, index func(D) int) *progress[D] {
	var prev []D
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &prev); err != nil {
			prev = nil
		}
	}
	return restoreProgress(prev, lo, hi, index)
}

// restoreProgress is a progress holding the rows of prev whose index lies
// in [lo, hi).
func restoreProgress[D any](prev []D, lo, hi int, index func(D) int) *progress[D] {
	p := &progress[D]{index: index, done: map[int]D{}}
	for _, d := range prev {
		if i := index(d); i >= lo && i < hi {
			p.done[i] = d
		}
	}
	return p
}

func (p *progress[D]) add(d D) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[p.index(d)] = d
}

func (p *progress[D]) has(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.done[i]
	return ok
}

// rows returns the finished rows ordered by index.
func (p *progress[D]) rows() []D {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]D, 0, len(p.done))
	for _, d := range p.done {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return p.index(out[i]) < p.index(out[j]) })
	return out
}

// beat records the finished rows as the attempt's heartbeat details.
func (p *progress[D]) beat(ctx context.Context) { activity.RecordHeartbeat(ctx, p.rows()) }

// runPool calls do for every index in [lo, hi) that p has not finished,
// with at most cap(slots) calls in flight (slots may be shared with other
// attempts to bound the load on one edge), and heartbeats p meanwhile: a
// call slower than the heartbeat timeout must not lose the attempt. It
// stops starting calls at the first error, when ctx ends or — with
// yieldToStop — when the worker is told to stop (SIGTERM), and always
// waits for the calls in flight. It returns the first error and whether a
// worker stop ended it early.
func runPool[D any](ctx context.Context, p *progress[D], lo, hi int, slots chan struct{}, yieldToStop bool, do func(i int) error) (stopped bool, err error) {
	var stopping <-chan struct{}
	if yieldToStop {
		stopping = activity.GetWorkerStopChannel(ctx)
	}
	var mu sync.Mutex
	var firstErr error
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }
	stopBeat := beatWhile(ctx, func() { p.beat(ctx) })
	var wg sync.WaitGroup
feed:
	for i := lo; i < hi; i++ {
		if p.has(i) {
			continue
		}
		if failed() || ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break feed
		case <-stopping:
			stopped = true
			break feed
		}
		if ctx.Err() != nil {
			<-slots
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			if err := do(i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	stopBeat()
	return stopped, firstErr
}

// count is how many items have an outcome.
func (p *progress[D]) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.done)
}
