package activities

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
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

// changeAfterRead is a desired state whose next read answers the state
// before a change while the change reaches edge i (as a rollout wave that
// lands after a round read the desired state); the reads after it answer
// the changed state.
type changeAfterRead struct {
	*fakeDesired
	change func()
	reads  atomic.Int32
}

func (c *changeAfterRead) DesiredSites(ctx context.Context) (Desired, error) {
	d, err := c.fakeDesired.DesiredSites(ctx)
	c.reads.Add(1)
	if c.change != nil {
		c.change()
		c.change = nil
	}
	return d, err
}

// A change that reaches an edge after the round read the desired state
// leaves the edge with a table neither desired nor known: the round reads
// the desired state again and finds the edge as desired by digest,
// instead of reading and comparing its whole table and holding the new
// entry as differing. Real varnishd and connector.
func TestEdgeSyncChangeDuringRoundComparedByDigest(t *testing.T) {
	f := startSyncEdges(t, 1)
	d := &changeAfterRead{fakeDesired: &fakeDesired{}}
	specs := f.specs(3, "/v1")
	d.set(specs)
	a := f.sync("cp-fresh", f.inventory(t), d)
	a.refreshEvery = time.Nanosecond
	id := f.edges[0].Edge.ID
	r := round(t, a, nil, false)
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" {
		t.Fatalf("settled round: %+v, want the table compared by digest only", got)
	}
	changed := f.spec(specs[0].Domain, 2, "/v2")
	d.change = func() {
		// ApplySite's put, then the distribution publishes the spec.
		f.put(t, 0, entry(t, changed, "cp-fresh"), false)
		next := slices.Clone(specs)
		next[0] = changed
		d.set(next)
	}
	before := d.reads.Load()
	r = round(t, a, r, false)
	if got := r[id]; got.TableRead != "digest" || len(got.Drift) > 0 || len(got.Differing) > 0 || got.Sites != 3 {
		t.Fatalf("round the change reached the edge during: %+v, want the edge found as desired by digest", got)
	}
	if n := d.reads.Load() - before; n != 2 {
		t.Fatalf("desired state read %d times in the round, want 2 (the start, once again)", n)
	}
	if s := f.table(t, 0)[changed.Domain]; s.Gen != changed.Gen() || s.Origins[0].Path != "/v2" {
		t.Fatalf("edge entry after the round: %+v, want version 2 under /v2", s)
	}
}
