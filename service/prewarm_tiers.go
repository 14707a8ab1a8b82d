package service

import "github.com/cdnflow/cdnflow/inventory"

// prewarmEdgeIDs lists the edges a prewarm of chosen warms, top down
// (docs/tiers.md): the shields serving the chosen edges first, then the
// chosen edges; each shield's rows show in the job's status beside the
// chosen edges'. The chunk activity warms the shields of a chunk before
// their children (activities.PrewarmChunk), so each URL is fetched from
// the origin once, by the shield.
func prewarmEdgeIDs(inv *inventory.Inventory, chosen []inventory.Edge) []string {
	edges := chosen
	if inv != nil {
		edges = inv.WithShields(chosen)
	}
	ids := make([]string, len(edges))
	for i, e := range edges {
		ids[i] = e.ID
	}
	return ids
}
