package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent readers of one key share one load; its answer serves later
// readers until its TTL; an error is shared but never cached.
func TestReadCacheCoalesces(t *testing.T) {
	c := newReadCache[int](10)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, time.Duration, error) {
		n := loads.Add(1)
		<-release
		return int(n), time.Hour, nil
	}
	var wg sync.WaitGroup
	got := make([]int, 20)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := c.get(context.Background(), "job", load)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}(i)
	}
	for loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the other readers join the load
	close(release)
	wg.Wait()
	for _, v := range got {
		if v != 1 {
			t.Fatalf("answers %v, want every reader to get the one load's 1", got)
		}
	}
	if v, _ := c.get(context.Background(), "job", load); v != 1 || loads.Load() != 1 {
		t.Fatalf("cached read: %d after %d loads", v, loads.Load())
	}
	c.forget("job")
	if v, _ := c.get(context.Background(), "job", load); v != 2 {
		t.Fatalf("after forget: %d, want a new load", v)
	}
	boom := errors.New("boom")
	fail := func(context.Context) (int, time.Duration, error) { loads.Add(1); return 0, time.Hour, boom }
	before := loads.Load()
	for i := 0; i < 2; i++ {
		if _, err := c.get(context.Background(), "bad", fail); !errors.Is(err, boom) {
			t.Fatalf("error read: %v", err)
		}
	}
	if loads.Load()-before != 2 {
		t.Fatalf("a failed load was cached")
	}
}

// A running job is read fresh at first and at most once a second later.
func TestRunningTTLGrowsWithAge(t *testing.T) {
	if d := runningTTL(time.Now()); d != minRunningTTL {
		t.Fatalf("new job: %s", d)
	}
	if d := runningTTL(time.Now().Add(-5 * time.Second)); d < 400*time.Millisecond || d > 600*time.Millisecond {
		t.Fatalf("5 s old job: %s", d)
	}
	if d := runningTTL(time.Now().Add(-time.Hour)); d != maxRunningTTL {
		t.Fatalf("old job: %s", d)
	}
}

// Past its TTL an answer is served at once for staleFor while one
// background load refreshes it; past that the reader waits for a load. A
// load that ends after a forget never replaces an answer kept longer.
func TestReadCacheServesStaleWhileRefreshing(t *testing.T) {
	c := newStaleReadCache[int](10, 200*time.Millisecond)
	var loads atomic.Int32
	gate := make(chan struct{}, 10)
	load := func(context.Context) (int, time.Duration, error) {
		<-gate
		return int(loads.Add(1)), 20 * time.Millisecond, nil
	}
	ctx := context.Background()
	gate <- struct{}{}
	if v, _ := c.get(ctx, "job", load); v != 1 {
		t.Fatalf("first read: %d, want the first load", v)
	}
	time.Sleep(30 * time.Millisecond) // past the TTL, within staleFor
	if v, _ := c.get(ctx, "job", load); v != 1 {
		t.Fatalf("stale read: %d, want the last answer at once", v)
	}
	gate <- struct{}{}
	waitFor(t, func() bool { v, _ := c.get(ctx, "job", load); return v == 2 })
	time.Sleep(300 * time.Millisecond) // past staleFor: the reader waits
	gate <- struct{}{}
	if v, _ := c.get(ctx, "job", load); v != 3 {
		t.Fatalf("read past staleFor: %d, want a fresh load", v)
	}
	c.put("done", 100, time.Hour)
	c.put("done", 7, time.Millisecond)
	if v, _ := c.get(ctx, "done", load); v != 100 {
		t.Fatalf("an answer kept an hour was replaced by a shorter one: %d", v)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}

// The URL list cache keeps hundreds of small lists (every job of a load
// polled at once) while the bytes it holds stay under maxCachedURLBytes:
// a list over the bound alone is not kept, and lists that would pass it
// start the cache over.
func TestURLListCacheBoundedByBytes(t *testing.T) {
	c := newURLListCache()
	loads := 0
	get := func(key string, list []string) {
		t.Helper()
		if _, err := c.get(context.Background(), key, func(context.Context) ([]string, time.Duration, error) {
			loads++
			return list, urlListTTL, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	small := []string{"http://a.example/1.js", "http://a.example/2.js", "http://a.example/3.js"}
	for round := range 2 {
		for i := range 600 {
			get(fmt.Sprint("job", i), small)
		}
		if round == 0 && loads != 600 {
			t.Fatalf("%d loads for 600 new lists", loads)
		}
	}
	if loads != 600 {
		t.Fatalf("600 small lists polled twice: %d loads, want 600 (each read once)", loads)
	}
	huge := []string{strings.Repeat("x", maxCachedURLBytes)}
	get("huge", huge)
	get("huge", huge)
	if loads != 602 || c.weight > maxCachedURLBytes {
		t.Fatalf("a list over the bound: %d loads (want 2, never kept), weight %d", loads-600, c.weight)
	}
	half := []string{strings.Repeat("y", maxCachedURLBytes/2)}
	get("half1", half)
	get("half2", half) // with the small ones, over the bound: starts over
	if c.weight > maxCachedURLBytes || len(c.entries) != 1 {
		t.Fatalf("weight %d (bound %d), %d entries; want the last list alone", c.weight, maxCachedURLBytes, len(c.entries))
	}
}
