package service

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cdnflow/cdnflow/config"
)

// slots bounds one kind of heavy work of a Service (config.Shedding): job
// starts and uncached status reads (Service.heavy), visibility scans
// (reads.visibility). A request takes a slot before its Temporal round
// trips and gives it back after. Waiting requests are parked on the
// channel, not runnable, so on a saturated CPU the light requests and
// the refusals (decided before any slot is asked for) run ahead of them.
//
// A request that finds every slot taken is refused at once (*LimitError,
// ErrOverloaded, policy "heavy") when the requests already waiting, at
// the slots' recent hold time, would keep it waiting past wait; otherwise
// it waits, and is refused when wait passes first. So a refusal costs no
// wait when the queue is long, and a request is never queued for long.
type slots struct {
	ch   chan struct{}
	wait time.Duration
	what string
	// waiting counts the requests parked on ch; holdNS is a moving
	// average of how long a slot is held (nanoseconds).
	waiting atomic.Int64
	holdNS  atomic.Int64
}

// newSlots answers n slots with the given wait; nil (no bound) for n <= 0.
func newSlots(n int, wait time.Duration, what string) *slots {
	if n <= 0 {
		return nil
	}
	return &slots{ch: make(chan struct{}, n), wait: wait, what: what}
}

// heavyRetryAfter is the Retry-After of a refusal for want of a slot:
// slots free within milliseconds, so a second is plenty.
const heavyRetryAfter = time.Second

// acquire takes a slot and answers the function that gives it back.
// Errors: *LimitError (Kind ErrOverloaded, Policy "heavy") when no slot is
// free in time, ctx's error when the caller gave up first.
func (h *slots) acquire(ctx context.Context) (func(), error) {
	if h == nil {
		return func() {}, nil
	}
	select {
	case h.ch <- struct{}{}:
		return h.releaser(), nil
	default:
	}
	ahead := h.waiting.Add(1)
	defer h.waiting.Add(-1)
	if expected := time.Duration(ahead * h.holdNS.Load() / int64(cap(h.ch))); expected > h.wait {
		return nil, h.refusal()
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.ch <- struct{}{}:
		return h.releaser(), nil
	case <-t.C:
		return nil, h.refusal()
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a slot (%s): %w", h.what, ctx.Err())
	}
}

// releaser gives the slot taken now back, and feeds its hold time into
// the moving average (weight 1/8; two releases at once may lose one
// sample, which an estimate can afford).
func (h *slots) releaser() func() {
	start := time.Now()
	return func() {
		held := int64(time.Since(start))
		old := h.holdNS.Load()
		h.holdNS.Store(old + (held-old)/8)
		<-h.ch
	}
}

func (h *slots) refusal() *LimitError {
	return &LimitError{Kind: ErrOverloaded, Policy: "heavy", Quota: cap(h.ch), Window: time.Second, RetryAfter: heavyRetryAfter,
		Msg: fmt.Sprintf("%v: this API process serves %d %s at once and the ones waiting would not start within %s (--heavy-concurrency, --heavy-wait); retry in a second",
			ErrOverloaded, cap(h.ch), h.what, h.wait)}
}

// visibilityWait is how long a visibility scan (a GET purges page) waits
// for its slot: --heavy-wait, but at least minVisibilityWait, since a
// page refused for want of a scan is a page its reader polls again; or
// defaultVisibilityWait when heavy work is not bounded.
func visibilityWait(c config.Config) time.Duration {
	if c.HeavyConcurrency <= 0 || c.HeavyWait <= 0 {
		return defaultVisibilityWait
	}
	return max(c.HeavyWait, minVisibilityWait)
}

// minVisibilityWait is the shortest wait of a visibility scan when heavy
// work is bounded.
const minVisibilityWait = 200 * time.Millisecond

// defaultVisibilityWait bounds a visibility scan's wait without
// config.Shedding.
const defaultVisibilityWait = 5 * time.Second

// admittedSlot takes a heavy slot for n jobs of tenant that admitJob has
// just admitted; refused one, the admission is withdrawn, so requests shed
// here never count as the tenant's running jobs (and never make it refuse
// the tenant's next requests as --tenant-max-running).
func (s *Service) admittedSlot(ctx context.Context, tenant string, n int) (func(), error) {
	release, err := s.heavy.acquire(ctx)
	if err != nil {
		s.gate.withdraw(tenant, n)
		return nil, err
	}
	return release, nil
}
