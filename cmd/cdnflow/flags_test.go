//go:build !unit

// Not in `make unit`: package main links the embedded Temporal server (via
// stack and internal/devtemporal), 10 s of linking on 2 cores for these
// tests of 0.1 s; `make test` runs them.

package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
)

// groupFlags are the flag names one setting group registers.
func groupFlags(register func(*flag.FlagSet)) []string {
	fs := flag.NewFlagSet("group", flag.ContinueOnError)
	register(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// helpOf is what `cdnflow <args> -h` prints, with its exit code.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append(args, "-h"), &out, &errOut); code != 0 {
		t.Fatalf("%v -h: exit %d, want 0; stderr %s", args, code, errOut.String())
	}
	return out.String() + errOut.String()
}

func listed(help, name string) bool {
	return strings.Contains(help, "  -"+name+" ") || strings.Contains(help, "  -"+name+"\n")
}

// Each server command lists the setting groups it uses and no other:
// `worker -h` no API or dev flags, `api -h` no worker tunables or dev
// ports, `dev -h` all of them.
func TestServerHelpListsOwnGroups(t *testing.T) {
	var c config.Config
	api := groupFlags(c.API.Register)
	worker := groupFlags(c.Worker.Register)
	dev := groupFlags(c.Dev.Register)
	// The job policy is the API's for requests and the worker's for the
	// schedule runs it submits.
	shared := append(groupFlags(c.Temporal.Register), append(groupFlags(c.Process.Register), append(groupFlags(c.Origins.Register), groupFlags(c.Jobs.Register)...)...)...)
	if len(api) < 5 || len(worker) < 15 || len(dev) != 2 || len(groupFlags(c.Jobs.Register)) != 10 {
		t.Fatalf("groups: api %v, worker %v, dev %v", api, worker, dev)
	}
	for _, tc := range []struct {
		cmd         string
		has, hasNot []string
	}{
		{"worker", append(worker, shared...), append(api, dev...)},
		{"api", append(api, shared...), append(worker, dev...)},
		{"dev", append(append(api, worker...), append(dev, shared...)...), nil},
	} {
		help := helpOf(t, tc.cmd)
		for _, name := range tc.has {
			if !listed(help, name) {
				t.Errorf("%s -h does not list --%s", tc.cmd, name)
			}
		}
		for _, name := range tc.hasNot {
			if listed(help, name) {
				t.Errorf("%s -h lists --%s", tc.cmd, name)
			}
		}
	}
	for _, name := range []string{"api-keys", "ui-port", "app-keys", "api-addr"} {
		if listed(helpOf(t, "worker"), name) {
			t.Errorf("worker -h lists --%s", name)
		}
	}
	for _, name := range []string{"heartbeat-timeout", "prewarm-attempts", "prewarm-concurrency", "edge-purge-timeout", "ui-port"} {
		if listed(helpOf(t, "api"), name) {
			t.Errorf("api -h lists --%s", name)
		}
	}
}

// Every command refuses an unknown flag, or an argument it does not take,
// with the error and its usage on stderr and exit 2, before it starts
// anything; -h prints the usage and exits 0.
func TestUnknownFlagExits2(t *testing.T) {
	commands := [][]string{
		{"dev"}, {"worker"}, {"api"}, {"connector"},
		{"prewarm"}, {"purge"}, {"status"}, {"status", "ID"},
		{"schedule", "create"}, {"schedule", "list"}, {"schedule", "get", "ID"}, {"schedule", "delete", "ID"},
		{"distribution", "history"}, {"distribution", "diff"}, {"distribution", "rollback"}, {"distribution", "plan"},
		{"cluster", "up"}, {"cluster", "down"}, {"cluster", "status"}, {"cluster", "ui"}, {"cluster", "origin"},
	}
	for _, cmd := range commands {
		name := strings.Join(cmd, " ")
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(append([]string(nil), cmd...), "--no-such-flag"), &out, &errOut)
		if code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2; stderr %q", name, code, errOut.String())
		}
		if e := errOut.String(); !strings.Contains(e, "flag provided but not defined: -no-such-flag") || !strings.Contains(e, "Usage of cdnflow "+cmd[0]) {
			t.Errorf("%s --no-such-flag: stderr %q, want the error and the usage", name, e)
		}
		if code := run(context.Background(), append(append([]string(nil), cmd...), "-h"), &out, &errOut); code != 0 {
			t.Errorf("%s -h: exit %d, want 0", name, code)
		}
	}
	for _, args := range [][]string{
		{"worker", "extra"}, {"dev", "extra", "--no-such-flag"}, {"api", "--log-level", "info", "extra"},
		{"connector", "extra"}, {"prewarm", "extra"}, {"status", "ID", "extra"}, {"schedule", "get", "ID", "extra"},
		{"cluster", "down", "extra"}, {"version", "--no-such-flag"}, {"no-such-command"}, {"cluster", "no-such-command"},
		{"schedule", "no-such-action"}, {"distribution", "no-such-action"}, {"distribution", "history", "1", "2"}, {"worker", "--prewarm-attempts", "many"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, code, errOut.String())
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: nothing on stderr", args)
		}
	}
}

// A negative --parent-connections, or a --parent-edge that is not
// ID=HOST:PORT, stops the connector and dev before they start anything.
func TestTierSettingsRefusedAtStart(t *testing.T) {
	for _, args := range [][]string{
		{"connector", "--parent-connections", "-1"},
		{"connector", "--parent-edge", "no-address"},
		{"dev", "--parent-connections", "-2"},
	} {
		// Cancelled: a command that took the settings stops at once
		// instead of serving.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errOut bytes.Buffer
		code := run(ctx, args, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "parent-") {
			t.Errorf("%v: exit %d, stderr %q; want a refusal naming the setting", args, code, errOut.String())
		}
	}
}
