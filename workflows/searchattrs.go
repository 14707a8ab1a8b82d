// Package workflows holds cdnflow's durable jobs. Everything here must stay
// deterministic: no clocks, randomness, goroutines, I/O or map-order
// dependence outside the workflow.* APIs.
package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is the default task queue; config may override it.
const TaskQueue = "cdnflow"

// Typed search attributes. They let the API list and filter jobs from
// Temporal visibility instead of a second database, and they show as
// columns/filters in the Web UI. SQL visibility stores allow 10 Keyword
// attributes per namespace, so keep this list short.
var (
	// KindAttr is the job kind: prewarm, purge, distribution, edgecheck.
	KindAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowKind")
	// AppKeyAttr scopes NHN-style jobs to their appKey.
	AppKeyAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowAppKey")
	// DomainAttr is the distribution domain a job acts on.
	DomainAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowDomain")
	// PurgeTypeAttr is ITEM, WILDCARD, ALL, TAG.
	PurgeTypeAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowPurgeType")
	// StatusAttr is the job's coarse status (prewarm status, CDN status code).
	StatusAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowStatus")
	// RequestKeyAttr holds the client's Idempotency-Key, if any.
	RequestKeyAttr = temporal.NewSearchAttributeKeyKeyword("CdnflowRequestKey")
	// SeqAttr is the NHN purgeSeq / distribution seq.
	SeqAttr = temporal.NewSearchAttributeKeyInt64("CdnflowSeq")
	// CreatedAttr is when the API accepted the job (purgeTime, createTime).
	CreatedAttr = temporal.NewSearchAttributeKeyTime("CdnflowCreated")
)

// Job kinds stored in KindAttr.
const (
	KindPrewarm      = "prewarm"
	KindPurge        = "purge"
	KindDistribution = "distribution"
	KindEdgeCheck    = "edgecheck"
)

// SearchAttributes is what the namespace must have registered.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	out := map[string]enumspb.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKeyKeyword{KindAttr, AppKeyAttr, DomainAttr, PurgeTypeAttr, StatusAttr, RequestKeyAttr} {
		out[k.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	out[SeqAttr.GetName()] = enumspb.INDEXED_VALUE_TYPE_INT
	out[CreatedAttr.GetName()] = enumspb.INDEXED_VALUE_TYPE_DATETIME
	return out
}

// countFinished reports a job's end as cdnflow_jobs_finished_total{type,
// status}; the SDK's workflow metrics handler does not emit during replay.
func countFinished(ctx workflow.Context, kind, status string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"type": kind, "status": status}).Counter("cdnflow_jobs_finished_total").Inc(1)
}
