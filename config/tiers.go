package config

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// Tiers is tiered fill (docs/tiers.md): which parent edge (shield) a
// standalone `cdnflow connector` sends misses to, and whether a child
// falls back to the origin while its parent cannot be reached. `cdnflow
// dev` takes each managed edge's parent from the inventory.
type Tiers struct {
	// ParentEdge is "ID=HOST:PORT": the parent edge's inventory id and
	// HTTP address (--parent-edge); empty: the edge fetches from the
	// origin.
	ParentEdge string
	// ParentFallback fetches from the origin while the parent refuses
	// connections (--parent-fallback, default true); false answers 502.
	ParentFallback bool
	// ParentConnections caps a child connector's connections to its
	// parent edge (--parent-connections; 0: connector.DefaultParentConnections).
	ParentConnections int
}

// RegisterConnectorTiers binds --parent-edge (connector only).
func (t *Tiers) RegisterConnectorTiers(fs *flag.FlagSet) {
	str(fs, &t.ParentEdge, "parent-edge", "CDNFLOW_PARENT_EDGE", "ID=HOST:PORT of this edge's parent (shield) edge: misses are fetched from it with the visitor's Host (empty: from the origin)")
	t.RegisterFallback(fs)
}

// RegisterFallback binds --parent-fallback and --parent-connections
// (connector and dev).
func (t *Tiers) RegisterFallback(fs *flag.FlagSet) {
	num(fs, &t.ParentConnections, "parent-connections", "CDNFLOW_PARENT_CONNECTIONS", fmt.Sprintf("connections a child edge's connector keeps to its parent (shield) edge; fetches beyond them wait for one (0: %d)", connector.DefaultParentConnections))
	boolean(fs, &t.ParentFallback, "parent-fallback", "CDNFLOW_PARENT_FALLBACK", "while a child edge's parent refuses connections, fetch from the origin (reported: X-Tier-Fallback header, cdnflow_edge_parent_fallback_total); false: answer 502")
}

// Validate reports tier settings that cannot work: a negative
// --parent-connections, or a --parent-edge that is not ID=HOST:PORT.
func (t Tiers) Validate() error {
	if t.ParentConnections < 0 {
		return fmt.Errorf("parent-connections must be 0 (the default, %d) or more, got %d", connector.DefaultParentConnections, t.ParentConnections)
	}
	_, err := t.Parent()
	return err
}

// Parent is the connector.Parent of ParentEdge; nil when none. Errors
// name the malformed value.
func (t Tiers) Parent() (*connector.Parent, error) {
	if t.ParentEdge == "" {
		return nil, nil
	}
	id, addr, ok := strings.Cut(t.ParentEdge, "=")
	if !ok || id == "" {
		return nil, fmt.Errorf("--parent-edge %q: want ID=HOST:PORT", t.ParentEdge)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--parent-edge %q: %w", t.ParentEdge, err)
	}
	return &connector.Parent{ID: id, Address: addr, Fallback: t.ParentFallback}, nil
}
