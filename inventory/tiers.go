package inventory

import "fmt"

// Tiers (docs/tiers.md): an edge may name a parent, its shield; the
// shield fetches from the origin, its children from the shield. One level
// is enough for a shield per region in front of the origin (CloudFront
// Origin Shield, Fastly shielding), and it makes cycles impossible.

// checkParents validates every Parent: an edge of this inventory, not the
// edge itself, itself without a parent (one level), and not draining while
// a serving child still fetches through it.
func (inv *Inventory) checkParents() []error {
	var errs []error
	for i, e := range inv.Edges {
		if e.Parent == "" {
			continue
		}
		where := fmt.Sprintf("edge %d (%q)", i, e.ID)
		p, ok := inv.Get(e.Parent)
		switch {
		case e.Parent == e.ID:
			errs = append(errs, fmt.Errorf("%s: parent is the edge itself", where))
		case !ok:
			errs = append(errs, fmt.Errorf("%s: parent %q is not an edge of this inventory", where, e.Parent))
		case p.Parent != "":
			errs = append(errs, fmt.Errorf("%s: parent %q has a parent itself (%q): one tier of shields only", where, e.Parent, p.Parent))
		case p.Drain && !e.Drain:
			errs = append(errs, fmt.Errorf("%s: parent %q is draining: give its children another parent (or none) first", where, e.Parent))
		}
	}
	return errs
}

// ParentOf returns the shield of edge id, if it has one.
func (inv *Inventory) ParentOf(id string) (Edge, bool) {
	e, ok := inv.Get(id)
	if !ok || e.Parent == "" {
		return Edge{}, false
	}
	return inv.Get(e.Parent)
}

// IsShield reports whether some serving edge names id as its parent.
func (inv *Inventory) IsShield(id string) bool {
	for _, e := range inv.Serving() {
		if e.Parent == id {
			return true
		}
	}
	return false
}

// WithShields returns the shields that serve the chosen edges followed by
// the chosen edges that are not shields, each part in inventory order, no
// edge twice: the order a prewarm fills the tree, top down. A chosen edge
// without a parent is kept as is; a shield that is chosen itself comes
// first.
func (inv *Inventory) WithShields(chosen []Edge) []Edge {
	want := make(map[string]bool, len(chosen))
	shield := map[string]bool{}
	for _, e := range chosen {
		want[e.ID] = true
		if p, ok := inv.ParentOf(e.ID); ok {
			shield[p.ID] = true
		}
	}
	out := make([]Edge, 0, len(chosen)+len(shield))
	for _, e := range inv.Edges {
		if shield[e.ID] {
			out = append(out, e)
		}
	}
	for _, e := range inv.Edges {
		if want[e.ID] && !shield[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

// Parents maps each of ids whose parent is also in ids to that parent:
// the order a purge of ids must respect (parents confirmed first).
func (inv *Inventory) Parents(ids []string) map[string]string {
	in := make(map[string]bool, len(ids))
	for _, id := range ids {
		in[id] = true
	}
	var out map[string]string
	for _, id := range ids {
		if p, ok := inv.ParentOf(id); ok && in[p.ID] {
			if out == nil {
				out = map[string]string{}
			}
			out[id] = p.ID
		}
	}
	return out
}
