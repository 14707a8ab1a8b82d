package activities

import "go.temporal.io/sdk/temporal"

// Types of the application errors activities return. Workflows list the
// final ones in their retry policies' NonRetryableErrorTypes; errors of
// other types are retried.
const (
	// ErrUnknownEdge: the edge id is not in this worker's inventory.
	ErrUnknownEdge = "UnknownEdge"
	// ErrBadSite: a distribution cannot be rendered into VCL.
	ErrBadSite = "BadSite"
	// ErrCallbackRefused: a callback URL is malformed or its target is in
	// a refused address range.
	ErrCallbackRefused = "CallbackRefused"
	// ErrBadPurge: a purge the edge client refuses to send, or of an
	// unknown type.
	ErrBadPurge = "BadPurge"
	// ErrPayloadMissing: a prewarm job's URL list is not in the store.
	ErrPayloadMissing = "PayloadMissing"
	// ErrBadChunk: a prewarm chunk lies outside the job's URL list.
	ErrBadChunk = "BadChunk"
	// ErrWorkerStopping: the worker stopped mid-chunk; the heartbeated
	// progress lets the next attempt resume (retried).
	ErrWorkerStopping = "WorkerStopping"
	// ErrJobDeadline: the prewarm job's deadline came before every pair of
	// a chunk had an outcome; those pairs have none (the job is TIMEOUT).
	ErrJobDeadline = "JobDeadline"
	// ErrInvalidRequest: a scheduled job's body no longer validates.
	ErrInvalidRequest = "InvalidRequest"
)

// unknownEdge is the final error for an edge id missing from the inventory.
func unknownEdge(edgeID string) error {
	return temporal.NewNonRetryableApplicationError("edge "+edgeID+" is not in the inventory", ErrUnknownEdge, nil)
}
