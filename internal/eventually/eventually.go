// Package eventually polls a condition until it holds or a time limit
// passes. It replaces the hand-written deadline/sleep loops in tests: one
// place decides how often to poll and how a timeout reads.
//
// The limit only bounds a hung test; it is never a performance assertion.
// The package imports nothing but the standard library, so unit tests can
// use it without linking the Temporal server.
package eventually

import (
	"fmt"
	"time"
)

// DefaultEvery is the poll interval of Within.
const DefaultEvery = 100 * time.Millisecond

// TB is the part of testing.TB the package uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Within calls check every DefaultEvery until it returns nil, and fails t
// (Fatalf, so only from the test's goroutine) with check's last error once
// limit has passed. check describes what it still waits for in its error.
func Within(t TB, limit time.Duration, check func() error) {
	t.Helper()
	WithinEvery(t, limit, DefaultEvery, check)
}

// WithinEvery is Within with a poll interval of every.
func WithinEvery(t TB, limit, every time.Duration, check func() error) {
	t.Helper()
	if err := Wait(limit, every, check); err != nil {
		t.Fatalf("%v", err)
	}
}

// Wait calls check every interval until it returns nil and returns nil, or
// returns check's last error (wrapped with the limit) once limit has
// passed. check runs at least once, and once more at the limit. Use it from
// goroutines other than the test's, which must not call Fatalf.
func Wait(limit, every time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("still not true after %s: %w", limit, err)
		}
		time.Sleep(min(every, time.Until(deadline)+time.Millisecond))
	}
}
