package harness

import (
	"context"
	"path/filepath"

	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/inventory"
)

// startTiered starts one shield (SHD01-C1) and n children (BEN01-C1, …)
// whose connectors fetch misses from it (docs/tiers.md); the shield comes
// first in the list.
func startTiered(ctx context.Context, dir string, n int, originAddr string) ([]inventory.Edge, []*varnishd.Process, error) {
	shield, procs, err := startEdges(ctx, filepath.Join(dir, "shield"), "SHD", 1, originAddr, nil)
	if err != nil {
		return nil, procs, err
	}
	children, more, err := startEdges(ctx, dir, "BEN", n, originAddr, &shield[0])
	return append(shield, children...), append(procs, more...), err
}

// Requests counts the origin's requests since start (0 on a cluster).
func (o *OriginClock) Requests() int64 {
	if o == nil {
		return 0
	}
	if h, ok := o.next.(interface{ Requests() int64 }); ok {
		return h.Requests()
	}
	return 0
}
