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

// keepAlive heartbeats until the returned stop is called, for activities
// whose one step (a VCL compile) has no progress of its own to report.
func keepAlive(ctx context.Context) (stop func()) {
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
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done); <-finished }
}
