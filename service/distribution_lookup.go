package service

import (
	"context"
	"fmt"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/workflows"
)

// ErrUnknownDomain means the appKey has no live distribution of that domain.
var ErrUnknownDomain = fmt.Errorf("unknown domain: %w", ErrNotFound)

// DistributionByDomain reads a distribution's state from its entity
// workflow. A closed (deleted) distribution counts as unknown. The appKey is
// part of the workflow id, so one appKey can never see another's domains.
func (s *Service) DistributionByDomain(ctx context.Context, appKey, domain string) (distribution.State, error) {
	var st distribution.State
	v, err := s.query(ctx, workflows.DistributionWorkflowID(appKey, domain), workflows.QueryDistribution)
	if err != nil {
		if isNotFound(err) {
			return st, ErrUnknownDomain
		}
		return st, fmt.Errorf("query distribution %s: %w", domain, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode distribution %s: %w", domain, err)
	}
	if st.Status == distribution.StatusClose {
		return st, ErrUnknownDomain
	}
	return st, nil
}
