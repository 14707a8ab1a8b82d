package workflows

import (
	"fmt"
	"strings"

	"github.com/cdnflow/cdnflow/activities"
)

// Every name that ties the API (service), the worker and these workflows
// together is defined here, once: workflow ids, query and update
// names, memo keys and the error types workflows raise. Search attributes
// are in searchattrs.go. Activities are called by method reference
// (workflow.ExecuteActivity(ctx, a.PrewarmChunk, in) with a nil
// *activities.Prewarm a): their names are the method names, which
// worker.Register registers. Changing a string here breaks running
// workflows and the recorded histories in worker/testdata.

// Workflow ids. Each job kind has one id scheme; the API finds a job by it.

// PrewarmWorkflowID is the id of a prewarm job (PrewarmWorkflow); requestID
// is the UUID the Prewarm API answers.
func PrewarmWorkflowID(requestID string) string { return "prewarm-" + requestID }

// PurgeWorkflowID is the id of one purge seq of an appKey (PurgeWorkflow).
func PurgeWorkflowID(appKey string, seq int64) string {
	return fmt.Sprintf("purge-%s-%d", appKey, seq)
}

// EdgeCheckWorkflowID is the id of an edge check (EdgeCheckWorkflow).
func EdgeCheckWorkflowID(id string) string { return "edgecheck-" + id }

// DistributionWorkflowID is the id of the one entity workflow per
// distribution. Purges and the API find a distribution by it; the domain is
// lower-cased.
func DistributionWorkflowID(appKey, domain string) string {
	return "distribution/" + appKey + "/" + strings.ToLower(domain)
}

// EdgeSyncWorkflowID is the id of the one EdgeSyncWorkflow of a
// namespace: the loop that keeps every edge as desired.
const EdgeSyncWorkflowID = "edge-sync"

// FleetSettingsWorkflowID is the id of the one FleetSettingsWorkflow of a
// namespace: the record of the edge settings every worker must share.
const FleetSettingsWorkflowID = "cdnflow-fleet-settings"

// SequenceWorkflowID is the id of a counter's entity workflow
// (SequenceWorkflow), e.g. counter "purge".
func SequenceWorkflowID(counter string) string { return "sequence/" + counter }

// ScheduleIDPrefix starts the Temporal Schedule id of every cdnflow
// schedule; ScheduleID adds the API's schedule id to it.
const ScheduleIDPrefix = "cdnflow-"

// ScheduleID is the Temporal Schedule id of the API's schedule id.
func ScheduleID(id string) string { return ScheduleIDPrefix + id }

// ScheduledPrefix starts the workflow id of a schedule's runs (Temporal
// appends the fire time) and the KindAttr of their workflows
// ("scheduled-prewarm").
const ScheduledPrefix = "scheduled-"

// Queries.
const (
	// QueryPurgeStatus answers PurgeStatus.
	QueryPurgeStatus = "status"
	// QueryDistribution answers a distribution's distribution.State.
	QueryDistribution = "distribution"
	// QueryEdgeCheck answers the EdgeCheckResult so far.
	QueryEdgeCheck = "edgecheck"
	// QueryEdgeSync answers the latest sync report of every edge
	// (map edge id -> activities.EdgeSyncReport).
	QueryEdgeSync = "edges"
	// QuerySequenceLast answers the last number a counter handed out.
	QuerySequenceLast = "last"
	// QueryFleetSettings answers the FleetSettings of the fleet's record.
	QueryFleetSettings = "settings"
	// QueryVersions answers a distribution's kept versions
	// ([]distribution.Version, oldest first).
	QueryVersions = "versions"
	// QueryEdgeVersions answers a distribution's EdgeVersions.
	QueryEdgeVersions = "edge-versions"
)

// Updates.
const (
	// UpdateModify, UpdateSuspend, UpdateResume and UpdateDelete change a
	// distribution; each answers the distribution.State once applied. The
	// first three take a ChangeRequest, UpdateDelete nothing.
	UpdateModify  = "modify"
	UpdateSuspend = "suspend"
	UpdateResume  = "resume"
	UpdateDelete  = "delete"
	// UpdateRollback takes a RollbackRequest: a new version equal to an
	// earlier one, applied like any change.
	UpdateRollback = "rollback"
	// UpdateNextSeq hands out the next number of a SequenceWorkflow.
	UpdateNextSeq = "next"
	// UpdateReserveSeqs hands out n consecutive numbers and returns the
	// first: a purge split into n seqs takes them in one update, so it
	// either gets all of them or none.
	UpdateReserveSeqs = "reserve"
	// UpdateAdmitPurge takes an AdmitPurge: it applies a purge rate limit
	// and reserves the purge's seqs in one round trip, answering the first
	// seq, or rejecting the request (ErrPurgeRateLimited) without writing
	// anything to the counter's history.
	UpdateAdmitPurge = "admit-purge"
)

// Memo keys.
const (
	// MemoDistributionState is the memo key of the last status change's
	// state (a distribution.State).
	MemoDistributionState = "state"
	// MemoEdgeSite is the memo key of a distribution's last applied
	// distribution.SiteSpec: what the edge sync loop holds every edge to.
	MemoEdgeSite = "edgeSite"
	// MemoRollout is the memo key of a distribution's staged change in
	// flight (an activities.SiteRollout): its spec is desired on the edges
	// it names, MemoEdgeSite's on the others. Absent when none runs.
	MemoRollout = "rollout"
	// Memo keys of a purge workflow, set at start, read by the purge list:
	// NHN's purgeId (int64), distributionSeq (int64), path (the paths,
	// '\n'-joined) and purgeTime (epoch ms).
	MemoPurgeID              = "purgeId"
	MemoPurgeDistributionSeq = "distributionSeq"
	MemoPurgePath            = "path"
	MemoPurgeTime            = "purgeTime"
	// MemoRequestHash is the hex SHA-256 of a prewarm's canonical request,
	// set at start (service/prewarm.go: Idempotency-Key bound to the body).
	MemoRequestHash = "requestHash"
	// MemoFleetSettings is the FleetSettingsWorkflow's FleetSettings, set
	// at its start and read by describing it (no worker needed).
	MemoFleetSettings = "fleetSettings"
)

// Error types of rejected distribution updates; the API maps them to NHN
// codes.
const (
	ErrInvalidState      = "InvalidState"
	ErrOperationInFlight = "OperationInProgress"
	// ErrVersionMismatch: the change's IfMatch is not the current version.
	ErrVersionMismatch = "VersionMismatch"
	// ErrUnknownVersion: a rollback to a version that is not kept.
	ErrUnknownVersion = "UnknownVersion"
)

// distributionActivities is the receiver of the activities the
// distribution workflow calls by method reference: nil, as
// only the methods' names and signatures are used in a workflow.
var distributionActivities *activities.Distribution
