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
// and one per set of rollout entries that reached some edges. A round
// compares every edge by that digest and reads the whole table only of
// the edges whose digest differs, so a settled fleet costs one small
// answer per edge whatever the number of distributions. Safe for
// concurrent use.
type digests struct {
	mu   sync.Mutex
	base string
	over map[string]string // rolloutNames joined → digest
}

// of is w's digest; over are the rollout entries w was made with (nil:
// the round's common state).
func (d *digests) of(w wanted, over map[string]connector.Site) string {
	if len(over) == 0 {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.base == "" {
			d.base = connector.Digest(slices.Collect(maps.Values(w.sites)))
		}
		return d.base
	}
	key := strings.Join(rolloutNames(over), ",")
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.over == nil {
		d.over = map[string]string{}
	}
	if dg, ok := d.over[key]; ok {
		return dg
	}
	dg := connector.Digest(slices.Collect(maps.Values(w.sites)))
	d.over[key] = dg
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
	r, err := a.renderFor(e, w, st.Digest)
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

// renderFor is e's VCL for the desired table w whose digest is digest,
// rendered again only when the digest or e's control token changed since
// the last round.
func (a *EdgeSync) renderFor(e inventory.Edge, w wanted, digest string) (renderedVCL, error) {
	// A rotated secret is another control token, so another VCL.
	token, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		return renderedVCL{}, err
	}
	key := digest + " " + token
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
	return w.digests.of(w, w.over)
}

// readTable reads e's site table, its entries only when its digest is
// not w's (connector.HeaderIfDigest): an answer without Sites whose
// Digest is w's is a table as desired. A draining edge is read whole.
func (a *EdgeSync) readTable(ctx context.Context, e inventory.Edge, w wanted) (connector.TableState, error) {
	if e.Drain {
		return a.Edges.Table(ctx, e)
	}
	st, same, err := a.Edges.TableIfDigest(ctx, e, w.digest())
	if same {
		st.Sites = nil // an edge that answered them anyway holds w's
	}
	return st, err
}

// keepRestart drops "restart" from the drift of a managed edge whose
// connector restarted with `cdnflow dev` and reloaded its table from its
// state file: the restart itself is expected, any other repair is drift.
func keepRestart(e inventory.Edge, st connector.TableState, last EdgeSyncReport, rep *EdgeSyncReport) {
	if e.Managed && !st.Started.Equal(last.ConnectorStarted) && st.Loaded > 0 {
		rep.Drift = slices.DeleteFunc(rep.Drift, func(r string) bool { return r == "restart" })
	}
}
