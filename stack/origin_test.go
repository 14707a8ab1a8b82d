//go:build !unit

// Not in `make unit`: package stack links the embedded Temporal server
// (internal/devtemporal), 10 s of linking on 2 cores for these tests of
// 0.1 s; `make test` runs them.

package stack

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
)

// The loopback origin allow-list never names cdnflow's own ports: an
// edge's HTTP, admin or connector port, Temporal's or the API's (dev
// admits its demo origin only).
func TestLoopbackOriginsNeverOwnPorts(t *testing.T) {
	inv, err := inventory.New([]inventory.Edge{{
		ID: "E1", Region: "us", Country: "united_states", Address: "127.0.0.1:16081",
		AdminAddress: "127.0.0.1:16082", ConnectorAddress: "127.0.0.1:16083", SecretFile: "s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.APIAddr = ":8080"
	for allow, want := range map[string]string{
		"8090":           "",
		"127.0.0.1:8090": "",
		"16082":          "edge E1 admin",
		"127.0.0.1:7233": "Temporal",
		"8080":           "the API",
		"16083":          "edge E1 connector",
		"16081":          "edge E1 HTTP",
		"localhost:1":    "origin-allow-loopback",
	} {
		cfg.OriginAllowLoopback = []string{allow}
		err := checkLoopbackOrigins(cfg, inv)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s refused: %v", allow, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error naming %q", allow, err, want)
		}
	}
}
