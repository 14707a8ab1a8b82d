package activities

import (
	"context"
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
