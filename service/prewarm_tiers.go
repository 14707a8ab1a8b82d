package service

import "github.com/cdnflow/cdnflow/inventory"

// prewarmEdgeIDs lists the edges a prewarm of chosen warms, top down
// (docs/tiers.md): the shields serving the chosen edges first, then the
// chosen edges; each shield's rows show in the job's status beside the
// chosen edges'. The chunk activity warms the shields of a chunk before
// their children (activities.PrewarmChunk), so each URL is fetched from
// the origin once, by the shield. shields are the ids added that were not
// chosen (workflows.PrewarmJob.Shields): status stays per URL × chosen
// edge, so a URL only they failed is not failed.
func prewarmEdgeIDs(inv *inventory.Inventory, chosen []inventory.Edge) (ids, shields []string) {
	edges := chosen
	if inv != nil {
		edges = inv.WithShields(chosen)
	}
	picked := make(map[string]bool, len(chosen))
	for _, e := range chosen {
		picked[e.ID] = true
	}
	ids = make([]string, len(edges))
	for i, e := range edges {
		ids[i] = e.ID
		if !picked[e.ID] {
			shields = append(shields, e.ID)
		}
	}
	return ids, shields
}
