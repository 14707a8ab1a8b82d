package traffic_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/internal/eventually"
)

// Idle distributions are forgotten while varnishncsa keeps running: the
// stand-in varnishncsa logs one request and then never exits, and once
// the Aggregator's clock is a day past it, the distribution goes.
func TestReaderForgetsWhileVarnishncsaRuns(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "varnishncsa")
	script := "#!/bin/sh\nprintf 'GET\\ta.example.com\\thit\\t200\\t10\\t0.001\\t100\\t-\\n'\nexec sleep 600\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var ahead atomic.Int64
	agg := traffic.NewAggregator("E1", func(h string) (string, bool) { return h, true }, 0)
	traffic.SetClock(agg, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := &traffic.Reader{WorkDir: t.TempDir(), Binary: bin, Agg: agg, ForgetEvery: 50 * time.Millisecond}
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reader: %v", err)
		}
	}()
	eventually.WithinEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
		if len(agg.Read(traffic.Query{})) != 1 {
			return fmt.Errorf("the logged request is not counted yet")
		}
		return nil
	})
	ahead.Store(int64(25 * time.Hour))
	eventually.WithinEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(agg.Read(traffic.Query{})); n != 0 {
			return fmt.Errorf("%d distributions a day after their last request", n)
		}
		return nil
	})
}
