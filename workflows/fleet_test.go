package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// Differences names each differing setting by its flag with both values,
// in a fixed order, and nothing when the settings agree (an ACL's order
// counts: the VCL keeps it).
func TestFleetSettingsDifferences(t *testing.T) {
	rec := FleetSettings{PurgeACL: []string{"10.0.0.1", "10.0.0.2"}, DefaultOrigin: "o:80", ControlPlane: "prod"}
	if d := rec.Differences(rec); d != nil {
		t.Fatalf("equal settings differ: %v", d)
	}
	mine := FleetSettings{PurgeACL: []string{"10.0.0.2", "10.0.0.1"}, DefaultOrigin: "", ControlPlane: "staging"}
	got := strings.Join(mine.Differences(rec), "\n")
	want := strings.Join([]string{
		`--purge-acl: this worker "10.0.0.2,10.0.0.1", the fleet's record "10.0.0.1,10.0.0.2"`,
		`--default-origin: this worker "", the fleet's record "o:80"`,
		`--control-plane-id: this worker "staging", the fleet's record "prod"`,
	}, "\n")
	if got != want {
		t.Fatalf("differences:\n%s\nwant:\n%s", got, want)
	}
	if d := (FleetSettings{}).Differences(FleetSettings{PurgeACL: []string{"x"}}); len(d) != 1 || !strings.Contains(d[0], "loopback only") {
		t.Fatalf("empty ACL: %v", d)
	}
}

// The record answers its settings and runs until cancelled.
func TestFleetSettingsWorkflowAnswersItsSettings(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(FleetSettingsWorkflow)
	in := FleetSettings{PurgeACL: []string{"10.0.0.1"}, ControlPlane: "prod"}
	var got FleetSettings
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryFleetSettings)
		if err != nil {
			t.Error(err)
		} else if err := v.Get(&got); err != nil {
			t.Error(err)
		}
		env.CancelWorkflow()
	}, 24*time.Hour)
	env.ExecuteWorkflow(FleetSettingsWorkflow, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("cancelled record: %v", err)
	}
	if got.ControlPlane != "prod" || len(got.PurgeACL) != 1 {
		t.Fatalf("query = %+v", got)
	}
}
