package activities

import "github.com/cdnflow/cdnflow/inventory"

// prewarmTiers splits a chunk's edges (positions into edges) into the
// order they are warmed (docs/tiers.md): first the edges that are the
// parent of another edge of the chunk (the shields), then the others,
// which then fetch each URL from their warm shield instead of the origin.
// Without tiers, or when only shields are chosen, it is one part.
func (a *Prewarm) prewarmTiers(edges []inventory.Edge) [][]int {
	parent := map[string]bool{}
	for _, e := range edges {
		if a.Inventory == nil {
			break
		}
		if p, ok := a.Inventory.ParentOf(e.ID); ok {
			parent[p.ID] = true
		}
	}
	var shields, rest []int
	for pos, e := range edges {
		if parent[e.ID] {
			shields = append(shields, pos)
		} else {
			rest = append(rest, pos)
		}
	}
	if len(shields) == 0 {
		return [][]int{rest}
	}
	return [][]int{shields, rest}
}
