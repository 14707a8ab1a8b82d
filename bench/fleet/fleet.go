package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/inventory"
)

// Options shape a fleet run outside a benchmark's process.
type Options struct {
	// Edges is how many stand-ins to start.
	Edges int
	// Dir holds the stand-ins' secret file (the CLI secret and the key of
	// their control token); the inventory names it by absolute path.
	Dir string
	// Prefix starts every stand-in's id: <Prefix>001-C1, ...
	Prefix string
	// Fleet is the latency, loss and restart model (harness.FleetOptions;
	// its Base is set from Simulated).
	Fleet harness.FleetOptions
	// Simulated puts this many simulated distributions
	// (harness.NewSimulated, dNNNNN.fleet.test) in every stand-in's
	// starting table, owned by SimulatedOwner. A cdnflow whose control
	// plane id is SimulatedOwner deletes them in its first sync round
	// (they are not in its desired state: only an in-process benchmark
	// can add them there), so the owner is another control plane's by
	// default: the entries load every table as a fleet's other
	// distributions do, and the sync leaves them.
	Simulated      int
	SimulatedOwner string
}

// Fleet is a running simulated fleet.
type Fleet struct {
	StandIns  []*harness.StandIn
	Inventory *inventory.Inventory
	cancel    context.CancelFunc
}

// Start starts o.Edges stand-ins (harness.StartFleet) on loopback and
// checks their inventory. Close stops them.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.Edges < 1 {
		return nil, fmt.Errorf("fleet: %d edges, want at least 1", o.Edges)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("fleet dir: %w", err)
	}
	if o.Simulated > 0 {
		sim, err := harness.NewSimulated(o.Simulated, o.SimulatedOwner)
		if err != nil {
			return nil, err
		}
		o.Fleet.Base = sim.Base
	}
	// The restart loop runs until Close.
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{cancel: cancel}
	f.StandIns, err = harness.StartFleet(ctx, dir, o.Prefix, o.Edges, o.Fleet)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	edges := make([]inventory.Edge, len(f.StandIns))
	for i, s := range f.StandIns {
		edges[i] = s.Edge
	}
	if f.Inventory, err = inventory.New(edges); err != nil {
		f.Close()
		return nil, fmt.Errorf("fleet inventory: %w", err)
	}
	return f, nil
}

// WriteInventory writes the fleet's edge inventory as JSON (the format
// inventory.Load reads: id, region, country, address, adminAddress,
// connectorAddress, secretFile, kind per edge) to path, through a
// temporary file renamed into place, so a reader never sees half of it.
func (f *Fleet) WriteInventory(path string) error {
	data, err := json.MarshalIndent(f.Inventory, "", "  ")
	if err != nil {
		return fmt.Errorf("fleet inventory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write fleet inventory: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write fleet inventory: %w", err)
	}
	return nil
}

// Close stops the restarts and every stand-in's listeners.
func (f *Fleet) Close() {
	f.cancel()
	for _, s := range f.StandIns {
		s.Close()
	}
}
