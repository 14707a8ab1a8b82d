package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/workflows"
)

// MaxPrewarmURLs is the largest url_list one request may carry.
const MaxPrewarmURLs = 100_000

// MaxPrewarmURLLen bounds one url_list entry, in bytes (browsers and
// Varnish's default http_req_size, 32 KiB for the whole request head,
// leave well under it for the URL).
const MaxPrewarmURLLen = 8192

// MaxPrewarmPairs bounds one request's fan-out: URLs × edges, each one GET
// through an edge (100,000 URLs on 20 edges).
const MaxPrewarmPairs = 2_000_000

// MaxPrewarmTimeout bounds the `timeout` field.
const MaxPrewarmTimeout = 24 * time.Hour

// PrewarmRequest is the Prewarm API body (CloudFront Extensions), plus the
// optional fields timeout, header and need_invalidate.
type PrewarmRequest struct {
	URLList    []string        `json:"url_list"`
	CFDomain   string          `json:"cf_domain"`
	Protocol   string          `json:"protocol"`
	TargetType string          `json:"target_type"`
	Region     json.RawMessage `json:"region"`
	// Timeout is seconds (a number) or a Go duration string ("15m").
	Timeout        json.RawMessage `json:"timeout,omitempty"`
	Header         json.RawMessage `json:"header,omitempty"`
	NeedInvalidate bool            `json:"need_invalidate,omitempty"`
}

// ErrIdempotencyConflict refuses an Idempotency-Key its caller already
// used with another request body (422 on the Prewarm API).
var ErrIdempotencyConflict = errors.New("Idempotency-Key was used with another request body")

// StartPrewarm validates req, stores its URL list and starts the job.
//
// Tenant (limits, CdnflowAppKey): the appKey owning cf_domain's
// distribution, else "key:" + the caller's key id (CallerFrom).
//
// With an idempotency key: the key is scoped to the caller (key id) and
// tenant, and bound to the request (the hash of its canonical form,
// prewarmRequestHash): the same key and request answer the first job's
// requestID and start nothing; the same key with another request is
// ErrIdempotencyConflict. The requestID is derived from the scoped key and
// the workflow id refuses a second start, so two API processes racing on
// one key start exactly one run.
func (s *Service) StartPrewarm(ctx context.Context, req PrewarmRequest, idempotencyKey string) (string, error) {
	v, target, err := s.checkPrewarm(ctx, req)
	if err != nil {
		return "", err
	}
	if err := authorizePrewarm(ctx, target.AppKey, req.NeedInvalidate); err != nil {
		return "", err
	}
	tenant := target.AppKey
	if tenant == "" {
		tenant = "key:" + CallerFrom(ctx).KeyID
	}
	// The hash (of up to MaxPrewarmURLs URLs) is computed before admission
	// only when an Idempotency-Key needs it to answer a repeat; a refusal
	// costs no more than the checks.
	var hash string
	requestID := newUUID()
	if idempotencyKey != "" {
		if len(idempotencyKey) > 255 {
			return "", invalid("Idempotency-Key is longer than 255 characters")
		}
		hash = prewarmRequestHash(v, req.NeedInvalidate)
		requestID = PrewarmRequestID(CallerFrom(ctx).KeyID, tenant, idempotencyKey)
		if err := s.sameRequest(ctx, requestID, hash); err == nil || !isNotFound(err) {
			return requestID, err
		}
	}
	if err := s.admitJob(ctx, tenant, 1); err != nil {
		return "", err
	}
	if hash == "" {
		hash = prewarmRequestHash(v, req.NeedInvalidate)
	}
	release, err := s.admittedSlot(ctx, tenant, 1)
	if err != nil {
		return "", err
	}
	defer release()
	key, err := payload.PutPrewarmURLs(ctx, s.Payloads(), requestID, v.urls)
	if err != nil {
		return "", err
	}
	opts, job := s.prewarmStart(v, target, tenant, requestID, key, hash, idempotencyKey, req.NeedInvalidate)
	metrics.JobsStarted.WithLabelValues(workflows.KindPrewarm).Inc()
	if _, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.PrewarmWorkflow, job); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) && idempotencyKey != "" {
			// Another request with this key (on this or another API
			// process) started it first.
			return requestID, s.sameRequest(ctx, requestID, hash)
		}
		return "", fmt.Errorf("start prewarm: %w", err)
	}
	return requestID, nil
}

// prewarmStart is the start options and input of a checked prewarm.
func (s *Service) prewarmStart(v validPrewarm, target prewarmTarget, tenant, requestID, urlsKey, hash, idempotencyKey string, needInvalidate bool) (client.StartWorkflowOptions, workflows.PrewarmJob) {
	ids, shields := prewarmEdgeIDs(s.inventory, v.edges) // tiers: shields first (prewarm_tiers.go)
	job := workflows.PrewarmJob{
		JobID: workflows.PrewarmWorkflowID(requestID), Domain: v.domain, Scheme: v.scheme, URLsKey: urlsKey,
		URLCount: len(v.urls), EdgeIDs: ids, Header: v.header, NeedInvalidate: needInvalidate,
		Timeout: v.timeout, Shields: shields,
	}
	sa := []temporal.SearchAttributeUpdate{
		workflows.KindAttr.ValueSet(workflows.KindPrewarm),
		workflows.DomainAttr.ValueSet(v.domain),
		workflows.StatusAttr.ValueSet(workflows.PrewarmInProgress),
		workflows.CreatedAttr.ValueSet(time.Now().UTC()),
		// The tenant: an appKey, or "key:<key id>" (never an appKey: an
		// appKey has no ':').
		workflows.AppKeyAttr.ValueSet(tenant),
	}
	if idempotencyKey != "" {
		sa = append(sa, workflows.RequestKeyAttr.ValueSet(idempotencyKey))
	}
	memo := workflows.PrewarmJobMemo(job)
	memo[workflows.MemoRequestHash] = hash
	return client.StartWorkflowOptions{
		ID:        job.JobID,
		TaskQueue: s.config.TaskQueue,
		// A second start of one requestID (an idempotent repeat, or a
		// race of two APIs) fails and is answered by sameRequest.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(sa...),
		Memo:                                     memo,
		// Default priority (behind purges and the counters); the tenant
		// shares the task queue fairly where the server enables fairness.
		Priority: temporal.Priority{FairnessKey: tenant},
	}, job
}

// PrewarmRequestID is the requestID of an Idempotency-Key: a UUID-shaped
// hash of the caller's key id, the tenant and the key, so two callers'
// (or tenants') keys never meet.
func PrewarmRequestID(keyID, tenant, idempotencyKey string) string {
	return idempotentID("prewarm", keyID, tenant, idempotencyKey)
}

// prewarmRequestHash is the hex SHA-256 of a checked request's canonical
// form: URLs (deduplicated, as given), domain, scheme, edge ids, timeout,
// header (names canonical, sorted by encoding/json) and need_invalidate.
// Two bodies that differ only in spelling the job does not see (field
// order, white space, target given as region or edge list) hash alike.
func prewarmRequestHash(v validPrewarm, needInvalidate bool) string {
	ids := make([]string, len(v.edges))
	for i, e := range v.edges {
		ids[i] = e.ID
	}
	canon, _ := json.Marshal(struct {
		URLs           []string          `json:"urls"`
		Domain         string            `json:"domain"`
		Scheme         string            `json:"scheme"`
		Edges          []string          `json:"edges"`
		Timeout        time.Duration     `json:"timeout"`
		Header         map[string]string `json:"header"`
		NeedInvalidate bool              `json:"needInvalidate"`
	}{v.urls, v.domain, v.scheme, ids, v.timeout, v.header, needInvalidate})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// sameRequest is sameJob for the prewarm requestID.
func (s *Service) sameRequest(ctx context.Context, requestID, hash string) error {
	return s.sameJob(ctx, "prewarm", workflows.PrewarmWorkflowID(requestID), workflows.MemoRequestHash, hash)
}
