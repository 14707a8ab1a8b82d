// Package edgetest starts real varnishd edges on loopback for tests.
package edgetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// RunningEdge is one started edge.
type RunningEdge struct {
	Edge    inventory.Edge
	Process *varnishd.Process
	opts    varnishd.Options
}

// RequireVarnish fails under CI=true and skips elsewhere when varnishd is
// missing, so a CI run never passes by skipping the real edges.
func RequireVarnish(t testing.TB) {
	t.Helper()
	if _, err := varnishd.Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the tests need real edges)", err)
		}
		t.Skipf("%v", err)
	}
}

// StartEdges starts n edges, each with the VCL cfg(id) renders, and stops
// them when the test ends. Ids are TST01-C1, TST02-C1, ...
func StartEdges(t testing.TB, n int, cfg func(id string) vcl.Config) []*RunningEdge {
	t.Helper()
	RequireVarnish(t)
	dir := t.TempDir()
	edges := make([]*RunningEdge, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("TST%02d-C1", i+1)
		httpAddr, err := varnishd.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		adminAddr, err := varnishd.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		src, err := vcl.Render(cfg(id))
		if err != nil {
			t.Fatalf("render vcl for %s: %v", id, err)
		}
		opts := varnishd.Options{
			Name:       id,
			WorkDir:    filepath.Join(dir, id),
			ListenAddr: httpAddr,
			AdminAddr:  adminAddr,
			SecretFile: filepath.Join(dir, id+".secret"),
			VCL:        src,
			StorageMB:  64,
			Logger:     zaptest.NewLogger(t).Named(id),
		}
		edges[i] = &RunningEdge{
			Edge: inventory.Edge{
				ID: id, Region: "us", Country: "united_states", Kind: inventory.KindVarnish,
				Address: httpAddr, AdminAddress: adminAddr, SecretFile: opts.SecretFile,
			},
			opts: opts,
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			edges[i].Process, errs[i] = varnishd.Start(context.Background(), opts)
		}(i)
	}
	wg.Wait()
	for i, e := range edges {
		if e.Process != nil {
			p := e
			t.Cleanup(func() { _ = p.Process.Stop(context.Background()) })
		}
		if errs[i] != nil {
			t.Fatalf("start edge %s: %v", e.Edge.ID, errs[i])
		}
	}
	return edges
}

// Restart starts a stopped edge again on the same addresses and workdir
// (the cache is empty afterwards, as after a real crash).
func (e *RunningEdge) Restart(t testing.TB) {
	t.Helper()
	if e.Process != nil && !e.Process.Exited() {
		_ = e.Process.Stop(context.Background())
	}
	p, err := varnishd.Start(context.Background(), e.opts)
	if err != nil {
		t.Fatalf("restart edge %s: %v", e.Edge.ID, err)
	}
	e.Process = p
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
}
