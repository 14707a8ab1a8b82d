package activities

import (
	"context"
	"time"
)

// Knobs are the worker's settings that a workflow needs for the options of
// the activities it schedules: options are given by the workflow, not by
// the worker that runs the activity, so a workflow asks its worker for
// them (WorkerKnobs). Zero values mean the workflows' defaults.
type Knobs struct {
	// HeartbeatTimeout of the long activities (PrewarmChunk, PurgeEdges,
	// ApplySite): how soon the work of a lost worker is retried by another.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	// EdgeApplyAttempts bounds the tries of one distribution change on
	// the edges (ApplySite) before the change ends in ERROR. Time while
	// no worker runs does not count: an outage never turns a change into
	// ERROR.
	EdgeApplyAttempts int `json:"edgeApplyAttempts,omitempty"`
	// EdgeErrorRetry is the first wait before a distribution change in
	// ERROR is tried again (doubling, up to the workflow's cap).
	EdgeErrorRetry time.Duration `json:"edgeErrorRetry,omitempty"`
}

// WorkerKnobs answers this worker's Knobs. Workflows run it as a local
// activity, once per run before they need the values, so history records
// them: a replay uses the values the run started with, whatever the
// replaying worker's settings, and a worker's new settings reach the runs
// started (or continued as new) after it, without the API knowing them.
// A nil receiver answers zero Knobs (defaults).
func (k *Knobs) WorkerKnobs(context.Context) (Knobs, error) {
	if k == nil {
		return Knobs{}, nil
	}
	return *k, nil
}
