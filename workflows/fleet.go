package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// FleetSettings are a worker's settings that every edge's VCL and site
// table carry, so every worker of a namespace must have the same: two
// workers with different ones would each render their own VCL and
// rewrite every edge in turn.
type FleetSettings struct {
	// PurgeACL is --purge-acl, in the order given (the VCL keeps it).
	PurgeACL []string `json:"purgeAcl"`
	// DefaultOrigin is --default-origin (host:port, "" for none).
	DefaultOrigin string `json:"defaultOrigin"`
	// ControlPlane is the owner of the entries the workers put
	// (--control-plane-id, default the namespace).
	ControlPlane string `json:"controlPlane"`
}

// Differences lists, per setting that differs between mine and the
// record, "--flag: this worker "mine", the fleet's record "theirs"", in
// a fixed order; nil when they agree.
func (mine FleetSettings) Differences(record FleetSettings) []string {
	var out []string
	add := func(flag, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("--%s: this worker %s, the fleet's record %s", flag, a, b))
		}
	}
	add("purge-acl", showACL(mine.PurgeACL), showACL(record.PurgeACL))
	add("default-origin", fmt.Sprintf("%q", mine.DefaultOrigin), fmt.Sprintf("%q", record.DefaultOrigin))
	add("control-plane-id", fmt.Sprintf("%q", mine.ControlPlane), fmt.Sprintf("%q", record.ControlPlane))
	return out
}

func showACL(acl []string) string {
	if len(acl) == 0 {
		return `"" (loopback only)`
	}
	return fmt.Sprintf("%q", strings.Join(acl, ","))
}

// FleetSettingsWorkflow holds a namespace's FleetSettings (its input, also
// its memo MemoFleetSettings) and answers QueryFleetSettings until it is
// cancelled or terminated; a worker started with --fleet-settings-replace
// replaces the run. It gives no command: its history is its start and one
// workflow task.
func FleetSettingsWorkflow(ctx workflow.Context, s FleetSettings) error {
	if err := workflow.SetQueryHandler(ctx, QueryFleetSettings, func() (FleetSettings, error) { return s, nil }); err != nil {
		return err
	}
	// Ends only by cancellation (nil: a cancelled record just ends).
	_ = workflow.Await(ctx, func() bool { return false })
	return nil
}
