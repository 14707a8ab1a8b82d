package service

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Heavy work waits for a slot while one frees within the wait; it is
// refused (429's LimitError, ErrOverloaded, policy "heavy") when none
// frees in time, and at once, without waiting, when the requests already
// waiting would outwait it at the slots' recent hold time.
func TestSlotsQueueThenShed(t *testing.T) {
	ctx := context.Background()
	h := newSlots(2, 300*time.Millisecond, "test work")
	a, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Both held: a third waits and gets the slot a gives back.
	go func() { time.Sleep(50 * time.Millisecond); a() }()
	start := time.Now()
	c, err := h.acquire(ctx)
	if err != nil || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("third request: %v after %s, want a slot once one is given back", err, time.Since(start))
	}
	// Both held, none given back: refused once the wait passed.
	start = time.Now()
	_, err = h.acquire(ctx)
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrOverloaded) || le.Policy != "heavy" || le.RetryAfterSeconds() != 1 {
		t.Fatalf("no slot freed: %v, want a heavy *LimitError", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("refused after %s, want after the 300ms wait", waited)
	}
	// Slots held for a second each (the average): a request finding them
	// taken would wait ~0.5 s, past the wait, so it is refused at once.
	h.holdNS.Store(int64(time.Second))
	start = time.Now()
	if _, err := h.acquire(ctx); !errors.As(err, &le) {
		t.Fatalf("long queue: %v, want a refusal", err)
	}
	if waited := time.Since(start); waited > 100*time.Millisecond {
		t.Fatalf("long queue: refused after %s, want at once", waited)
	}
	b()
	c()
	// Free again: taken without waiting whatever the average.
	d, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d()
	if h.waiting.Load() != 0 {
		t.Fatalf("%d requests still counted waiting", h.waiting.Load())
	}
	var none *slots
	if release, err := none.acquire(ctx); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
}

// Refresh-ahead: an answer near its TTL's end is served while one
// background load replaces it, so readers do not wait; nothing past the
// TTL is served (a reader then waits for the load).
func TestReadCacheRefreshesAhead(t *testing.T) {
	c := newReadCache[int](10)
	c.refreshAhead = 80 * time.Millisecond
	loads := make(chan int, 10)
	n := 0
	load := func(context.Context) (int, time.Duration, error) {
		n++
		loads <- n
		return n, 100 * time.Millisecond, nil
	}
	ctx := context.Background()
	if v, waited, _ := c.getWaited(ctx, "h", load); v != 1 || !waited {
		t.Fatalf("first read: %d (waited %v), want the load's 1", v, waited)
	}
	<-loads
	if v, waited, _ := c.getWaited(ctx, "h", load); v != 1 || waited {
		t.Fatalf("fresh read: %d (waited %v), want the kept 1", v, waited)
	}
	time.Sleep(40 * time.Millisecond) // within the last 80ms of the TTL
	if v, waited, _ := c.getWaited(ctx, "h", load); v != 1 || waited {
		t.Fatalf("read near the TTL's end: %d (waited %v), want the kept 1 at once", v, waited)
	}
	select {
	case <-loads:
	case <-time.After(time.Second):
		t.Fatal("no background load started near the TTL's end")
	}
	if v, _, _ := c.getWaited(ctx, "h", load); v != 2 {
		t.Fatalf("after the background load: %d, want its 2", v)
	}
	time.Sleep(150 * time.Millisecond) // past the TTL
	if v, waited, _ := c.getWaited(ctx, "h", load); v != 3 || !waited {
		t.Fatalf("read past the TTL: %d (waited %v), want a load waited for", v, waited)
	}
}

// A job start refused for want of a heavy slot after its admission does
// not count as the tenant's: the tenant's running jobs read as before it,
// so shed requests never add up to a --tenant-max-running refusal.
func TestShedStartIsNotCountedAsRunning(t *testing.T) {
	s := &Service{gate: &backlogGate{}, heavy: newSlots(1, 10*time.Millisecond, "test work")}
	s.gate.tenants = map[string]*tenantReading{"t": {at: time.Now().Add(time.Hour), running: 3}}
	ctx := context.Background()
	s.gate.admitted("t", 1)
	held, err := s.admittedSlot(ctx, "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		s.gate.admitted("t", 2)
		if _, err := s.admittedSlot(ctx, "t", 2); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("slot held: %v, want a heavy refusal", err)
		}
	}
	held()
	if n, err := s.gate.tenantRunning(ctx, s, "t"); err != nil || n != 4 {
		t.Fatalf("tenant running = %d, %v; want 3 read + 1 started, none of the 5 shed", n, err)
	}
}
