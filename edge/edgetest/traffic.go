package edgetest

import (
	"context"
	"testing"

	"github.com/cdnflow/cdnflow/edge/traffic"
)

// StartTraffic makes e's connector serve live traffic read from e's
// request log by a traffic.Reader (varnishncsa) until the test ends, as
// `cdnflow connector --traffic-varnish-dir` does, and answers the
// Aggregator the reader feeds. The reader attaches within seconds: wait
// for a request to be counted before relying on it.
func StartTraffic(t testing.TB, e *RunningEdge) *traffic.Aggregator {
	t.Helper()
	agg := e.Connector.EnableTraffic(e.Edge.ID, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := &traffic.Reader{WorkDir: e.Process.Options().WorkDir, Agg: agg}
		if err := r.Run(ctx); err != nil {
			t.Errorf("traffic reader: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return agg
}
