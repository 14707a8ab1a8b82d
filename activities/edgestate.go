package activities

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/log"

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

// tableDelta is what turns a known desired table into the round's
// desired table w: the entries to put, each with the known table's
// entry of that name (absent: new), and whether the known table holds
// names w lacks (orphans, deleted only through the full comparison and
// its valves).
type tableDelta struct {
	puts    []string // names, in order
	prev    map[string]connector.Site
	orphans bool
}

// tableDeltas computes each delta once per round and pair of tables,
// so the edges a change has not reached yet cost the changed entries,
// not a comparison of every entry on every edge. At most
// maxTableDeltas are kept. Safe for concurrent use.
type tableDeltas struct {
	mu  sync.Mutex
	per map[string]tableDelta // "known digest>desired digest"
}

// maxTableDeltas bounds tableDeltas: one pair per known table and set of
// rollout entries in flight.
const maxTableDeltas = 32

// between is the delta from the known table (digest from, entries
// known) to w.
func (t *tableDeltas) between(from string, known []connector.Site, w wanted) tableDelta {
	key := from + ">" + w.digest()
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.per[key]; ok {
		return d
	}
	d := tableDelta{prev: map[string]connector.Site{}}
	byName := make(map[string]connector.Site, len(known))
	for _, s := range known {
		byName[s.Name] = s
		if _, ok := w.sites[s.Name]; !ok {
			d.orphans = true
		}
	}
	for _, name := range w.names {
		want := w.sites[name]
		cur, ok := byName[name]
		if ok && cur.Gen == want.Gen && cur.Owner == want.Owner && sameContent(cur, want) {
			continue
		}
		d.puts = append(d.puts, name)
		if ok {
			d.prev[name] = cur
		}
	}
	if len(t.per) >= maxTableDeltas {
		t.per = nil
	}
	if t.per == nil {
		t.per = map[string]tableDelta{}
	}
	t.per[key] = d
	return d
}

// syncKnown finishes the round of an edge that holds a known desired
// table (read "known", its entries st.Sites from memory) by putting only
// the entries that differ from w (tableDeltas), through the same healer
// rules as a full comparison. done: the edge now holds exactly w, and the
// report says so. Otherwise the caller compares the whole table: when the
// known table has orphans or is empty (nothing was touched), or when a
// put was not taken as desired (touched: the table must be read again);
// the drift of the puts made is kept in rep.
func (a *EdgeSync) syncKnown(ctx context.Context, e inventory.Edge, w wanted, st connector.TableState, rep *EdgeSyncReport, last EdgeSyncReport, l log.Logger) (done, touched bool) {
	if len(st.Sites) == 0 {
		return false, false
	}
	d := a.deltas.between(st.Digest, st.Sites, w)
	if d.orphans {
		return false, false
	}
	h := &healer{a: a, e: e, log: l, rep: rep, now: time.Now(), table: maps.Clone(d.prev)}
	for _, name := range d.puts {
		err := h.put(ctx, w.sites[name], last)
		got, ok := h.table[name]
		want := w.sites[name]
		if err != nil || !ok || got.Gen != want.Gen || got.Owner != want.Owner || len(rep.Conflicts) > 0 || len(rep.Held) > 0 {
			// Compared again whole: what the put reported is found again.
			rep.Conflicts, rep.Held, rep.Differing = nil, nil, nil
			return false, true
		}
	}
	st.Digest = w.digest()
	if !a.settled(ctx, e, w, st, rep, last) {
		return false, len(d.puts) > 0
	}
	rep.TableRead, rep.Compared = "known", len(d.puts)
	return true, true
}

// fastRound finishes e's round without comparing its whole table when
// the read allows it: a table with the desired digest is settled, a known
// desired table gets the changed entries (syncKnown). Otherwise it
// answers the table to compare whole: st as read, or read again whole
// when the fast round could not finish or changed the table.
func (a *EdgeSync) fastRound(ctx context.Context, e inventory.Edge, w wanted, st connector.TableState, read string, rep *EdgeSyncReport, last EdgeSyncReport, l log.Logger) (bool, connector.TableState, string, error) {
	switch read {
	case "digest":
		// The edge holds exactly the desired table: nothing to compare.
		if a.settled(ctx, e, w, st, rep, last) {
			keepRestart(e, st, last, rep)
			return true, st, read, nil
		}
	case "known":
		done, touched := a.syncKnown(ctx, e, w, st, rep, last, l)
		if done {
			keepRestart(e, st, last, rep)
			return true, st, read, nil
		}
		if !touched {
			return false, st, read, nil
		}
	default:
		return false, st, read, nil
	}
	st, read, err := a.readWhole(ctx, e)
	return false, st, read, err
}
