package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/distribution"
)

// changeHostClaims: a distribution releases the host claims (HostWorkflow)
// it no longer names, and claims its hosts again before a change in ERROR
// is tried again.
const changeHostClaims = "distribution-host-claims"

// owner is d as the holder of host claims.
func (d *entity) owner() HostOwner { return HostOwner{AppKey: d.st.AppKey, Domain: d.st.Domain} }

// claimedHosts are the hosts d wants held (QueryClaimedHosts): the aliases
// of its current configuration, of the last one applied and of the change
// in flight or in ERROR, plus those of extra; none once closed.
func (d *entity) claimedHosts(extra *distribution.Config) []string {
	if d.closed {
		return nil
	}
	hosts := d.st.Config.Aliases()
	add := func(c *distribution.Config) {
		if c == nil {
			return
		}
		for _, h := range c.Aliases() {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	add(d.lastGood)
	if d.failed != nil {
		add(&d.failed.cfg)
	}
	add(extra)
	return hosts
}

// setServed records in the state the aliases the edges serve for d: those
// of the last configuration applied (none before the first apply).
func (d *entity) setServed() {
	s := &distribution.Served{}
	if d.lastGood != nil {
		s.Aliases = d.lastGood.Aliases()
	}
	d.st.Served = s
}

// releaseHosts frees every host of before that d no longer wants (all of
// them once deleted): a signal to each host's claim, awaited, so that the
// host is free when d's status says the change ended. A host with no
// claim running is free already.
func (d *entity) releaseHosts(ctx workflow.Context, before []string, deleted bool) {
	var now []string
	if !deleted {
		now = d.claimedHosts(nil)
	}
	var gone []string
	for _, h := range before {
		if !slices.Contains(now, h) {
			gone = append(gone, h)
		}
	}
	if len(gone) == 0 || workflow.GetVersion(ctx, changeHostClaims, workflow.DefaultVersion, 1) != 1 {
		return
	}
	futures := make([]workflow.Future, len(gone))
	for i, h := range gone {
		futures[i] = workflow.SignalExternalWorkflow(ctx, HostWorkflowID(h), "", SignalReleaseHost, d.owner())
	}
	for _, f := range futures {
		_ = f.Get(ctx, nil)
	}
}

// claimForRetry claims the hosts of f, a change in ERROR, before it is
// tried again: a host d does not hold (another distribution claimed it)
// is never taken by a retry. It answers why the retry cannot run, or "".
func (d *entity) claimForRetry(ctx workflow.Context, f *change) string {
	hosts := f.cfg.Aliases()
	if len(hosts) == 0 || workflow.GetVersion(ctx, changeHostClaims, workflow.DefaultVersion, 1) != 1 {
		return ""
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{ErrHostInUse},
		},
	})
	if err := workflow.ExecuteActivity(actx, hostActivities.ClaimHosts, HostClaims{Owner: d.owner(), Hosts: hosts}).Get(ctx, nil); err != nil {
		return rootMessage(err)
	}
	return ""
}
