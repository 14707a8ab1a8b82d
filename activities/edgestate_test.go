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

// An edge holding the previous desired table gets the changed entries
// only: the delta from the known table is computed once and the other
// entries are not compared again. A known table with an orphan (a
// distribution gone) is compared whole, so the orphan is seen and
// deleted the round after, as on a table read whole. Real varnishd and
// connector.
func TestEdgeSyncKnownTableComparesOnlyTheChange(t *testing.T) {
	f := startSyncEdges(t, 1)
	d := &fakeDesired{}
	specs := f.specs(5, "/v1")
	d.set(specs)
	a := f.sync("cp-delta", f.inventory(t), d)
	id := f.edges[0].Edge.ID
	r := round(t, a, nil, false)
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" || got.Compared != 0 {
		t.Fatalf("settled round: %+v, want the table compared by digest only", got)
	}
	specs[0] = f.spec(specs[0].Domain, 2, "/v2")
	d.set(specs)
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "known" || got.Compared != 1 || !slices.Equal(got.Drift, []string{"stale"}) || got.Sites != 5 || got.TableDigest == "" {
		t.Fatalf("round after one change: %+v, want the known table and 1 entry compared and put", got)
	}
	if s := f.table(t, 0)[specs[0].Domain]; s.Gen != specs[0].Gen() || s.Origins[0].Path != "/v2" {
		t.Fatalf("edge entry after the change: %+v, want version 2 under /v2", s)
	}
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" || len(got.Drift) > 0 {
		t.Fatalf("round after the change: %+v, want the edge settled (its digest the desired one)", got)
	}
	gone := specs[4].Domain
	specs[1] = f.spec(specs[1].Domain, 2, "/v2")
	d.set(specs[:4])
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "known" || got.Compared != 4 || !slices.Equal(got.Orphans, []string{gone}) || !slices.Contains(got.Drift, "stale") {
		t.Fatalf("round after a change and a removal: %+v, want the known table compared whole, %s an orphan", got, gone)
	}
	r = round(t, a, r, false)
	if got := r[id]; !slices.Contains(got.Drift, "orphan") || got.Sites != 4 {
		t.Fatalf("round after: %+v, want the orphan deleted", got)
	}
	if _, ok := f.table(t, 0)[gone]; ok {
		t.Fatalf("edge still holds %s", gone)
	}
}
