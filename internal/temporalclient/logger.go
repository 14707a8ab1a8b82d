package temporalclient

import (
	sdklog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// zapLogger adapts zap to the SDK's key/value logger so SDK and workflow
// logs carry the same structured fields (WorkflowID, RunID, ...) as ours.
type zapLogger struct{ s *zap.SugaredLogger }

// NewLogger wraps a zap logger for the Temporal SDK.
func NewLogger(l *zap.Logger) sdklog.Logger {
	return zapLogger{s: l.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (z zapLogger) Debug(msg string, kv ...interface{}) { z.s.Debugw(msg, kv...) }
func (z zapLogger) Info(msg string, kv ...interface{})  { z.s.Infow(msg, kv...) }
func (z zapLogger) Warn(msg string, kv ...interface{})  { z.s.Warnw(msg, kv...) }
func (z zapLogger) Error(msg string, kv ...interface{}) { z.s.Errorw(msg, kv...) }

// With keeps fields for every later line (sdklog.WithLogger).
func (z zapLogger) With(kv ...interface{}) sdklog.Logger { return zapLogger{s: z.s.With(kv...)} }
