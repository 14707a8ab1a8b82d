package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

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
// one per every across every API process, and reserves its n seqs — one
// Update (workflows.UpdateAdmitPurge) of the purge counter, started with
// it when new: one round trip for the rate token and the seqs together.
// The rule is "no two admitted requests of one scope
// closer than every", measured by the Temporal server (the counter's
// workflow clock), not by the API processes' clocks; a refused request
// takes nothing, so polling does not extend the wait. every <= 0 admits
// everything. It answers the first of the n seqs.
//
// Errors: ErrRateLimited (wrapped, naming the scope and interval) for a
// refusal; other errors are Temporal's, wrapped.
func (s *Service) takePurgeToken(ctx context.Context, appKey, scope string, every time.Duration, n int) (int64, error) {
	first, err := s.updateCounter(ctx, "purge", workflows.UpdateAdmitPurge,
		workflows.AdmitPurge{Key: appKey + "/" + scope, Scope: scope, Every: every, N: n})
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrPurgeRateLimited {
		return 0, fmt.Errorf("%w: %s", ErrRateLimited, appErr.Message())
	}
	if err != nil {
		return 0, fmt.Errorf("admit purge (%s) and reserve %d seqs: %w", scope, n, err)
	}
	return first, nil
}
