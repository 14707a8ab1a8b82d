// Package testlog gives tests a zap logger that writes to the test log.
package testlog

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger writes to the test log while the test runs and drops lines after
// it ends: the embedded server and the SDK keep background goroutines that
// may log during shutdown, and testing panics on a log after completion.
func Logger(t testing.TB, level zapcore.Level) *zap.Logger {
	w := &testWriter{t: t}
	// Registered first, so it runs last: after every other cleanup.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
