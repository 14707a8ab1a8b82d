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

// count is how many items have an outcome.
func (p *progress[D]) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.done)
}
