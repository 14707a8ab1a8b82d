//go:build !unit

package stack_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/worker"
	"github.com/cdnflow/cdnflow/workflows"
)

// Two workers of one namespace with different --purge-acl: the first sets
// the fleet's record, the second refuses to start naming purge-acl and
// both values; with --fleet-settings-replace it starts and its values are
// the record, so the first one's settings are refused from then on.
func TestWorkersWithOtherFleetSettingsRefuseToStart(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true})
	withACL := func(acl ...string) config.Config {
		cfg := env.Config
		cfg.PurgeACL = acl
		return cfg
	}
	a, b := withACL("127.0.0.1", "10.0.0.0/8"), withACL("127.0.0.1", "192.168.0.0/16")
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	doneA := make(chan error, 1)
	go func() { doneA <- stack.RunWorker(ctxA, a, env.Inventory, env.Client, env.Payloads, env.Logger) }()

	// The record answers its query once worker A took it up.
	var rec workflows.FleetSettings
	waitFor(t, 20*time.Second, func() bool {
		v, err := env.Client.QueryWorkflow(context.Background(), workflows.FleetSettingsWorkflowID, "", workflows.QueryFleetSettings)
		return err == nil && v.Get(&rec) == nil
	})
	if got := strings.Join(rec.PurgeACL, ","); got != "127.0.0.1,10.0.0.0/8" || rec.ControlPlane != env.Config.Namespace {
		t.Fatalf("record %+v, want worker A's settings and the namespace as control plane", rec)
	}
	env.Replay(t, workflows.FleetSettingsWorkflowID, "fleet_settings")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := stack.RunWorker(ctx, b, env.Inventory, env.Client, env.Payloads, env.Logger)
	if !worker.IsFleetSettingsError(err) {
		t.Fatalf("worker B started (or failed otherwise: %v); want a fleet settings refusal", err)
	}
	for _, want := range []string{"--purge-acl", `"127.0.0.1,192.168.0.0/16"`, `"127.0.0.1,10.0.0.0/8"`, "--fleet-settings-replace"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "--default-origin") || strings.Contains(err.Error(), "--control-plane-id") {
		t.Errorf("refusal names settings that agree: %v", err)
	}

	// B replaces the record: B runs, and A, still running, stops within
	// its check period (4 sync periods) with the refusal.
	replace := b
	replace.FleetSettingsReplace = true
	stopB := runWorker(t, env, replace)
	defer stopB()
	waitFor(t, 20*time.Second, func() bool { return worker.CheckFleetSettings(ctx, env.Client, b) == nil })
	if err := worker.CheckFleetSettings(ctx, env.Client, a); !worker.IsFleetSettingsError(err) {
		t.Fatalf("worker A's settings after B replaced the record: %v, want a refusal", err)
	}
	select {
	case err := <-doneA:
		if !worker.IsFleetSettingsError(err) || !strings.Contains(err.Error(), "--purge-acl") {
			t.Fatalf("worker A ended with %v, want a fleet settings refusal naming --purge-acl", err)
		}
	case <-time.After(4*env.Config.EdgeSyncEvery + 20*time.Second):
		t.Fatal("worker A kept running with settings other than the fleet's record")
	}
}

// runWorker runs stack.RunWorker with cfg until the returned stop, which
// fails the test if the worker ended with an error.
func runWorker(t *testing.T, env *testenv.Env, cfg config.Config) (stop func()) {
	t.Helper()
	return runWorkerOn(t, env, cfg, env.Inventory)
}

// runWorkerOn is runWorker with inventory inv.
func runWorkerOn(t *testing.T, env *testenv.Env, cfg config.Config, inv *inventory.Inventory) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.RunWorker(ctx, cfg, inv, env.Client, env.Payloads, env.Logger) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// `cdnflow dev` started again on its data directory with another
// --purge-acl: the worker refuses (the stack fails, naming the flag) where
// it would otherwise rewrite every edge's VCL.
func TestDevRestartWithOtherPurgeACLFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs embedded Temporal: skipped under -short")
	}
	dir := t.TempDir()
	inv, err := inventory.New([]inventory.Edge{{ID: "DEV01-C1", Region: "us", Country: "united_states",
		Address: "127.0.0.1:" + freePort(t), AdminAddress: "127.0.0.1:" + freePort(t), SecretFile: filepath.Join(dir, "edge.secret")}})
	if err != nil {
		t.Fatal(err)
	}
	start := func(acl string) *stack.Stack {
		cfg := config.Default()
		cfg.DataDir = filepath.Join(dir, "data")
		cfg.TemporalPort, cfg.TemporalUIPort = 0, -1
		cfg.PurgeACL = []string{acl}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := stack.Start(ctx, stack.Options{Config: cfg, Inventory: inv, NoAPI: true})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		t.Cleanup(func() { _ = s.Stop() })
		return s
	}
	first := start("10.0.0.1")
	select {
	case err := <-first.Failed():
		t.Fatalf("first start failed: %v", err)
	case <-time.After(2 * time.Second):
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := start("10.0.0.2")
	select {
	case err := <-second.Failed():
		if !worker.IsFleetSettingsError(err) || !strings.Contains(err.Error(), `--purge-acl: this worker "10.0.0.2", the fleet's record "10.0.0.1"`) {
			t.Fatalf("second start: %v, want a refusal naming --purge-acl and both values", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev started again with another --purge-acl")
	}
}
