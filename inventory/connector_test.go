package inventory

import (
	"strings"
	"testing"
)

// connectorAddress defaults to the sidecar's loopback port and must be a
// loopback IP:port: the edge's VCL names it as its only backend.
func TestConnectorAddress(t *testing.T) {
	edge := func(addr string) Edge {
		return Edge{ID: "E1", Region: "us", Country: "united_states", Address: "10.0.0.5:80",
			AdminAddress: "10.0.0.5:6082", ConnectorAddress: addr, SecretFile: "s"}
	}
	inv, err := New([]Edge{edge("")})
	if err != nil {
		t.Fatal(err)
	}
	if e := inv.Edges[0]; e.ConnectorAddress != DefaultConnectorAddress || e.ConnectorPort() != 6090 {
		t.Fatalf("default: %q port %d", e.ConnectorAddress, e.ConnectorPort())
	}
	// A managed edge without one gets a free port from `cdnflow dev`.
	managed := edge("")
	managed.Managed = true
	if inv, err := New([]Edge{managed}); err != nil || inv.Edges[0].ConnectorAddress != "127.0.0.1:0" {
		t.Fatalf("managed default: %v %+v", err, inv)
	}
	if inv, err := New([]Edge{edge("[::1]:7000")}); err != nil || inv.Edges[0].ConnectorPort() != 7000 {
		t.Fatalf("[::1]:7000: %v", err)
	}
	for _, bad := range []string{"10.0.0.5:6090", "localhost:6090", "127.0.0.1", "127.0.0.1:0"} {
		if _, err := New([]Edge{edge(bad)}); err == nil || !strings.Contains(err.Error(), "connectorAddress") {
			t.Errorf("%q: %v, want refused", bad, err)
		}
	}
}
