package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/workflows"
)

// ErrVersionMismatch means a change was made against a version that is no
// longer the current one (If-Match); the API answers 412.
var ErrVersionMismatch = errors.New("version mismatch")

// VersionSummary is a version as the list shows it: the version without
// its config, and the config fields (JSON Pointers) it changed from the
// version before it (empty for the oldest kept one).
type VersionSummary struct {
	N          int      `json:"n"`
	At         int64    `json:"at"`
	Action     string   `json:"action"`
	KeyID      string   `json:"keyId,omitempty"`
	RequestID  string   `json:"requestId,omitempty"`
	Suspended  bool     `json:"suspended"`
	RollbackOf int      `json:"rollbackOf,omitempty"`
	Changed    []string `json:"changed"`
}

// DistributionV1 is a distribution as /v1 shows it: the NHN view and its
// current version (the ETag).
type DistributionV1 struct {
	DistributionView
	Version int `json:"version"`
	// Edges is the site version (the generation of the site table entry,
	// one newer with every apply and revert) each serving edge holds, and
	// the rollout wave in flight (workflows.QueryEdgeVersions); nil when
	// the workflow could not answer.
	Edges *workflows.EdgeVersions `json:"edges,omitempty"`
}

// Plan is what a change does or would do (DryRun): the version it starts
// from, the version it makes (the next one, for a dry run), the config
// diff between the two, and whether it ends suspended.
type Plan struct {
	DryRun    bool     `json:"dryRun"`
	From      int      `json:"from"`
	Version   int      `json:"version"`
	Suspended bool     `json:"suspended"`
	Diff      []Change `json:"diff"`
}

// RollbackArgs asks for a rollback to Version; Immediate skips the
// rollout's waves; IfMatch (0: any) is the version the caller read;
// DryRun answers the plan without changing anything.
type RollbackArgs struct {
	Version   int
	Immediate bool
	IfMatch   int
	DryRun    bool
}

// DistributionVersions answers the kept versions of a live distribution,
// oldest first (at most workflows.MaxVersions).
func (s *Service) DistributionVersions(ctx context.Context, appKey, domain string) ([]distribution.Version, error) {
	if _, err := s.DistributionByDomain(ctx, appKey, domain); err != nil {
		return nil, err
	}
	return s.versions(ctx, appKey, domain)
}

func (s *Service) versions(ctx context.Context, appKey, domain string) ([]distribution.Version, error) {
	var out []distribution.Version
	v, err := s.query(ctx, workflows.DistributionWorkflowID(appKey, domain), workflows.QueryVersions)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrUnknownDomain
		}
		return nil, fmt.Errorf("query versions of %s: %w", domain, err)
	}
	if err := v.Get(&out); err != nil {
		return nil, fmt.Errorf("decode versions of %s: %w", domain, err)
	}
	return out, nil
}

// ListVersions answers the kept versions as summaries, newest first.
func (s *Service) ListVersions(ctx context.Context, appKey, domain string) ([]VersionSummary, error) {
	list, err := s.DistributionVersions(ctx, appKey, domain)
	if err != nil {
		return nil, err
	}
	out := make([]VersionSummary, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		v := list[i]
		sum := VersionSummary{N: v.N, At: v.At, Action: v.Action, KeyID: v.KeyID, RequestID: v.RequestID,
			Suspended: v.Suspended, RollbackOf: v.RollbackOf, Changed: []string{}}
		if i > 0 {
			for _, c := range DiffConfigs(list[i-1].Config, v.Config) {
				sum.Changed = append(sum.Changed, c.Path)
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

// DistributionVersion answers version n; ErrNotFound when it is not kept.
func (s *Service) DistributionVersion(ctx context.Context, appKey, domain string, n int) (distribution.Version, error) {
	list, err := s.DistributionVersions(ctx, appKey, domain)
	if err != nil {
		return distribution.Version{}, err
	}
	return findVersion(list, n)
}

func findVersion(list []distribution.Version, n int) (distribution.Version, error) {
	for _, v := range list {
		if v.N == n {
			return v, nil
		}
	}
	kept := "none"
	if len(list) > 0 {
		kept = fmt.Sprintf("%d to %d", list[0].N, list[len(list)-1].N)
	}
	return distribution.Version{}, fmt.Errorf("version %d is not kept (kept: %s): %w", n, kept, ErrNotFound)
}

// VersionDiff is the config diff between two versions.
type VersionDiff struct {
	From int      `json:"from"`
	To   int      `json:"to"`
	Diff []Change `json:"diff"`
}

// DiffVersions answers the config changes from version from to version to
// (0: the current one); ErrNotFound when one is not kept.
func (s *Service) DiffVersions(ctx context.Context, appKey, domain string, from, to int) (VersionDiff, error) {
	list, err := s.DistributionVersions(ctx, appKey, domain)
	if err != nil {
		return VersionDiff{}, err
	}
	if to == 0 && len(list) > 0 {
		to = list[len(list)-1].N
	}
	a, err := findVersion(list, from)
	if err != nil {
		return VersionDiff{}, err
	}
	b, err := findVersion(list, to)
	if err != nil {
		return VersionDiff{}, err
	}
	return VersionDiff{From: from, To: to, Diff: DiffConfigs(a.Config, b.Config)}, nil
}

// DistributionV1 answers a live distribution with its current version.
func (s *Service) DistributionV1(ctx context.Context, appKey, domain string) (DistributionV1, error) {
	st, err := s.DistributionByDomain(ctx, appKey, domain)
	if err != nil {
		return DistributionV1{}, err
	}
	out := DistributionV1{DistributionView: ViewOf(st), Version: st.Version}
	if v, err := s.query(ctx, workflows.DistributionWorkflowID(appKey, domain), workflows.QueryEdgeVersions); err == nil {
		var ev workflows.EdgeVersions
		if v.Get(&ev) == nil {
			out.Edges = &ev
		}
	}
	return out, nil
}

// PatchDistribution is /v1's PATCH: the NHN PATCH body (its domain, when
// given, must be domain), refused with ErrVersionMismatch unless ifMatch
// (0: any) is the current version. A dry run answers the plan and changes
// nothing; otherwise the plan of the accepted change (edges follow).
func (s *Service) PatchDistribution(ctx context.Context, appKey, domain string, b DistributionBody, ifMatch int, dryRun bool, caller Caller) (Plan, error) {
	if b.Domain != nil && *b.Domain != domain {
		return Plan{}, invalid("domain %q in the body is not the domain of the path (%s)", *b.Domain, domain)
	}
	b.Domain = &domain
	st, cfg, err := s.changedConfig(ctx, appKey, b, true)
	if err != nil {
		return Plan{}, err
	}
	if err := checkIfMatch(st, ifMatch); err != nil {
		return Plan{}, err
	}
	suspended := st.Status == distribution.StatusSuspend
	if dryRun {
		if err := s.checkHosts(ctx, appKey, st.Domain, cfg); err != nil {
			return Plan{}, err
		}
		return Plan{DryRun: true, From: st.Version, Version: st.Version + 1, Suspended: suspended, Diff: DiffConfigs(st.Config, cfg)}, nil
	}
	if err := s.claimHosts(ctx, appKey, st.Domain, cfg); err != nil {
		return Plan{}, err
	}
	req := workflows.ChangeRequest{Config: &cfg, KeyID: caller.KeyID, RequestID: caller.RequestID, IfMatch: ifMatch}
	if err := s.update(ctx, appKey, st.Domain, workflows.UpdateModify, req); err != nil {
		return Plan{}, err
	}
	return s.planOf(ctx, appKey, st, caller)
}

// RollbackDistribution makes a new version equal to a.Version and applies
// it (workflows.UpdateRollback), or with a.DryRun answers its plan.
func (s *Service) RollbackDistribution(ctx context.Context, appKey, domain string, a RollbackArgs, caller Caller) (Plan, error) {
	if a.Version < 1 {
		return Plan{}, invalid("version must be a version number from 1")
	}
	st, err := s.DistributionByDomain(ctx, appKey, domain)
	if err != nil {
		return Plan{}, err
	}
	if err := checkIfMatch(st, a.IfMatch); err != nil {
		return Plan{}, err
	}
	list, err := s.versions(ctx, appKey, st.Domain)
	if err != nil {
		return Plan{}, err
	}
	to, err := findVersion(list, a.Version)
	if err != nil {
		return Plan{}, invalid("cannot roll back: %s", err.Error())
	}
	if a.DryRun {
		if err := s.checkHosts(ctx, appKey, st.Domain, to.Config); err != nil {
			return Plan{}, err
		}
		return Plan{DryRun: true, From: st.Version, Version: st.Version + 1, Suspended: to.Suspended, Diff: DiffConfigs(st.Config, to.Config)}, nil
	}
	if err := s.claimHosts(ctx, appKey, st.Domain, to.Config); err != nil {
		return Plan{}, err
	}
	req := workflows.RollbackRequest{Version: a.Version, Immediate: a.Immediate, KeyID: caller.KeyID, RequestID: caller.RequestID, IfMatch: a.IfMatch}
	if err := s.update(ctx, appKey, st.Domain, workflows.UpdateRollback, req); err != nil {
		return Plan{}, err
	}
	return s.planOf(ctx, appKey, st, caller)
}

func checkIfMatch(st distribution.State, ifMatch int) error {
	if ifMatch != 0 && ifMatch != st.Version {
		return fmt.Errorf("%w: distribution %s is at version %d, not %d", ErrVersionMismatch, st.Domain, st.Version, ifMatch)
	}
	return nil
}

// planOf answers the plan of the change caller just made: its version is
// the newest with caller's request id (the current one when the request
// has none), diffed against before's configuration, the one the edges
// serve.
func (s *Service) planOf(ctx context.Context, appKey string, before distribution.State, caller Caller) (Plan, error) {
	list, err := s.versions(ctx, appKey, before.Domain)
	if err != nil {
		return Plan{}, err
	}
	if len(list) == 0 {
		return Plan{}, fmt.Errorf("distribution %s answered no versions", before.Domain)
	}
	made := list[len(list)-1]
	for i := len(list) - 1; i >= 0 && caller.RequestID != ""; i-- {
		if list[i].RequestID == caller.RequestID {
			made = list[i]
			break
		}
	}
	// The diff is against the configuration the edges serve (before's),
	// as a dry run's is: after a change that ended in ERROR that is the
	// last good one, not the failed version before this one.
	p := Plan{From: made.N - 1, Version: made.N, Suspended: made.Suspended}
	p.Diff = DiffConfigs(before.Config, made.Config)
	return p, nil
}
