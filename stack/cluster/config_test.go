//go:build !unit

package cluster

import (
	"os"
	"strings"
	"testing"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
)

// The rendered server config loads with the server's own loader and says
// what the cluster runs: PostgreSQL for both stores, the ports laid out
// from TemporalPort. (This file links the server's config packages, so it
// stays out of `make unit`.)
func TestTemporalConfigLoads(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), PGPort: 25432, TemporalPort: 21000, Edges: nil})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.writeTemporalConfig(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.WithConfigFile(c.temporalConfigFile()))
	if err != nil {
		t.Fatalf("the server cannot load the rendered config: %v", err)
	}
	for _, store := range []string{cfg.Persistence.DefaultStore, cfg.Persistence.VisibilityStore} {
		sql := cfg.Persistence.DataStores[store].SQL
		if sql == nil || sql.PluginName != "postgres12" || sql.ConnectAddr != "127.0.0.1:25432" {
			t.Errorf("store %s: %+v, want postgres12 at 127.0.0.1:25432", store, sql)
		}
	}
	want := map[string]int{"frontend": 21000, "history": 21002, "matching": 21003, "worker": 21004}
	for svc, port := range want {
		if got := cfg.Services[svc].RPC.GRPCPort; got != port {
			t.Errorf("%s grpc port %d, want %d", svc, got, port)
		}
		if got := cfg.Services[svc].RPC.MembershipPort; got < 21005 || got > 21008 {
			t.Errorf("%s membership port %d outside 21005..21008", svc, got)
		}
	}
	if cfg.Persistence.NumHistoryShards != NumHistoryShards {
		t.Errorf("shards %d", cfg.Persistence.NumHistoryShards)
	}
}

// The rendered dynamic config passes the server's own loader (what
// `temporal-server validate-dynamic-config` runs) without an error or a
// warning: every key is a setting of the pinned server, every value fits.
func TestDynamicConfigValidates(t *testing.T) {
	res := dynamicconfig.LoadYamlFile([]byte(renderDynamicConfig(DynamicConfig)))
	if len(res.Errors) > 0 || len(res.Warnings) > 0 {
		t.Fatalf("dynamic config: errors %v, warnings %v", res.Errors, res.Warnings)
	}
	typo := dynamicconfig.LoadYamlFile([]byte(renderDynamicConfig(map[string]any{"frontend.rpz": 1})))
	if len(typo.Errors)+len(typo.Warnings) == 0 {
		t.Fatal("the loader does not report an unknown key: this test proves nothing")
	}
}

// The compose deployment's Temporal runs with the cluster's dynamic config
// (deployments/compose/temporal-dynamicconfig.yaml, comments aside).
func TestComposeDynamicConfigIsTheClusters(t *testing.T) {
	data, err := os.ReadFile("../../deployments/compose/temporal-dynamicconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			kept = append(kept, line)
		}
	}
	if got, want := strings.Join(kept, ""), renderDynamicConfig(DynamicConfig); got != want {
		t.Fatalf("deployments/compose/temporal-dynamicconfig.yaml is not the cluster's dynamic config; want:\n%s", want)
	}
}
