package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// HostInUseError is a refused claim: another distribution holds Host. Its
// message names the host only (HostInUseMessage).
type HostInUseError struct{ Host string }

func (e *HostInUseError) Error() string { return HostInUseMessage(e.Host) }

// claimParallelism bounds the claims one call sends at once.
const claimParallelism = 16

// ClaimHosts claims every host for owner, side by side (one
// update-with-start each, HostWorkflow): a host owner already holds stays
// its own. It answers the hosts it claimed, and the first refusal by
// hosts order as a *HostInUseError (or Temporal's error). Claims made
// before a refusal stay: the caller releases them (ReleaseHosts) when the
// owner will not exist, else HostWorkflow drops those its owner does not
// name after HostClaimGrace.
func ClaimHosts(ctx context.Context, c client.Client, taskQueue string, owner HostOwner, hosts []string) ([]string, error) {
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, claimParallelism)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = claimHost(ctx, c, taskQueue, owner, h)
		}()
	}
	wg.Wait()
	var claimed []string
	var first error
	for i, err := range errs {
		if err == nil {
			claimed = append(claimed, hosts[i])
		} else if first == nil {
			first = err
		}
	}
	return claimed, first
}

// claimHost is one claim: update-with-start of host's HostWorkflow, which
// starts it when no claim runs (USE_EXISTING: concurrent claims of API
// processes meet in one workflow, whose validator admits one owner).
func claimHost(ctx context.Context, c client.Client, taskQueue string, owner HostOwner, host string) error {
	id := HostWorkflowID(host)
	var err error
	// A claim that reaches a run just as it ends (its owner released the
	// host) is tried again on the next run.
	for attempt := 0; attempt < 3; attempt++ {
		start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID:                       id,
			TaskQueue:                taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, HostWorkflow, HostState{Host: host})
		var h client.WorkflowUpdateHandle
		h, err = c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: UpdateClaimHost, Args: []any{owner},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			},
		})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == ErrHostInUse {
			return &HostInUseError{Host: host}
		}
		var notFound *serviceerror.NotFound
		if err == nil || !errors.As(err, &notFound) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("claim host %s: %w", host, err)
	}
	return nil
}

// CheckHostsFree answers, without claiming anything, the first of hosts
// another owner holds, as a *HostInUseError (QueryHostOwner of its
// HostWorkflow; a host with no claim running is free), or Temporal's
// error. A dry run uses it: the real change claims (ClaimHosts), so a host
// free here may still be taken by a concurrent change.
func CheckHostsFree(ctx context.Context, c client.Client, owner HostOwner, hosts []string) error {
	for _, h := range hosts {
		v, err := c.QueryWorkflow(ctx, HostWorkflowID(h), "", QueryHostOwner)
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the claim on host %s: %w", h, err)
		}
		var held HostOwner
		if err := v.Get(&held); err != nil {
			return fmt.Errorf("read the claim on host %s: %w", h, err)
		}
		if !held.none() && held != owner {
			return &HostInUseError{Host: h}
		}
	}
	return nil
}

// ReleaseHosts frees every host owner holds (SignalReleaseHost); a host
// with no claim running is free already. For the API: a creation that
// claimed hosts and will not start releases them at once.
func ReleaseHosts(ctx context.Context, c client.Client, owner HostOwner, hosts []string) error {
	var errs []error
	for _, h := range hosts {
		err := c.SignalWorkflow(ctx, HostWorkflowID(h), "", SignalReleaseHost, owner)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			errs = append(errs, fmt.Errorf("release host %s: %w", h, err))
		}
	}
	return errors.Join(errs...)
}

// HostCheck is the argument of CheckHostOwner.
type HostCheck struct {
	Host  string    `json:"host"`
	Owner HostOwner `json:"owner"`
}

// HostClaims is the argument of the ClaimHosts activity.
type HostClaims struct {
	Owner HostOwner `json:"owner"`
	Hosts []string  `json:"hosts"`
}

// HostActivities are the activities of host ownership; they read and
// claim through Temporal (no store of their own).
type HostActivities struct {
	Temporal client.Client
}

// CheckHostOwner answers whether in.Owner still wants in.Host: its
// distribution workflow runs and names the host (QueryClaimedHosts). A
// workflow that does not exist or has ended wants nothing; a query that
// fails is an error (retried), never a no.
func (a *HostActivities) CheckHostOwner(ctx context.Context, in HostCheck) (bool, error) {
	id := in.Owner.WorkflowID()
	desc, err := a.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", id, err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	v, err := a.Temporal.QueryWorkflow(ctx, id, "", QueryClaimedHosts)
	if err != nil {
		return false, fmt.Errorf("query %s hosts: %w", id, err)
	}
	var hosts []string
	if err := v.Get(&hosts); err != nil {
		return false, fmt.Errorf("decode %s hosts: %w", id, err)
	}
	return slices.Contains(hosts, in.Host), nil
}

// ClaimHosts claims in.Hosts for in.Owner (ClaimHosts, on this worker's
// task queue). A host another distribution holds is a non-retryable
// ErrHostInUse naming the host only.
func (a *HostActivities) ClaimHosts(ctx context.Context, in HostClaims) error {
	_, err := ClaimHosts(ctx, a.Temporal, activity.GetInfo(ctx).TaskQueue, in.Owner, in.Hosts)
	var inUse *HostInUseError
	if errors.As(err, &inUse) {
		return temporal.NewNonRetryableApplicationError(inUse.Error(), ErrHostInUse, nil)
	}
	return err
}
