package service

import (
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ValidationError is bad input; its message is safe to show the caller.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// ErrNoTemporal answers a read of jobs or the fleet (the console's) on a
// Service built without a Temporal client (an API assembled for a test of
// its routes, not for serving): 503, never a panic.
var ErrNoTemporal = errors.New("this API process has no Temporal client: jobs and the fleet cannot be read")

// IsTemporalUnavailable tells whether err means Temporal (or the database
// behind it) cannot take the call now: the frontend is unreachable or
// restarting (gRPC Unavailable), its store refused the write (the server
// reports persistence failures as Unavailable), or it did not answer
// within the call's deadline. Nothing the call asked for happened, or it
// will be found under the same id (workflow ids are derived from the
// request, so a retry does not start a second job). The API answers 503 /
// NHN 50001 with a Retry-After.
func IsTemporalUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &unavailable) || timedOut(err) {
		return true
	}
	var grpcErr interface{ GRPCStatus() *status.Status }
	if errors.As(err, &grpcErr) {
		switch grpcErr.GRPCStatus().Code() {
		case codes.Unavailable, codes.DeadlineExceeded:
			return true
		}
	}
	return false
}
