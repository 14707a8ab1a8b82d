//go:build !unit

package devtemporal_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
	"github.com/cdnflow/cdnflow/internal/testlog"
)

// probeAttributes stand for the search attributes a process registers at
// start; the embedded server must keep them across a restart.
var probeAttributes = map[string]enumspb.IndexedValueType{
	"CdnflowProbeKind":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	"CdnflowProbeStatus": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// A job accepted before a restart is still there after it: the store is a
// file, not memory. Search attributes registered once stay registered.
func TestJobsSurviveRestartOnSameDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Temporal server: skipped under -short")
	}
	dir := t.TempDir()
	logger := testlog.Logger(t, zap.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	start := func() (*devtemporal.Server, client.Client) {
		srv, err := devtemporal.Start(devtemporal.Options{DataDir: dir, Logger: logger})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		c, err := temporalclient.Dial(ctx, temporalclient.Settings{TemporalAddress: srv.FrontendAddr, Namespace: "default"}, logger)
		if err != nil {
			srv.Stop()
			t.Fatalf("dial: %v", err)
		}
		return srv, c
	}

	srv, c := start()
	if err := temporalclient.EnsureSearchAttributes(ctx, c, "default", probeAttributes); err != nil {
		t.Fatalf("search attributes: %v", err)
	}
	// The UI serves its app on its own port.
	resp, err := http.Get("http://" + srv.UIAddr + "/")
	if err != nil {
		t.Fatalf("web ui: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("web ui status %d", resp.StatusCode)
	}
	// No worker polls this queue, so the workflow stays open across the restart.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "restart-probe", TaskQueue: "nobody-polls"}, "ProbeWorkflow")
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	c.Close()
	srv.Stop()

	srv, c = start()
	defer srv.Stop()
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, "restart-probe", run.GetRunID())
	if err != nil {
		t.Fatalf("describe after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status after restart = %v", st)
	}
	// Idempotent: every process start calls this.
	if err := temporalclient.EnsureSearchAttributes(ctx, c, "default", probeAttributes); err != nil {
		t.Fatalf("search attributes again: %v", err)
	}
}
