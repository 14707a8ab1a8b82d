package config

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

// Shedding bounds the API's heavy work (api, dev; docs/performance.md
// "Issue 30: refusals first, heavy work queued"): at most HeavyConcurrency
// requests of one API process at once run a job start (the Temporal start
// of an admitted prewarm or purge) or an uncached status read (a prewarm's
// status, a purge's live state); the others wait for a slot, parked (not
// runnable), and a request that waited HeavyWait is answered 429 (NHN
// 30001) with Retry-After instead of queueing on. Refusals and light
// routes never wait for a slot, so on a saturated CPU they are not stuck
// behind heavy requests.
type Shedding struct {
	// HeavyConcurrency is the number of slots; 0: no bound.
	HeavyConcurrency int
	// HeavyWait is the longest a request waits for a slot.
	HeavyWait time.Duration
}

// defaultShedding sizes the slots by the process's CPUs: two per CPU
// (GOMAXPROCS), at least 4. On a saturated CPU more slots only add
// runnable work that the light routes and the refusals then queue behind;
// with a Temporal cluster elsewhere a slot is held for a few milliseconds
// of round trips, so 4 slots still start hundreds of jobs a second. A
// request waits at most 50 ms: past that it is cheaper for everyone that
// it retries after Retry-After than that it queues.
func defaultShedding() Shedding {
	return Shedding{HeavyConcurrency: max(4, 2*runtime.GOMAXPROCS(0)), HeavyWait: 50 * time.Millisecond}
}

// Register binds the API's heavy-work bounds.
func (s *Shedding) Register(fs *flag.FlagSet) {
	num(fs, &s.HeavyConcurrency, "heavy-concurrency", "CDNFLOW_HEAVY_CONCURRENCY", "job starts and uncached status reads one API process runs at once (default: 2 per CPU, at least 4); the rest wait for a slot (0: no bound)")
	dur(fs, &s.HeavyWait, "heavy-wait", "CDNFLOW_HEAVY_WAIT", "longest a request waits for a heavy-work slot before it is answered 429 (NHN 30001) with Retry-After")
}

func (s Shedding) validate() error {
	if s.HeavyConcurrency < 0 || s.HeavyConcurrency > 10_000 {
		return fmt.Errorf("heavy-concurrency must be 0 to 10000, got %d", s.HeavyConcurrency)
	}
	if s.HeavyWait < 0 || s.HeavyWait > time.Minute {
		return fmt.Errorf("heavy-wait must be 0 to 1m, got %s", s.HeavyWait)
	}
	return nil
}
