package activities

import (
	"slices"
	"testing"
)

// A round compares an edge by digest: a settled edge is answered without
// its entries ("digest"); after a change the edge holds the previous
// round's desired table, which the worker knows, so the edge is compared
// against it from memory ("known") and gets only the changed entry; the
// round after that finds it settled again. Real varnishd and connector.
func TestEdgeSyncComparesKnownTablesFromMemory(t *testing.T) {
	f := startSyncEdges(t, 1)
	d := &fakeDesired{}
	specs := f.specs(3, "/v1")
	d.set(specs)
	a := f.sync("cp-known", f.inventory(t), d)
	id := f.edges[0].Edge.ID
	r := round(t, a, nil, false)
	if got := r[id]; got.TableRead != "entries" || !slices.Contains(got.Drift, "missing") {
		t.Fatalf("first round on an empty edge: %+v, want the table read whole and the sites put", got)
	}
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" || len(got.Drift) > 0 || got.Sites != 3 {
		t.Fatalf("settled round: %+v, want the table compared by digest only", got)
	}
	specs[0] = f.spec(specs[0].Domain, 2, "/v2")
	d.set(specs)
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "known" || !slices.Equal(got.Drift, []string{"stale"}) {
		t.Fatalf("round after a change: %+v, want the edge compared against the known previous table and the change put", got)
	}
	if s := f.table(t, 0)[specs[0].Domain]; s.Gen != specs[0].Gen() || s.Origins[0].Path != "/v2" {
		t.Fatalf("edge entry after the change: %+v, want version 2 under /v2", s)
	}
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" || len(got.Drift) > 0 {
		t.Fatalf("round after the heal: %+v, want the table compared by digest only", got)
	}
}
