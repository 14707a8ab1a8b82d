package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Host ownership (docs/nhn.md#host-ownership): a host (a domain alias,
// lower-case) belongs to at most one live distribution of any appKey. The
// claim is a HostWorkflow whose workflow id is derived from the host
// (HostWorkflowID): the API claims with update-with-start on that id
// (conflict policy USE_EXISTING), so two API processes claiming the same
// host meet in the same workflow, whose update validator admits one owner.
// The owner releases the host with SignalRelease once it applied a change
// without it, or closed; a claim whose owner does not want the host (it
// never came to exist, its change was refused, its workflow was
// terminated) is dropped by the workflow's own check (CheckHostOwner)
// HostClaimGrace after the last claim and every hostRecheck after that.
// Once no one holds it the workflow ends: a host costs a running workflow
// only while it is claimed.

// HostWorkflowID is the id of the claim on host (lower-cased, without a
// trailing dot).
func HostWorkflowID(host string) string {
	return "host/" + strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}

// HostOwner is the distribution holding a host: its appKey and domain
// (DistributionWorkflowID).
type HostOwner struct {
	AppKey string `json:"appKey"`
	Domain string `json:"domain"`
}

// WorkflowID is the owner's DistributionWorkflowID.
func (o HostOwner) WorkflowID() string { return DistributionWorkflowID(o.AppKey, o.Domain) }

func (o HostOwner) none() bool { return o == HostOwner{} }

// HostState is a HostWorkflow's input and what continue-as-new carries.
type HostState struct {
	Host  string    `json:"host"`
	Owner HostOwner `json:"owner"`
	// CheckAt is when the workflow next asks whether Owner still wants the
	// host (epoch ms; 0: HostClaimGrace after the start).
	CheckAt int64 `json:"checkAt,omitempty"`
}

// Names of the host claim's update, signal and query, and the error type
// of a refused claim.
const (
	// UpdateClaimHost takes a HostOwner: it is refused (ErrHostInUse) when
	// another owner holds the host, else the host is the owner's.
	UpdateClaimHost = "claim-host"
	// SignalReleaseHost takes a HostOwner: the host is free when that
	// owner holds it (a release from anyone else is ignored).
	SignalReleaseHost = "release-host"
	// QueryHostOwner answers the HostOwner (zero: free).
	QueryHostOwner = "host-owner"
	// MemoHostOwner is the memo key of the HostOwner holding the host,
	// upserted when the holder changes (hostOwnerMemo): a describe reads
	// it without a worker. A claim made before hostOwnerMemo has none.
	MemoHostOwner = "hostOwner"
	// QueryClaimedHosts answers the hosts a distribution wants held
	// ([]string, lower-case; none once it closed): the aliases of its
	// current configuration, of the last one it applied and of the change
	// in flight or in ERROR.
	QueryClaimedHosts = "claimed-hosts"
	// ErrHostInUse: another distribution holds the host. Its message names
	// the host only, never the holder.
	ErrHostInUse = "HostInUse"
)

// HostClaimGrace is how long a claim holds a host before the workflow
// first checks that its owner wants it: longer than the API takes from a
// claim to the change that names the host being accepted (a start or an
// update, seconds at most).
const HostClaimGrace = time.Minute

// hostRecheck is how often a held claim is checked again, so that an owner
// gone without releasing (a terminated workflow) does not hold it forever.
const hostRecheck = time.Hour

// HostInUseMessage is the refusal of a claim on host: it names the host
// only, never its holder.
func HostInUseMessage(host string) string { return "host " + host + " is already in use" }

// hostActivities is the receiver of the host check activities, called by
// method reference (nil: only the names are used in a workflow).
var hostActivities *HostActivities

// HostWorkflow holds the claim on one host (see the top of this file).
// Cost: a claim is one update; a check is one timer and one activity;
// the workflow continues as new when the history grows and ends once the
// host is free.
func HostWorkflow(ctx workflow.Context, st HostState) error {
	claims := 0
	if err := workflow.SetQueryHandler(ctx, QueryHostOwner, func() (HostOwner, error) { return st.Owner, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateClaimHost, func(ctx workflow.Context, o HostOwner) error {
		changed := st.Owner != o
		st.Owner = o
		st.CheckAt = workflow.Now(ctx).Add(HostClaimGrace).UnixMilli()
		claims++
		if changed {
			publishHostOwner(ctx, o)
		}
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(o HostOwner) error {
		if o.none() {
			return temporal.NewApplicationError("a claim needs an owner", ErrInvalidState)
		}
		if !st.Owner.none() && st.Owner != o {
			return temporal.NewApplicationError(HostInUseMessage(st.Host), ErrHostInUse)
		}
		return nil
	}}); err != nil {
		return err
	}
	if !st.Owner.none() {
		publishHostOwner(ctx, st.Owner) // a run continued as new
	}
	releases := workflow.GetSignalChannel(ctx, SignalReleaseHost)
	release := func(o HostOwner) {
		if o == st.Owner {
			st.Owner = HostOwner{}
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		var o HostOwner
		for releases.Receive(ctx, &o) {
			release(o)
		}
	})
	if st.CheckAt == 0 {
		st.CheckAt = workflow.Now(ctx).Add(HostClaimGrace).UnixMilli()
	}
	if st.Owner.none() {
		// Started by a claim (update-with-start): the SDK hands the claim
		// to its handler once the workflow first blocks.
		if _, err := workflow.AwaitWithTimeout(ctx, HostClaimGrace, func() bool { return claims > 0 }); err != nil {
			return err
		}
	}
	for {
		if st.Owner.none() || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			var o HostOwner
			for releases.ReceiveAsync(&o) {
				release(o)
			}
			if st.Owner.none() {
				return nil
			}
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return workflow.NewContinueAsNewError(ctx, HostWorkflow, st)
			}
			continue
		}
		if wait := time.UnixMilli(st.CheckAt).Sub(workflow.Now(ctx)); wait > 0 {
			seen := claims
			if _, err := workflow.AwaitWithTimeout(ctx, wait, func() bool {
				return st.Owner.none() || claims != seen || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
			}); err != nil {
				return err
			}
			continue
		}
		checkHostOwner(ctx, &st, &claims)
	}
}

// hostOwnerMemo: the claim publishes its holder in its memo
// (MemoHostOwner) when the holder changes, so the API reads the holder
// with a describe, which needs no worker (service/prewarm_lookup.go).
// A release needs no upsert: the run ends once the host is free.
const hostOwnerMemo = "host-owner-memo"

// publishHostOwner upserts o as the claim's MemoHostOwner.
func publishHostOwner(ctx workflow.Context, o HostOwner) {
	if workflow.GetVersion(ctx, hostOwnerMemo, workflow.DefaultVersion, 1) != 1 {
		return
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoHostOwner: o}); err != nil {
		workflow.GetLogger(ctx).Warn("upsert host owner memo", "owner", o.WorkflowID(), "error", err)
	}
}

// checkHostOwner asks whether st's owner still wants the host and frees it
// when the answer is no and no claim came in meanwhile; any other outcome
// (yes, no answer) keeps the claim until the next check.
func checkHostOwner(ctx workflow.Context, st *HostState, claims *int) {
	seen, owner := *claims, st.Owner
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	var wanted bool
	err := workflow.ExecuteActivity(actx, hostActivities.CheckHostOwner, HostCheck{Host: st.Host, Owner: owner}).Get(ctx, &wanted)
	if err == nil && !wanted && *claims == seen && st.Owner == owner {
		workflow.GetLogger(ctx).Info("host claim dropped: its owner does not name the host", "host", st.Host, "owner", owner.WorkflowID())
		st.Owner = HostOwner{}
		return
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("host owner check did not answer; the claim stays", "host", st.Host, "error", err)
	}
	if *claims == seen {
		st.CheckAt = workflow.Now(ctx).Add(hostRecheck).UnixMilli()
	}
}
