package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"go.temporal.io/sdk/converter"
)

// idempotentID is the job id an Idempotency-Key stands for: a UUID-shaped
// (8-4-4-4-12 hex) SHA-256 of kind and the key's scope (caller key id,
// tenant or appKey, the key itself), so keys of two callers, tenants or
// job kinds never meet.
func idempotentID(kind string, scope ...string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + strings.Join(scope, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// sameJob answers nil when workflowID exists and its memo holds hash under
// memoKey (or no hash: a job started before requests were hashed),
// ErrIdempotencyConflict when it holds another, and the lookup's error (a
// *serviceerror.NotFound when there is no such job). what names the job
// in errors ("prewarm", "release").
func (s *Service) sameJob(ctx context.Context, what, workflowID, memoKey, hash string) error {
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		if isNotFound(err) {
			return err
		}
		return fmt.Errorf("look up idempotent %s %s: %w", what, workflowID, err)
	}
	p := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[memoKey]
	if p == nil {
		return nil
	}
	var was string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &was); err != nil {
		return fmt.Errorf("read the request hash of %s %s: %w", what, workflowID, err)
	}
	if was != hash {
		return fmt.Errorf("%w (the first request with this key is %s)", ErrIdempotencyConflict, workflowID)
	}
	return nil
}
