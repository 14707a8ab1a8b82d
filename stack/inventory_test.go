//go:build !unit

// Not in `make unit`: package stack links the embedded Temporal server
// (internal/devtemporal), 10 s of linking on 2 cores for these tests of
// 0.1 s; `make test` runs them.

package stack

import (
	"path/filepath"
	"testing"

	"github.com/cdnflow/cdnflow/config"
)

// Without --edges the built-in dev inventory is used, its secrets under
// the data dir, whatever the working directory.
func TestLoadInventoryBuiltIn(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = "/srv/cdnflow-data"
	inv, err := LoadInventory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := inv.Get("ATL56-C1")
	if !ok || !e.Managed || e.SecretFile != filepath.Join("/srv/cdnflow-data", "edges", "ATL56-C1.secret") {
		t.Fatalf("ATL56-C1 = %+v", e)
	}
	cfg.InventoryFile = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := LoadInventory(cfg); err == nil {
		t.Fatal("a missing --edges file was not an error")
	}
}
