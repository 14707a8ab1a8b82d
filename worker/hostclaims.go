package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/workflows"
)

// hostClaimPassParallelism bounds the host claims the start-up pass reads
// or makes at once, so a fleet of thousands of distributions does not
// flood the frontend while the worker starts.
const hostClaimPassParallelism = 8

// HostClaimPass counts what ClaimAppliedHosts found, by alias.
type HostClaimPass struct {
	// Distributions is the running distributions read.
	Distributions int
	// Held: the claim already named the distribution. Claimed: the pass
	// claimed it (no claim ran). Taken: another distribution holds it,
	// left alone. Failed: the claim could not be read or made (logged).
	Held, Claimed, Taken, Failed int
}

// ClaimAppliedHosts claims, once, every alias a running distribution
// applied (distribution.State.Hosts without the domain: generated domains
// are never claimed, docs/nhn.md#host-ownership) whose claim
// (workflows.HostWorkflow) is missing: distributions that ran before
// host ownership existed, or whose claim was terminated, would otherwise
// not be found by the per-host prewarm lookup (service/prewarm_lookup.go)
// nor kept from another distribution. It is idempotent: a claim naming
// the distribution is left as is, one held by another distribution is
// never taken (the claim's validator refuses it, ErrHostInUse), and a
// claim made for the same owner twice is one owner. Cost per alias: one
// describe, plus one update-with-start when no claim names its owner;
// one visibility scan of the running distributions, a query for each
// that has not published its state. Only a failed scan is an error.
func ClaimAppliedHosts(ctx context.Context, c client.Client, taskQueue string, logger *zap.Logger) (HostClaimPass, error) {
	var (
		pass HostClaimPass
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, hostClaimPassParallelism)
	count := func(f func(*HostClaimPass)) { mu.Lock(); f(&pass); mu.Unlock() }
	for l, err := range workflows.ListDistributions(ctx, c, workflows.DistributionQuery{}) {
		if err != nil {
			wg.Wait()
			return pass, fmt.Errorf("host claim pass: %w", err)
		}
		st, err := listedState(ctx, c, l)
		if err != nil {
			logger.Warn("host claim pass: distribution state unread", zap.String("workflowId", l.WorkflowID), zap.Error(err))
			count(func(p *HostClaimPass) { p.Failed++ })
			continue
		}
		count(func(p *HostClaimPass) { p.Distributions++ })
		if st.Status == distribution.StatusClose {
			continue
		}
		owner := workflows.HostOwner{AppKey: st.AppKey, Domain: st.Domain}
		for _, host := range st.Hosts()[1:] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				outcome, err := claimApplied(ctx, c, taskQueue, owner, host)
				if err != nil {
					logger.Warn("host claim pass: claim failed", zap.String("host", host), zap.String("domain", owner.Domain), zap.Error(err))
				}
				count(outcome)
			}()
		}
	}
	wg.Wait()
	return pass, nil
}

// listedState is l's published state, or its query while it has
// published none.
func listedState(ctx context.Context, c client.Client, l workflows.ListedDistribution) (distribution.State, error) {
	if l.Published {
		return l.State, nil
	}
	var st distribution.State
	v, err := c.QueryWorkflow(ctx, l.WorkflowID, "", workflows.QueryDistribution)
	if err != nil {
		return st, fmt.Errorf("query %s: %w", l.WorkflowID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode %s state: %w", l.WorkflowID, err)
	}
	return st, nil
}

// claimApplied claims host for owner unless its claim names owner
// already (its MemoHostOwner); it answers which HostClaimPass count the
// host adds to.
func claimApplied(ctx context.Context, c client.Client, taskQueue string, owner workflows.HostOwner, host string) (func(*HostClaimPass), error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflows.HostWorkflowID(host), "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		return func(p *HostClaimPass) { p.Failed++ }, fmt.Errorf("read the claim on host %s: %w", host, err)
	case desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		var held workflows.HostOwner
		if p, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.MemoHostOwner]; ok &&
			converter.GetDefaultDataConverter().FromPayload(p, &held) == nil {
			if held == owner {
				return func(p *HostClaimPass) { p.Held++ }, nil
			}
			if held != (workflows.HostOwner{}) {
				return func(p *HostClaimPass) { p.Taken++ }, nil
			}
		}
	}
	// No claim names an owner (or one from before MemoHostOwner): the
	// claim's validator admits owner only if no one else holds the host.
	_, err = workflows.ClaimHosts(ctx, c, taskQueue, owner, []string{host})
	var inUse *workflows.HostInUseError
	switch {
	case errors.As(err, &inUse):
		return func(p *HostClaimPass) { p.Taken++ }, nil
	case err != nil:
		return func(p *HostClaimPass) { p.Failed++ }, err
	}
	return func(p *HostClaimPass) { p.Claimed++ }, nil
}
