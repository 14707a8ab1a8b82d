package service

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cdnflow/cdnflow/workflows"
)

// readCache coalesces reads of one key, so that reads never starve
// jobs: concurrent callers share one load (singleflight), and its answer
// serves every caller for the TTL the load chose. Errors are never
// cached. At most maxEntries answers are kept; past that the cache starts
// over; likewise, when weigh is set, past maxWeight of weigh's sum over
// the answers kept (an answer over maxWeight alone is not kept). Safe for
// concurrent use.
type readCache[V any] struct {
	maxEntries int
	maxWeight  int
	weigh      func(V) int
	weight     int // of the entries kept
	// staleFor (0: never) serves an answer past its TTL for this long
	// while one background load refreshes it (stale-while-revalidate):
	// a poller never waits on Temporal for a job it polled a moment ago.
	staleFor time.Duration
	// refreshAhead (0: never) starts one background load of an answer
	// this close to its TTL's end while the answer is still served, so
	// callers rarely find it expired and wait; unlike staleFor, nothing
	// past its TTL is ever served.
	refreshAhead time.Duration
	group        singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedRead[V]
}

type cachedRead[V any] struct {
	v       V
	w       int // weigh(v)
	expires time.Time
	// stale is when the answer may no longer be served while it is
	// refreshed (expires + staleFor).
	stale time.Time
}

// loadTimeout bounds a shared load: it runs detached from any one
// caller's context, so a caller that gives up does not fail the others.
const loadTimeout = 20 * time.Second

func newReadCache[V any](maxEntries int) *readCache[V] {
	return newStaleReadCache[V](maxEntries, 0)
}

// newStaleReadCache is a readCache that serves answers staleFor past
// their TTL while refreshing them.
func newStaleReadCache[V any](maxEntries int, staleFor time.Duration) *readCache[V] {
	return &readCache[V]{maxEntries: maxEntries, staleFor: staleFor, entries: map[string]cachedRead[V]{}}
}

// get answers key from the cache, or runs load once for every concurrent
// caller; load returns the value and how long it may be served (0: not
// cached, only shared with the callers already waiting).
//
// An answer past its TTL but within staleFor is served at once while one
// load refreshes it in the background.
func (c *readCache[V]) get(ctx context.Context, key string, load func(context.Context) (V, time.Duration, error)) (V, error) {
	v, _, err := c.getWaited(ctx, key, load)
	return v, err
}

// getWaited is get that also says whether the answer is a load's this
// call waited for (false: a kept answer, fresh or stale, was served).
func (c *readCache[V]) getWaited(ctx context.Context, key string, load func(context.Context) (V, time.Duration, error)) (V, bool, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	now := time.Now()
	if ok && now.Before(e.expires) {
		if c.refreshAhead > 0 && !now.Before(e.expires.Add(-c.refreshAhead)) {
			c.start(ctx, key, load) // the load refreshes it for the next caller
		}
		return e.v, false, nil
	}
	ch := c.start(ctx, key, load)
	if ok && now.Before(e.stale) {
		return e.v, false, nil // the load refreshes it for the next caller
	}
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, true, r.Err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// start runs load for key, or joins the load of key already running;
// the load is detached from ctx's cancellation (loadTimeout bounds it)
// and keeps its answer for the TTL it chose.
func (c *readCache[V]) start(ctx context.Context, key string, load func(context.Context) (V, time.Duration, error)) <-chan singleflight.Result {
	return c.group.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, ttl, err := load(lctx)
		if err == nil && ttl > 0 {
			c.put(key, v, ttl)
		}
		return v, err
	})
}

func (c *readCache[V]) put(key string, v V, ttl time.Duration) {
	w := 0
	if c.weigh != nil {
		if w = c.weigh(v); w > c.maxWeight {
			return // never kept: it alone is over the bound
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full(w) {
		now := time.Now()
		for k, e := range c.entries {
			if now.After(e.expires) {
				c.drop(k, e)
			}
		}
		if c.full(w) {
			c.entries, c.weight = map[string]cachedRead[V]{}, 0
		}
	}
	expires := time.Now().Add(ttl)
	e, ok := c.entries[key]
	if ok && e.expires.After(expires) {
		// A load that started earlier and ended later (after a forget):
		// the answer kept longer is the newer state (a finished job's).
		return
	}
	if ok {
		c.drop(key, e)
	}
	c.entries[key] = cachedRead[V]{v: v, w: w, expires: expires, stale: expires.Add(c.staleFor)}
	c.weight += w
}

// full reports whether one more answer of weight w passes a bound; c.mu
// is held.
func (c *readCache[V]) full(w int) bool {
	return len(c.entries) >= c.maxEntries || (c.weigh != nil && c.weight+w > c.maxWeight)
}

// drop removes entry e of key; c.mu is held.
func (c *readCache[V]) drop(key string, e cachedRead[V]) {
	delete(c.entries, key)
	c.weight -= e.w
}

// forget drops key, so the next read loads it again.
func (c *readCache[V]) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.drop(key, e)
	}
}

// reads are the Service's coalesced reads.
type reads struct {
	purges   *readCache[workflows.PurgeStatus]
	lists    *readCache[[]foundPurge]
	prewarms *readCache[workflows.PrewarmStatus]
	// urlLists holds recently read prewarm URL lists (immutable by key).
	urlLists *readCache[[]string]
	// hosts holds, per lower-case host, the live distributions serving it
	// as prewarm resolution looked them up (prewarm_lookup.go).
	hosts *readCache[[]prewarmSite]
	// visibility bounds the visibility scans running at once (shed.go).
	visibility *slots
	// started are the purges this process started (purge_started.go);
	// awaits bounds the purge results awaited at once.
	started startedPurges
	awaits  chan struct{}
	// awaiting maps the workflow id of each awaited purge to a channel
	// closed once its wait ended.
	awaiting sync.Map
}

// maxVisibilityReads bounds concurrent visibility scans of one process.
const maxVisibilityReads = 4

func newReads() *reads {
	return &reads{
		purges:   newStaleReadCache[workflows.PurgeStatus](10_000, purgeStaleFor),
		lists:    newStaleReadCache[[]foundPurge](1_000, listStaleFor),
		prewarms: newStaleReadCache[workflows.PrewarmStatus](10_000, prewarmStaleFor),
		urlLists: newURLListCache(),
		hosts:    newHostsCache(),
		awaits:   make(chan struct{}, maxAwaits),
	}
}

// Read freshness. A running job's answer is served for a tenth
// of its age, between minRunningTTL and maxRunningTTL: a job that started
// a moment ago is read fresh (a purge finishes in tens of milliseconds),
// one that runs for minutes is read at most once a second however many
// pollers ask. A finished job's answer never changes.
const (
	minRunningTTL = 10 * time.Millisecond
	maxRunningTTL = time.Second
	finishedTTL   = 10 * time.Minute
	// listTTL serves one visibility scan of an appKey's purges of a
	// domain (the purges this process started are added to it at once,
	// startedPurges); past it the scan is served for listStaleFor more
	// while one background scan refreshes it, so a GET /purges waits on
	// visibility only for a key nobody listed in the last seconds.
	listTTL      = 250 * time.Millisecond
	listStaleFor = time.Second
	// purgeStaleFor serves a running purge's live state that long past its
	// runningTTL while one background read refreshes it, so a poller whose
	// page ran out of liveReadBudget gets the last live answer next time.
	purgeStaleFor = 2 * time.Second
)

// runningTTL is how long the answer about a job that started at started
// may be served.
func runningTTL(started time.Time) time.Duration {
	return min(max(time.Since(started)/10, minRunningTTL), maxRunningTTL)
}
