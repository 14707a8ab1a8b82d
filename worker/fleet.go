package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/workflows"
)

// FleetSettingsOf are cfg's settings that every worker of the namespace
// must share (workflows.FleetSettings).
func FleetSettingsOf(cfg config.Config) workflows.FleetSettings {
	return workflows.FleetSettings{
		PurgeACL: append([]string(nil), cfg.PurgeACL...), DefaultOrigin: cfg.DefaultOrigin, ControlPlane: cfg.ControlPlane(),
	}
}

// FleetSettingsError is a worker's refusal to start with settings other
// than the fleet's record; Differences name each setting and both values.
type FleetSettingsError struct {
	Namespace   string
	Differences []string
}

func (e *FleetSettingsError) Error() string {
	return fmt.Sprintf("this worker's edge settings differ from the fleet's record (workflow %s in namespace %s): %s; "+
		"every worker must render the same VCL and own the same entries on the edges, so this one does not start: "+
		"start it with the fleet's values, or with --fleet-settings-replace to make its values the fleet's (then restart the other workers with them)",
		workflows.FleetSettingsWorkflowID, e.Namespace, strings.Join(e.Differences, "; "))
}

// CheckFleetSettings compares cfg's FleetSettingsOf with the namespace's
// record, the memo of the workflows.FleetSettingsWorkflow (started here
// with cfg's settings when there is none: the first worker sets the
// record). Settings that differ are a *FleetSettingsError unless
// cfg.FleetSettingsReplace, which replaces the record (a new run of the
// workflow) with cfg's. It needs no running worker: starting and
// describing a workflow are the frontend's.
func CheckFleetSettings(ctx context.Context, c client.Client, cfg config.Config) error {
	mine := FleetSettingsOf(cfg)
	record, err := startFleetRecord(ctx, c, cfg, mine, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING)
	if err != nil {
		return err
	}
	diff := mine.Differences(record)
	if len(diff) == 0 {
		return nil
	}
	if !cfg.FleetSettingsReplace {
		return &FleetSettingsError{Namespace: cfg.Namespace, Differences: diff}
	}
	record, err = startFleetRecord(ctx, c, cfg, mine, enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING)
	if err != nil {
		return err
	}
	if diff := mine.Differences(record); len(diff) > 0 {
		// Another worker replaced the record at the same moment.
		return &FleetSettingsError{Namespace: cfg.Namespace, Differences: diff}
	}
	return nil
}

// startFleetRecord starts the record with mine unless one runs (conflict
// policy) and answers the record that runs afterwards.
func startFleetRecord(ctx context.Context, c client.Client, cfg config.Config, mine workflows.FleetSettings, conflict enumspb.WorkflowIdConflictPolicy) (workflows.FleetSettings, error) {
	var record workflows.FleetSettings
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.FleetSettingsWorkflowID, TaskQueue: cfg.TaskQueue,
		WorkflowIDConflictPolicy: conflict,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                     map[string]any{workflows.MemoFleetSettings: mine},
	}, workflows.FleetSettingsWorkflow, mine)
	if err != nil {
		return record, fmt.Errorf("fleet settings record %s: start: %w", workflows.FleetSettingsWorkflowID, err)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, workflows.FleetSettingsWorkflowID, run.GetRunID())
	if err != nil {
		return record, fmt.Errorf("fleet settings record %s: describe: %w", workflows.FleetSettingsWorkflowID, err)
	}
	// Memos are written with the default converter (the client sets no
	// other), as the distribution listing reads them.
	p, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.MemoFleetSettings]
	if !ok {
		return record, fmt.Errorf("fleet settings record %s: no memo %s", workflows.FleetSettingsWorkflowID, workflows.MemoFleetSettings)
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &record); err != nil {
		return record, fmt.Errorf("fleet settings record %s: memo %s: %w", workflows.FleetSettingsWorkflowID, workflows.MemoFleetSettings, err)
	}
	return record, nil
}

// IsFleetSettingsError reports whether err is a worker's refusal to start
// with settings other than the fleet's.
func IsFleetSettingsError(err error) bool {
	var fe *FleetSettingsError
	return errors.As(err, &fe)
}

// WatchFleetSettings checks cfg's settings against the fleet's record
// every period until ctx ends (nil) or the record differs (a
// *FleetSettingsError: another worker replaced it with
// --fleet-settings-replace, so this one, rendering other VCL, must stop).
// A record that is gone is started again with cfg's settings; other
// errors (Temporal unreachable) are logged and the next period tries
// again.
func WatchFleetSettings(ctx context.Context, c client.Client, cfg config.Config, every time.Duration, logger *zap.Logger) error {
	cfg.FleetSettingsReplace = false // replacing is a start's decision, never a loop's
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := CheckFleetSettings(ctx, c, cfg)
		switch {
		case IsFleetSettingsError(err):
			return err
		case err != nil && ctx.Err() == nil:
			logger.Warn("check fleet settings", zap.Error(err))
		}
	}
}
