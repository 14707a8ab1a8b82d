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

// StartPrewarm validates req, stores its URL list and starts the job. With
// an idempotency key, a repeat returns the first request's id and starts
// nothing.
func (s *Service) StartPrewarm(ctx context.Context, req PrewarmRequest, idempotencyKey string) (string, error) {
	v, target, err := s.checkPrewarm(ctx, req)
	if err != nil {
		return "", err
	}
	if err := authorizePrewarm(ctx, target.AppKey, req.NeedInvalidate); err != nil {
		return "", err
	}
	var requestID string
	if idempotencyKey != "" {
		if len(idempotencyKey) > 255 {
			return "", invalid("Idempotency-Key is longer than 255 characters")
		}
		sum := sha256.Sum256([]byte("prewarm\x00" + idempotencyKey))
		h := hex.EncodeToString(sum[:16])
		requestID = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		if _, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.PrewarmWorkflowID(requestID), ""); err == nil {
			return requestID, nil
		} else if !isNotFound(err) {
			return "", fmt.Errorf("look up idempotent prewarm: %w", err)
		}
	} else {
		requestID = newUUID()
	}
	if err := s.admitJob(ctx); err != nil {
		return "", err
	}
	key, err := payload.PutPrewarmURLs(ctx, s.Payloads(), requestID, v.urls)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(v.edges))
	for i, e := range v.edges {
		ids[i] = e.ID
	}
	job := workflows.PrewarmJob{
		JobID: workflows.PrewarmWorkflowID(requestID), Domain: v.domain, Scheme: v.scheme, URLsKey: key,
		URLCount: len(v.urls), EdgeIDs: ids, Header: v.header, NeedInvalidate: req.NeedInvalidate,
		Timeout: v.timeout,
	}
	sa := []temporal.SearchAttributeUpdate{
		workflows.KindAttr.ValueSet(workflows.KindPrewarm),
		workflows.DomainAttr.ValueSet(v.domain),
		workflows.StatusAttr.ValueSet(workflows.PrewarmInProgress),
		workflows.CreatedAttr.ValueSet(time.Now().UTC()),
	}
	if idempotencyKey != "" {
		sa = append(sa, workflows.RequestKeyAttr.ValueSet(idempotencyKey))
	}
	if target.AppKey != "" {
		sa = append(sa, workflows.AppKeyAttr.ValueSet(target.AppKey))
	}
	opts := client.StartWorkflowOptions{
		ID:                       job.JobID,
		TaskQueue:                s.config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(sa...),
		Memo:                     workflows.PrewarmJobMemo(job),
	}
	metrics.JobsStarted.WithLabelValues(workflows.KindPrewarm).Inc()
	if _, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.PrewarmWorkflow, job); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return requestID, nil // an idempotent repeat of a finished job
		}
		return "", fmt.Errorf("start prewarm: %w", err)
	}
	return requestID, nil
}
