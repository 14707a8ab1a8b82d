package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
)

// logger is the activity's logger with kv added: the SDK's, which names
// the workflow, run, activity type and attempt (and, with the tracing
// interceptor, the trace and span), backed by the worker's zap logger.
func logger(ctx context.Context, kv ...any) log.Logger {
	return log.With(activity.GetLogger(ctx), kv...)
}
