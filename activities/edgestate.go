package activities

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
)

// GenerationSkew is how far ahead of this worker's clock a generation's
// creation time may be and still count as written by a control plane
// (clocks of workers differ); beyond it the entry is drift, whatever its
// generation says.
const GenerationSkew = 5 * time.Minute

// AheadOfClock reports whether g was created after now plus
// GenerationSkew: no control plane wrote it (a planted or corrupt entry).
func AheadOfClock(g connector.Generation, now time.Time) bool {
	return g.Created > now.Add(GenerationSkew).UnixMilli()
}

// digests computes, once per round, the table digest (connector.Digest)
// each distinct desired state of the round has: the fleet's common one,
// and one per set of rollout entries that reached some edges; and the
// key of the entries that add VCL (referrer rules, forwarded cookies:
// vcl.WithTable). A round compares every edge by that digest and reads
// the whole table only of the edges whose digest differs, so a settled
// fleet costs one small answer per edge whatever the number of
// distributions; an edge's VCL is rendered again only when its key
// changed. Safe for concurrent use.
type digests struct {
	mu  sync.Mutex
	per map[string]desiredDigest // rolloutNames joined ("" common) → digests
}

// desiredDigest is one desired table's digest and VCL key.
type desiredDigest struct {
	table, vcl string
}

// of is w's digests; w.over are the rollout entries w was made with.
func (d *digests) of(w wanted) desiredDigest {
	key := strings.Join(rolloutNames(w.over), ",")
	d.mu.Lock()
	defer d.mu.Unlock()
	if dg, ok := d.per[key]; ok {
		return dg
	}
	sites := slices.Collect(maps.Values(w.sites))
	var vclSites []connector.Site
	for _, s := range sites {
		if s.Referrer != nil || (s.Cache != nil && len(s.Cache.Cookies) > 0) {
			vclSites = append(vclSites, s)
		}
	}
	dg := desiredDigest{table: connector.Digest(sites), vcl: connector.Digest(vclSites)}
	if d.per == nil {
		d.per = map[string]desiredDigest{}
	}
	d.per[key] = dg
	return dg
}

// renderedVCL is one edge's VCL for one table digest and control token
// (vclFor's answer).
type renderedVCL struct {
	key, name, src string
}

// settled finishes the round of an edge whose table has the desired
// digest: nothing is put or deleted, the VCL of the desired table is
// made active (rendered once per edge and digest), and the report says
// what the table holds. It answers false when the VCL could not be
// checked: the caller then takes the full path.
func (a *EdgeSync) settled(ctx context.Context, e inventory.Edge, w wanted, st connector.TableState, rep *EdgeSyncReport, last EdgeSyncReport) bool {
	r, err := a.renderFor(e, w)
	if err != nil {
		return false
	}
	unlock, err := lockEdgeVCL(ctx, e.ID)
	if err != nil {
		return false
	}
	changed, err := a.ensureRenderedLocked(ctx, e, r.name, r.src)
	unlock()
	if err != nil {
		return false
	}
	if !last.ConnectorStarted.IsZero() && !st.Started.Equal(last.ConnectorStarted) {
		rep.Drift = append(rep.Drift, "restart")
	}
	if changed {
		rep.Drift = append(rep.Drift, "vcl")
	}
	rep.ConnectorStarted, rep.VCL = st.Started, r.name
	rep.Sites, rep.TableDigest, rep.TableRead = len(w.sites), st.Digest, "digest"
	metrics.EdgeForeignSites.WithLabelValues(e.ID).Set(0)
	return true
}

// renderFor is e's VCL for the desired table w, rendered again only when
// the entries that add VCL (desiredDigest.vcl) or e's control token
// changed since the last round: a change of any other entry keeps it.
func (a *EdgeSync) renderFor(e inventory.Edge, w wanted) (renderedVCL, error) {
	// A rotated secret is another control token, so another VCL.
	token, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		return renderedVCL{}, err
	}
	key := w.digests.of(w).vcl + " " + token
	if v, ok := a.rendered.Load(e.ID); ok && v.(renderedVCL).key == key {
		return v.(renderedVCL), nil
	}
	sites := make([]connector.Site, 0, len(w.sites))
	for _, name := range w.names {
		sites = append(sites, w.sites[name])
	}
	name, src, err := a.vclFor(e, sites)
	if err != nil {
		return renderedVCL{}, err
	}
	r := renderedVCL{key: key, name: name, src: src}
	a.rendered.Store(e.ID, r)
	return r, nil
}

// digest is the digest of w's table (connector.Digest of w.sites).
func (w wanted) digest() string {
	if w.digests == nil {
		return connector.Digest(slices.Collect(maps.Values(w.sites)))
	}
	return w.digests.of(w).table
}

// readTable reads e's site table, its entries only when its digest is
// neither w's nor one of a known desired table (connector.HeaderIfDigest):
// an answer without Sites whose Digest is w's is a table as desired; one
// whose Digest is a known table gets that table's entries from memory (an
// edge a change has not reached yet holds the previous desired table). A
// draining edge is read whole.
func (a *EdgeSync) readTable(ctx context.Context, e inventory.Edge, w wanted) (st connector.TableState, read string, err error) {
	if e.Drain {
		st, err = a.Edges.Table(ctx, e)
		return st, "entries", err
	}
	want := w.digest()
	st, same, err := a.Edges.TableIfDigest(ctx, e, want, a.known.digests(want)...)
	switch {
	case err != nil:
		return st, "", err
	case same:
		st.Sites = nil // an edge that answered them anyway holds w's
		return st, "digest", nil
	case st.Sites == nil:
		sites, ok := a.known.table(st.Digest)
		if !ok {
			// Forgotten since the request (or an empty table): read it.
			st, err = a.Edges.Table(ctx, e)
			return st, "entries", err
		}
		st.Sites = sites
		return st, "known", nil
	}
	return st, "entries", nil
}

// knownTables keeps the desired tables of the last few rounds, by
// digest, so that an edge holding one of them is compared without
// sending its entries. Safe for concurrent use.
type knownTables struct {
	mu     sync.Mutex
	order  []string // oldest first
	tables map[string][]connector.Site
}

// maxKnownTables bounds knownTables: each is the fleet's desired table
// (10,000 entries are a few MB).
const maxKnownTables = 3

// remember keeps w's table under digest, forgetting the oldest beyond
// maxKnownTables.
func (k *knownTables) remember(digest string, w wanted) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.tables[digest]; ok {
		return
	}
	if k.tables == nil {
		k.tables = map[string][]connector.Site{}
	}
	sites := make([]connector.Site, 0, len(w.names))
	for _, name := range w.names {
		sites = append(sites, w.sites[name])
	}
	k.tables[digest] = sites
	k.order = append(k.order, digest)
	if len(k.order) > maxKnownTables {
		delete(k.tables, k.order[0])
		k.order = k.order[1:]
	}
}

// digests are the known tables' digests other than except.
func (k *knownTables) digests(except string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(k.order), func(d string) bool { return d == except })
}

// table is the known table of digest (shared: read only).
func (k *knownTables) table(digest string) ([]connector.Site, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.tables[digest]
	return t, ok
}

// readWhole reads e's whole site table.
func (a *EdgeSync) readWhole(ctx context.Context, e inventory.Edge) (connector.TableState, string, error) {
	st, err := a.Edges.Table(ctx, e)
	return st, "entries", err
}

// keepRestart drops "restart" from the drift of a managed edge whose
// connector restarted with `cdnflow dev` and reloaded its table from its
// state file: the restart itself is expected, any other repair is drift.
func keepRestart(e inventory.Edge, st connector.TableState, last EdgeSyncReport, rep *EdgeSyncReport) {
	if e.Managed && !st.Started.Equal(last.ConnectorStarted) && st.Loaded > 0 {
		rep.Drift = slices.DeleteFunc(rep.Drift, func(r string) bool { return r == "restart" })
	}
}
