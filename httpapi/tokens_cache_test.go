package httpapi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/workflows"
)

// The token table's copy: read once for many waiting requests, kept
// serving for tokenStaleMax while the table cannot be read, then 503;
// an unknown id reads again at most every tokenMissRefresh.
func TestTokenCacheServesItsCopyWhileTheTableIsAway(t *testing.T) {
	var (
		loads   atomic.Int32
		failing atomic.Bool
		release = make(chan struct{})
		recs    = []workflows.TokenRecord{{ID: "tok_a"}}
	)
	clock := time.Unix(1_000_000, 0)
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	tc := newTokenCache(3*time.Second, func(context.Context) ([]workflows.TokenRecord, error) {
		loads.Add(1)
		<-release
		if failing.Load() {
			return nil, errors.New("temporal away")
		}
		return recs, nil
	})
	tc.now = now

	// 20 requests at once on an empty copy: one read.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := tc.lookup(context.Background(), "tok_a"); err != nil || !ok {
				t.Errorf("lookup: %v %v", ok, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("20 concurrent lookups read the table %d times, want 1", n)
	}

	// The table goes away: the copy serves until tokenStaleMax, then 503.
	failing.Store(true)
	advance(10 * time.Second)
	if _, ok, err := tc.lookup(context.Background(), "tok_a"); err != nil || !ok {
		t.Fatalf("a 10 s old copy with the table away: %v %v, want served", ok, err)
	}
	advance(tokenStaleMax)
	if _, _, err := tc.lookup(context.Background(), "tok_a"); err == nil {
		t.Fatal("a copy older than tokenStaleMax served while the table is away")
	}

	// Back: an unknown id reads again, but not more than every tokenMissRefresh.
	failing.Store(false)
	if _, ok, err := tc.lookup(context.Background(), "tok_a"); err != nil || !ok {
		t.Fatalf("table back: %v %v", ok, err)
	}
	before := loads.Load()
	for range 5 {
		if _, ok, _ := tc.lookup(context.Background(), "tok_unknown"); ok {
			t.Fatal("unknown id found")
		}
	}
	if n := loads.Load() - before; n != 0 {
		t.Fatalf("5 misses within tokenMissRefresh read the table %d times, want 0", n)
	}
	advance(tokenMissRefresh)
	_, _, _ = tc.lookup(context.Background(), "tok_unknown") // only the read count matters
	if n := loads.Load() - before; n != 1 {
		t.Fatalf("a miss after tokenMissRefresh read the table %d times, want 1", n)
	}
}
