package service

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/workflows"
)

// The per-host lookup behind prewarm resolution (prewarm_target.go): what
// one host costs does not depend on how many distributions run.
//
//   - An alias: one describe of its host claim (workflows.HostWorkflowID,
//     its MemoHostOwner; a query of a claim from before that memo), then
//     one describe of the holder (its published state memo; a query while
//     it has published none). No worker is needed once both published.
//   - A generated domain (under --cdn-domain, never claimed, see
//     docs/nhn.md#host-ownership), or a host whose claim does not answer a
//     distribution serving it: one visibility list filtered on that domain.
//
// A distribution found counts only when it runs, is not CLOSE and its
// state lists the host as applied (distribution.State.Hosts): a claim
// held by a distribution in ERROR or still OPENING that never applied the
// host is no distribution serving it, as the edges see it.

// hostsTTL serves one lookup of a host to every prewarm of that window: a
// burst of prewarms of one host costs one lookup.
const hostsTTL = 500 * time.Millisecond

// hostsRefreshAhead starts the next lookup of a host this long before its
// answer's hostsTTL ends, while prewarms of that host (refusals above
// all) are still answered from it: under load they seldom wait on a
// lookup, and no answer is served past hostsTTL.
const hostsRefreshAhead = 300 * time.Millisecond

func newHostsCache() *readCache[[]prewarmSite] {
	c := newReadCache[[]prewarmSite](maxCachedHosts)
	c.refreshAhead = hostsRefreshAhead
	return c
}

// maxCachedHosts bounds the hosts whose lookup is kept (readCache starts
// over past it).
const maxCachedHosts = 4096

// maxDomainMatches bounds the distributions one domain lookup reads: a
// generated domain is one distribution's, two only when two appKeys drew
// the same one (1 in 2.8 × 10¹²).
const maxDomainMatches = 8

// prewarmLookup is the siteSource of one resolution: each host is read
// once, through the shared cache (reads.hosts) unless fresh.
type prewarmLookup struct {
	ctx context.Context
	s   *Service
	// fresh drops the cached answer of each host before reading it.
	fresh bool
	// cached says some answer may be older than this resolution.
	cached bool
	seen   map[string][]prewarmSite
}

func (l *prewarmLookup) sites(host string) ([]prewarmSite, error) {
	if got, ok := l.seen[host]; ok {
		return got, nil
	}
	if l.fresh {
		l.s.reads.hosts.forget(host)
	}
	var loaded atomic.Bool
	sites, waited, err := l.s.reads.hosts.getWaited(l.ctx, host, func(ctx context.Context) ([]prewarmSite, time.Duration, error) {
		loaded.Store(true)
		sites, err := l.s.hostSites(ctx, host)
		return sites, hostsTTL, err
	})
	if err != nil {
		return nil, err
	}
	// Fresh only when this lookup's own load answered: a kept answer (one
	// a refresh-ahead load is replacing included) or another's load may
	// be older than this resolution.
	if !(waited && loaded.Load()) && !l.fresh {
		l.cached = true
	}
	if l.seen == nil {
		l.seen = map[string][]prewarmSite{}
	}
	l.seen[host] = sites
	return sites, nil
}

// hostSites answers the live distributions that list host (lower-case) as
// applied: the holder of its claim, else the distributions whose domain
// it is. Errors are Temporal's, with the host.
func (s *Service) hostSites(ctx context.Context, host string) ([]prewarmSite, error) {
	if !s.generatedDomain(host) {
		owner, err := s.hostClaim(ctx, host)
		if err != nil {
			return nil, err
		}
		if owner != (workflows.HostOwner{}) {
			site, ok, err := s.distributionSite(ctx, owner.WorkflowID())
			if err != nil {
				return nil, fmt.Errorf("prewarm target %s: %w", host, err)
			}
			if ok && site.serves(host) {
				return []prewarmSite{site}, nil
			}
		}
	}
	return s.domainSites(ctx, host)
}

// generatedDomain says host is under --cdn-domain: a distribution's own
// domain, which has no claim (aliases there are refused).
func (s *Service) generatedDomain(host string) bool {
	base := strings.ToLower(strings.TrimSuffix(s.config.CDNBaseDomain, "."))
	return base != "" && strings.HasSuffix(host, "."+base)
}

// hostClaim answers the holder of host's claim (zero: no claim running,
// or free): one describe of the claim (its MemoHostOwner, no worker
// needed); a claim from before that memo is queried instead, rejected by
// the server without a replay when it has ended.
func (s *Service) hostClaim(ctx context.Context, host string) (workflows.HostOwner, error) {
	var owner workflows.HostOwner
	id := workflows.HostWorkflowID(host)
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return owner, nil
	}
	if err != nil {
		return owner, fmt.Errorf("read the claim on host %s: %w", host, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return owner, nil
	}
	if p, ok := info.GetMemo().GetFields()[workflows.MemoHostOwner]; ok && converter.GetDefaultDataConverter().FromPayload(p, &owner) == nil {
		return owner, nil
	}
	v, err := s.queryOpen(ctx, id, workflows.QueryHostOwner)
	if isNotFound(err) || (err == nil && v == nil) {
		return owner, nil
	}
	if err != nil {
		return owner, fmt.Errorf("read the claim on host %s: %w", host, err)
	}
	if err := v.Get(&owner); err != nil {
		return owner, fmt.Errorf("decode the claim on host %s: %w", host, err)
	}
	return owner, nil
}

// distributionSite reads the distribution of workflow id wfID: the state
// it published at its last status change (MemoDistributionState, from a
// describe: no worker needed), or its query while it has published none.
// ok is false when it does not run, is CLOSE or has no domain.
func (s *Service) distributionSite(ctx context.Context, wfID string) (prewarmSite, bool, error) {
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, wfID, "")
	if isNotFound(err) {
		return prewarmSite{}, false, nil
	}
	if err != nil {
		return prewarmSite{}, false, fmt.Errorf("describe %s: %w", wfID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return prewarmSite{}, false, nil
	}
	var st distribution.State
	p, published := info.GetMemo().GetFields()[workflows.MemoDistributionState]
	if !published || converter.GetDefaultDataConverter().FromPayload(p, &st) != nil {
		if st, err = s.distributionState(ctx, wfID); isNotFound(err) {
			return prewarmSite{}, false, nil
		} else if err != nil {
			return prewarmSite{}, false, fmt.Errorf("query %s: %w", wfID, err)
		}
	}
	site, ok := siteOf(st)
	return site, ok, nil
}

// domainSites answers the running distributions whose domain is domain
// and that list it as served: one visibility list filtered on the domain
// (CdnflowDomain), a query for a match that has not published its state.
func (s *Service) domainSites(ctx context.Context, domain string) ([]prewarmSite, error) {
	var sites []prewarmSite
	n := 0
	for l, err := range workflows.ListDistributions(ctx, s.temporal, workflows.DistributionQuery{Domain: domain}) {
		if err != nil {
			return nil, fmt.Errorf("prewarm target %s: %w", domain, err)
		}
		if n++; n > maxDomainMatches {
			break
		}
		st := l.State
		if !l.Published {
			queried, err := s.distributionState(ctx, l.WorkflowID)
			if isNotFound(err) {
				continue
			}
			if err == nil {
				st = queried
			}
		}
		if st.AppKey == "" {
			st.AppKey = l.State.AppKey
		}
		if site, ok := siteOf(st); ok && site.serves(domain) {
			sites = append(sites, site)
		}
	}
	return sites, nil
}

// siteOf is st as prewarm resolution sees it; ok is false for a CLOSE
// distribution or one without a domain.
func siteOf(st distribution.State) (prewarmSite, bool) {
	if st.Status == distribution.StatusClose || st.Domain == "" {
		return prewarmSite{}, false
	}
	return prewarmSite{AppKey: st.AppKey, Domain: strings.ToLower(st.Domain), Status: st.Status, Hosts: st.Hosts()}, true
}
