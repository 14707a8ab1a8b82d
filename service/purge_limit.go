package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

// purgeLimit names the NHN rate limit a purge request falls under and its
// interval: ITEM, WILDCARD and TAG purges share one per appKey
// (--purge-item-interval, 1 s), ALL purges have one per appKey and domain
// (--purge-all-interval, 5 min). The NHN v1.5 guide (/work/shared/specs/
// nhn-cdn-api-v1.5.md, "キャッシュ再配布(Purge)", notes under the response)
// says the purge API has a usage limit policy and refers to the console
// guide's "キャッシュ再配布使用量制限"; these intervals are cdnflow's reading of
// it (docs/nhn.md).
func (s *Service) purgeLimit(purgeType, domain string) (scope string, every time.Duration) {
	if purgeType == activities.PurgeAll {
		return "all/" + domain, s.config.PurgeAllInterval
	}
	return "items", s.config.PurgeItemInterval
}

// takePurgeToken admits one purge request of appKey under scope, at most
// one per every, across every API process: it starts the scope's rate
// token (workflows.PurgeLimitWorkflow), which stays open for every. A
// token still open refuses the request with ErrRateLimited. The rule is
// "no two admitted requests of one scope closer than every", measured by
// the Temporal server, not by the API processes' clocks. The server times
// the token out at every, before its first workflow task is due, so no
// worker ever runs it and a busy or absent worker cannot hold the limit
// longer. every
// <= 0 admits everything. Other errors are Temporal's, wrapped.
func (s *Service) takePurgeToken(ctx context.Context, appKey, scope string, every time.Duration) error {
	if every <= 0 {
		return nil
	}
	// The server closes the token (timed out) at exactly every, before its
	// delayed first workflow task is due, so a token costs no worker task
	// at all: before (start delay every, run timeout every) each admitted
	// purge queued one workflow task after every, ~1 per second per appKey
	// under load (issue 19), and a token stayed open — its appKey refused
	// — until a busy worker ran it.
	opts := client.StartWorkflowOptions{
		ID:                                       workflows.PurgeLimitWorkflowID(appKey, scope),
		TaskQueue:                                s.config.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StartDelay:                               2 * every,
		WorkflowExecutionTimeout:                 every,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    newSearchAttributes(workflows.KindAttr.ValueSet(workflows.KindPurgeLimit), workflows.AppKeyAttr.ValueSet(appKey)),
	}
	_, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.PurgeLimitWorkflow)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("%w: purges of this appKey (%s) are limited to one per %s", ErrRateLimited, scope, every)
	}
	if err != nil {
		return fmt.Errorf("purge rate token %s: %w", scope, err)
	}
	return nil
}
