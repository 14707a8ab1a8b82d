//go:build !unit

// Not in `make unit`: package stack links the embedded Temporal server
// (internal/devtemporal), 10 s of linking on 2 cores for these tests of
// 0.1 s; `make test` runs them.

package stack

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
)

// dev creates its key ring on the first start (0600) and keeps it across
// restarts; worker and API without a key run unsealed (and say so).
func TestDevCreatesPayloadKeyOnce(t *testing.T) {
	t.Setenv(config.PayloadKeyEnv, "")
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	s := &Stack{Config: cfg, logger: zap.NewNop()}
	if err := s.loadPayloadKey(true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, payloadKeyFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || s.Config.PayloadKeyFile != path || s.Config.PayloadCodec == nil || s.PayloadRing == nil {
		t.Fatalf("first dev start: %v %v, config %q", st, err, s.Config.PayloadKeyFile)
	}
	first, _ := os.ReadFile(path)
	again := &Stack{Config: cfg, logger: zap.NewNop()}
	if err := again.loadPayloadKey(true); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(path); string(second) != string(first) || again.PayloadRing.Active() != s.PayloadRing.Active() {
		t.Fatal("the key ring changed on a restart: what the first start sealed is lost")
	}
	worker := &Stack{Config: config.Default(), logger: zap.NewNop()}
	worker.Config.DataDir = t.TempDir()
	if err := worker.loadPayloadKey(false); err != nil || worker.PayloadRing != nil || worker.Config.PayloadCodec != nil {
		t.Fatalf("worker without a key: %v %v", worker.PayloadRing, err)
	}
	if _, err := os.Stat(filepath.Join(worker.Config.DataDir, payloadKeyFile)); !os.IsNotExist(err) {
		t.Fatal("a worker made a key of its own: its payloads would not open on the other processes")
	}
}
