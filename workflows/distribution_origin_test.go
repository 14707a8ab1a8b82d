package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

// An origin that fails its probe for a lasting reason sends the new
// distribution to ERROR with that reason before any edge is asked to
// apply it; an origin that passes goes on to the edges.
func TestDistributionOriginProbeGatesApply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		probeErr  error
		wantApply bool
	}{
		{"unusable", temporal.NewNonRetryableApplicationError("origin https://o.test:443: x509: certificate has expired", activities.ErrOriginUnusable, nil), false},
		{"usable", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(DistributionWorkflow)
			applied := 0
			env.OnActivity(distributionActivities.ProbeDistributionOrigins, mock.Anything, mock.Anything).Return(tc.probeErr)
			env.OnActivity(distributionActivities.ApplySite, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApplySiteInput) error {
				applied++
				return nil
			})
			var deleted updateOutcome
			var before distribution.State
			applyBefore := -1
			env.RegisterDelayedCallback(func() {
				v, err := env.QueryWorkflow(QueryDistribution)
				if err != nil {
					t.Error(err)
					return
				}
				_ = v.Get(&before)
				applyBefore = applied
			}, 5*time.Minute)
			env.RegisterDelayedCallback(func() {
				env.UpdateWorkflow(UpdateDelete, "del", recordUpdate{&deleted})
			}, 10*time.Minute)
			env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
				State: distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpening},
			})
			var st distribution.State
			if err := env.GetWorkflowResult(&st); err != nil {
				t.Fatal(err)
			}
			if tc.wantApply {
				if applyBefore == 0 {
					t.Fatal("a usable origin was never applied")
				}
				return
			}
			if applyBefore != 0 || before.Status != distribution.StatusError || !strings.Contains(before.LastError, "certificate has expired") {
				t.Fatalf("before delete: %d applies, status %s, last error %q", applyBefore, before.Status, before.LastError)
			}
		})
	}
}
