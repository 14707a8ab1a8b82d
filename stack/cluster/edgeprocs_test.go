package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// An edge's connector starts first and already finds the edge's secret;
// it checks the control token of the same file varnishd reads (-S), and
// the boot VCL holds that token.
func TestEdgeAndConnectorShareTheControlSecret(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), PGPort: 25432, TemporalPort: 21000})
	if err != nil {
		t.Fatal(err)
	}
	e := inventory.Edge{ID: "E1", Address: "127.0.0.1:16081", AdminAddress: "127.0.0.1:16082", ConnectorAddress: "127.0.0.1:16083",
		SecretFile: filepath.Join(c.opts.Dir, "edges", "E1.secret")}
	conn := c.connectorProc(e)
	if err := conn.prepare(); err != nil {
		t.Fatalf("connector prepare: %v", err)
	}
	if i := slices.Index(conn.argv, "--control-secret-file"); i < 0 || i+1 >= len(conn.argv) || conn.argv[i+1] != e.SecretFile {
		t.Fatalf("connector argv %v: want --control-secret-file %s", conn.argv, e.SecretFile)
	}
	if i := slices.Index(c.edgeProc(e).argv, "-S"); i < 0 || c.edgeProc(e).argv[i+1] != e.SecretFile {
		t.Fatalf("edge argv %v: want -S %s", c.edgeProc(e).argv, e.SecretFile)
	}
	if err := c.writeEdgeFiles(e); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(c.opts.Dir, "edges", e.ID, "boot.vcl"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+tok+`"`) {
		t.Fatalf("boot VCL does not hold the control token of %s", e.SecretFile)
	}
}

// With ExternalEdges the cluster starts no varnishd or connector for the
// inventory's edges (a fleet simulator serves them), yet hands the
// inventory, absolute secret paths kept, to every worker and API; without
// an inventory it refuses to start.
func TestExternalEdgesStartNoEdgeProcesses(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "fleet", "standin.secret")
	edges := []inventory.Edge{{ID: "SIM001-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:16081",
		AdminAddress: "127.0.0.1:16082", ConnectorAddress: "127.0.0.1:16082", SecretFile: secret}}
	for _, external := range []bool{false, true} {
		c, err := New(Options{Dir: filepath.Join(dir, "c"), PGPort: 25432, TemporalPort: 21000, Edges: edges, ExternalEdges: external})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range c.procs() {
			names = append(names, p.name)
		}
		hasEdge := slices.Contains(names, EdgeName("SIM001-C1")) || slices.Contains(names, "connector-SIM001-C1")
		if hasEdge == external {
			t.Errorf("external %v: processes %v", external, names)
		}
		if !slices.Contains(names, WorkerName(0)) || !slices.Contains(names, APIName(0)) {
			t.Errorf("external %v: no worker or API in %v", external, names)
		}
		w := c.workerProc(0).argv
		if i := slices.Index(w, "--edges"); i < 0 || w[i+1] != c.inventoryFile() {
			t.Errorf("worker argv %v: want --edges %s", w, c.inventoryFile())
		}
		if got := c.Inventory().Edges[0].SecretFile; got != secret {
			t.Errorf("secret file %s, want the fleet's %s", got, secret)
		}
	}
	if _, err := New(Options{Dir: dir, ExternalEdges: true}); err == nil {
		t.Error("external edges without an inventory: no error")
	}
}
