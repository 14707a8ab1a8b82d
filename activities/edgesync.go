package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
	"go.temporal.io/sdk/log"
)

// DesiredSites lists the desired state of every distribution edges should
// hold: the last applied distribution.SiteSpec of each running distribution workflow
// (the source of truth); workflows.DesiredSites implements it over
// visibility.
type DesiredSites interface {
	// DesiredSites returns the specs, the rollouts in flight, and the
	// domains of every running distribution (also those whose first
	// change is still in flight: their sites on an edge are not orphans).
	DesiredSites(ctx context.Context) (Desired, error)
}

// Desired is the desired state of every edge.
type Desired struct {
	// Specs are each running distribution's last applied spec: what every
	// edge holds unless a rollout says otherwise.
	Specs []distribution.SiteSpec
	// Rollouts are the staged changes in flight: their edges hold the
	// rollout's spec instead of the distribution's Specs entry.
	Rollouts []SiteRollout
	// Running are the domains of every running distribution.
	Running []string
}

// JoinDesired is the desired state of a and b together, read in that
// order: specs, rollouts and running distributions of both. A failed read
// of either fails the whole (a partial desired state would delete).
func JoinDesired(a, b DesiredSites) DesiredSites { return joinedDesired{a, b} }

type joinedDesired struct{ a, b DesiredSites }

func (j joinedDesired) DesiredSites(ctx context.Context) (Desired, error) {
	da, err := j.a.DesiredSites(ctx)
	if err != nil {
		return Desired{}, err
	}
	db, err := j.b.DesiredSites(ctx)
	if err != nil {
		return Desired{}, err
	}
	return Desired{Specs: append(da.Specs, db.Specs...), Rollouts: append(da.Rollouts, db.Rollouts...),
		Running: append(da.Running, db.Running...)}, nil
}

// SiteRollout is a distribution change rolled out edge by edge: Spec is
// desired on Edges (the edges its waves reached so far), the
// distribution's last applied spec on the others. A distribution workflow
// publishes it while the rollout runs (memo); its edge list is bounded by
// the fleet (1,000 edge ids are ~20 kB).
type SiteRollout struct {
	Spec  distribution.SiteSpec `json:"spec"`
	Edges []string              `json:"edges"`
}

// DefaultMaxDeleteShare is EdgeSync.MaxDeleteShare when none is set.
const DefaultMaxDeleteShare = 0.1

// maxReportNames caps each name list of an EdgeSyncReport (Orphans,
// Differing, Conflicts), whatever the size of the edge's table: the
// report lives in the sync workflow's state and GET /v1/edges.
const maxReportNames = 100

// maxConflictWhy bounds the reason of one conflict in the report (bytes);
// the log has it whole.
const maxConflictWhy = 200

// EdgeSync compares each edge's running configuration (active VCL and
// site table) with the desired one and heals the difference.
//
// It touches only the entries this control plane owns: Owner equal to
// EdgeConfig.ControlPlane, or "" (entries written before entries had
// owners; the sync adopts them by putting them again with its owner).
// Entries of other control planes sharing the edges are counted and left
// alone, whatever this control plane's desired state says.
type EdgeSync struct {
	EdgeConfig
	Inventory *inventory.Inventory
	Edges     *edge.Client
	Desired   DesiredSites
	// MaxDeleteShare bounds the deletions of one round on one edge to this
	// share of the edge's own entries (at least one deletion a round);
	// the rest wait for the next rounds. 0 means DefaultMaxDeleteShare.
	MaxDeleteShare float64
	// AllowMassDelete lifts the deletion valves: the share cap, and the
	// refusal to delete anything when the desired state is empty (the
	// operator's way to empty edges on purpose).
	AllowMassDelete bool
	// rendered holds each edge's last VCL rendered by a settled round
	// (edge id → renderedVCL).
	rendered sync.Map
	// known are the last rounds' desired tables (knownTables).
	known knownTables
	// deltas turn a known table into the round's desired one
	// (tableDeltas).
	deltas tableDeltas
	// refreshEvery is the least time between two reads of the desired
	// state within a round (0: desiredRefresh).
	refreshEvery time.Duration
}

// SyncEdgesInput is one round of the sync loop.
type SyncEdgesInput struct {
	// EdgeIDs to check; empty means every inventory edge (draining ones
	// too).
	EdgeIDs []string `json:"edgeIds,omitempty"`
	// Last is the previous round's report per edge: orphans are deleted
	// and differing entries replaced when seen in two rounds in a row
	// (visibility may lag a change), and a changed connector start counts
	// as a restart.
	Last map[string]EdgeSyncReport `json:"last,omitempty"`
}

// EdgeSyncReport is one edge's state after a sync round, as GET /v1/edges
// shows it. Its name lists hold at most 100 names each.
type EdgeSyncReport struct {
	EdgeID    string    `json:"edgeId"`
	CheckedAt time.Time `json:"checkedAt"`
	// VCL is the active VCL after the round (the desired one when healthy).
	VCL string `json:"vcl,omitempty"`
	// TableDigest and Sites describe the site table after the round
	// (entries of every owner).
	TableDigest string `json:"tableDigest,omitempty"`
	Sites       int    `json:"sites"`
	// TableRead says how the round read the table: "digest" (the edge
	// answered the desired digest, so its entries were neither sent nor
	// compared), "known" (the edge answered the digest of a recent
	// round's desired table: its entries were taken from the worker's
	// memory and compared), or "entries" (the whole table sent and
	// compared); "" when the table could not be read.
	TableRead string `json:"tableRead,omitempty"`
	// Compared counts the desired entries compared one by one with the
	// edge's this round: 0 for a table read by digest, the changed ones
	// for a known table, every one for a table read whole.
	Compared int `json:"compared,omitempty"`
	// Foreign counts the entries of other control planes in the table
	// (left alone).
	Foreign int `json:"foreign,omitempty"`
	// ConnectorStarted is when the edge's connector (and table) started.
	ConnectorStarted time.Time `json:"connectorStarted,omitempty"`
	// Drift lists what this round found and healed: "vcl" (another VCL
	// was active), "missing", "stale" (site absent or older), "ahead" (an
	// entry or a deletion whose generation was created ahead of the
	// clock: planted, replaced with force), "differs"
	// (content other than desired under the same generation, or under a
	// newer one two rounds in a row: replaced), "adopted" (an entry
	// without owner given this control plane's), "orphan" (a site no
	// distribution wants, deleted), "drain" (an entry deleted from a
	// draining edge), "restart" (the connector restarted). Empty: the
	// edge was as desired.
	Drift []string `json:"drift,omitempty"`
	// LastDrift is the latest round that found drift, and what.
	LastDriftAt time.Time `json:"lastDriftAt,omitempty"`
	LastDrift   []string  `json:"lastDrift,omitempty"`
	// Orphans are own sites seen without a distribution this round (in
	// name order), deleted if still so next round.
	Orphans []string `json:"orphans,omitempty"`
	// Differing are own sites whose content differs from the desired one
	// under a newer generation, as "name@created.version": replaced if
	// seen so, with that generation, next round too.
	Differing []string `json:"differing,omitempty"`
	// Conflicts are desired sites the edge did not take ("name: why"): an
	// entry or a host of another control plane holds them, or the edge
	// refuses the entry. They make the round's Error.
	Conflicts []string `json:"conflicts,omitempty"`
	// Held counts what the round left undone on purpose, by reason:
	// "empty-desired" (orphans not deleted: the desired state was
	// empty), "delete-cap" (deletions over the round's share, done in
	// the next rounds), "conflict", "in-flight" (differing entries seen
	// the first time).
	Held map[string]int `json:"held,omitempty"`
	// Rollouts are the sites a staged change in flight has reached on
	// this edge, as "name@created.version" (the generation the edge is
	// held to instead of the distribution's last applied one), in name
	// order, at most 100.
	Rollouts []string `json:"rollouts,omitempty"`
	// Draining: the inventory marks the edge Drain, and the round deleted
	// this control plane's entries; Drained: none is left.
	Draining bool   `json:"draining,omitempty"`
	Drained  bool   `json:"drained,omitempty"`
	Error    string `json:"error,omitempty"`
}

// SyncEdges runs one round over the edges in parallel and returns a
// report per edge. Per-edge failures are in the report (the loop tries
// again next round); only a failure to list the desired state fails the
// activity, so a failed read deletes nothing.
func (a *EdgeSync) SyncEdges(ctx context.Context, in SyncEdgesInput) ([]EdgeSyncReport, error) {
	v, err := a.readDesired(ctx)
	if err != nil {
		return nil, err
	}
	rd := &roundDesired{a: a, cur: v, readAt: time.Now()}
	ids := in.EdgeIDs
	if len(ids) == 0 {
		ids = a.syncEdgeIDs()
	}
	defer keepAlive(ctx)()
	out := make([]EdgeSyncReport, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = a.syncEdge(ctx, id, rd, in.Last[id])
		}()
	}
	wg.Wait()
	if rd.refreshes > 0 {
		logger(ctx).Info("desired state read again during the round", "reads", rd.refreshes)
	}
	return out, nil
}

// readDesired reads the desired state (a.Desired) as a round compares
// edges with it, and remembers its common table (knownTables). Errors
// are the read's.
func (a *EdgeSync) readDesired(ctx context.Context) (*desiredView, error) {
	d, err := a.Desired.DesiredSites(ctx)
	if err != nil {
		return nil, fmt.Errorf("list desired sites: %w", err)
	}
	specs, running := d.Specs, d.Running
	live := map[string]bool{}
	for _, d := range running {
		live[d] = true
	}
	desired := map[string]connector.Site{}
	for _, s := range specs {
		if entry, ok := a.desiredEntry(ctx, s); ok {
			desired[entry.Name] = entry
		}
	}
	// Per edge, the entries of the rollouts that reached it replace the
	// distributions' last applied ones (a deleted rollout spec is not
	// staged, so every override is an entry).
	over := map[string]map[string]connector.Site{}
	for _, r := range d.Rollouts {
		entry, ok := a.desiredEntry(ctx, r.Spec)
		if !ok {
			continue
		}
		for _, id := range r.Edges {
			if over[id] == nil {
				over[id] = map[string]connector.Site{}
			}
			over[id][entry.Name] = entry
		}
	}
	// No running distribution at all: as likely a visibility answer gone
	// wrong (or a control plane pointed at the wrong namespace) as a
	// fleet emptied on purpose.
	empty := len(specs) == 0 && len(running) == 0
	w := wanted{sites: desired, names: slices.Sorted(maps.Keys(desired)), live: live, empty: empty}
	w.digests = &digests{}
	a.known.remember(w.digest(), w)
	return &desiredView{w: w, over: over}, nil
}

// desiredEntry is s as this control plane's table entry; ok false for a
// deleted spec, or one no edge can serve (logged).
func (a *EdgeSync) desiredEntry(ctx context.Context, s distribution.SiteSpec) (connector.Site, bool) {
	if s.Deleted {
		return connector.Site{}, false
	}
	entry, err := EntryOf(s)
	if err != nil {
		logger(ctx, "domain", s.Domain).Warn("desired site cannot be served; skipped", "error", err)
		return connector.Site{}, false
	}
	entry.Owner = a.ControlPlane
	return entry, true
}

// rolloutNames lists over's entries as "name@generation", in name order,
// at most maxReportNames.
func rolloutNames(over map[string]connector.Site) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(over)) {
		if len(out) == maxReportNames {
			break
		}
		out = append(out, name+"@"+over[name].Gen.String())
	}
	return out
}

// syncEdgeIDs is every inventory edge, draining ones included (their
// entries are deleted), in inventory order.
func (a *EdgeSync) syncEdgeIDs() []string {
	ids := make([]string, 0, len(a.Inventory.Edges))
	for _, e := range a.Inventory.Edges {
		ids = append(ids, e.ID)
	}
	return ids
}

// wanted is one round's desired state: the entries by name (Owner set),
// the domains of running distributions, and whether the read was empty.
type wanted struct {
	sites map[string]connector.Site
	names []string // of sites, in order
	live  map[string]bool
	empty bool
	// digests is the round's digest of each desired table (shared by
	// every edge of the round).
	digests *digests
	// over are the rollout entries w was made with (wanted.on).
	over map[string]connector.Site
}

func (a *EdgeSync) syncEdge(ctx context.Context, id string, rd *roundDesired, last EdgeSyncReport) EdgeSyncReport {
	rep := EdgeSyncReport{EdgeID: id, CheckedAt: time.Now().UTC(), LastDriftAt: last.LastDriftAt, LastDrift: last.LastDrift}
	e, ok := a.Inventory.Get(id)
	if !ok {
		rep.Error = "not in the edge inventory"
		return rep
	}
	rep.Draining = e.Drain
	log := logger(ctx, "edgeId", id)
	w, st, read, err := a.readFresh(ctx, e, rd, &rep)
	if err == nil {
		var done bool
		if done, st, read, err = a.fastRound(ctx, e, w, st, read, &rep, last, log); done {
			return a.finish(log, rep)
		}
	}
	if err != nil {
		// Another VCL may be active (it does not route the site table):
		// put the desired one back first.
		var want []connector.Site
		if !e.Drain {
			want = slices.Collect(maps.Values(w.sites))
		}
		if changed, verr := a.ensureVCL(ctx, e, want); verr != nil {
			rep.Error = fmt.Sprintf("site table: %v; vcl: %v", err, verr)
			return rep
		} else if changed {
			rep.Drift = append(rep.Drift, "vcl")
		}
		if st, read, err = a.readWhole(ctx, e); err != nil {
			rep.Error = err.Error()
			return a.finish(log, rep)
		}
	}
	if !last.ConnectorStarted.IsZero() && !st.Started.Equal(last.ConnectorStarted) {
		rep.Drift = append(rep.Drift, "restart")
	}
	rep.ConnectorStarted = st.Started
	h := &healer{a: a, e: e, log: log, rep: &rep, now: time.Now(), table: map[string]connector.Site{}}
	for _, s := range st.Sites {
		h.table[s.Name] = s
	}
	if e.Drain {
		err = h.drain(ctx)
	} else {
		err = h.heal(ctx, w, last)
	}
	table := h.sorted()
	if err != nil {
		rep.Error = err.Error()
		return a.finish(log, rep)
	}
	changed, err := a.ensureVCL(ctx, e, table)
	if err != nil {
		rep.Error = err.Error()
		return a.finish(log, rep)
	}
	if changed && !slices.Contains(rep.Drift, "vcl") {
		rep.Drift = append(rep.Drift, "vcl")
	}
	if name, _, err := a.vclFor(e, table); err == nil {
		rep.VCL = name
	}
	rep.Sites, rep.TableDigest, rep.TableRead = len(table), connector.Digest(table), read
	if e.Managed && !st.Started.Equal(last.ConnectorStarted) && len(st.Sites) == 0 && st.Loaded == 0 {
		// An edge `cdnflow dev` started itself with an empty table,
		// filled the first time: nothing drifted.
		log.Info("edge filled", "changes", rep.Drift, "sites", rep.Sites)
		rep.Drift = nil
	}
	keepRestart(e, st, last, &rep)
	if len(rep.Conflicts) > 0 {
		rep.Error = fmt.Sprintf("%d desired sites not taken (see conflicts), first: %s", rep.Held["conflict"], rep.Conflicts[0])
	}
	return a.finish(log, rep)
}

// owns reports whether s is this control plane's entry to heal or
// delete: its Owner, or none (a table written before owners existed).
func (a *EdgeSync) owns(s connector.Site) bool {
	return s.Owner == "" || s.Owner == a.ControlPlane
}

// deleteLimit is how many of own entries one round may delete.
func (a *EdgeSync) deleteLimit(own int) int {
	if a.AllowMassDelete {
		return own
	}
	share := a.MaxDeleteShare
	if share <= 0 {
		share = DefaultMaxDeleteShare
	}
	return max(1, int(math.Floor(share*float64(own)+1e-9))) // 0.1*70 may be 6.999…
}

// on is w for an edge where the entries of over (a rollout's) replace
// or join w's; w itself when over is empty.
func (w wanted) on(over map[string]connector.Site) wanted {
	if len(over) == 0 {
		return w
	}
	sites := maps.Clone(w.sites)
	maps.Copy(sites, over)
	w.sites, w.names, w.over = sites, slices.Sorted(maps.Keys(sites)), over
	return w
}

// healer is one round's work on one edge: table is the edge's site
// table as the round leaves it.
type healer struct {
	a     *EdgeSync
	e     inventory.Edge
	log   log.Logger
	rep   *EdgeSyncReport
	now   time.Time
	table map[string]connector.Site
}

// heal puts the desired sites the edge lacks or holds otherwise, and
// deletes own sites of no running distribution that were orphans last
// round too, within the round's deletion valves.
func (h *healer) heal(ctx context.Context, w wanted, last EdgeSyncReport) error {
	own := 0
	owners := map[string]int{}
	for _, s := range h.table {
		if h.a.owns(s) {
			own++
		} else {
			owners[s.Owner]++
		}
	}
	h.rep.Foreign = len(h.table) - own
	metrics.EdgeForeignSites.WithLabelValues(h.e.ID).Set(float64(h.rep.Foreign))
	if h.rep.Foreign > 0 {
		h.log.Info("entries of other control planes left alone", "entries", h.rep.Foreign, "owners", ownerSample(owners))
	}
	h.rep.Compared = len(w.names)
	for _, name := range w.names {
		if err := h.put(ctx, w.sites[name], last); err != nil {
			return err
		}
	}
	return h.orphans(ctx, w, own, last)
}

// notApplied records a put of want the edge did not take: another
// control plane's entry is a conflict; a newer generation is left to the
// next round.
func (h *healer) notApplied(want connector.Site, res connector.PutResult) {
	if res.Current != nil && !h.a.owns(connector.Site{Owner: res.CurrentOwner}) && !AheadOfClock(*res.Current, h.now) {
		h.conflict(want.Name, fmt.Sprintf("held by control plane %q", res.CurrentOwner))
		return
	}
	h.log.Info("site not applied: the edge holds a newer generation", "site", want.Name, "gen", want.Gen.String(), "current", fmt.Sprint(res.Current))
}

// put makes want the edge's entry if the entry there is missing, older,
// planted, or differs; an entry of another control plane is a conflict,
// unless no control plane can have written it (ahead of the clock).
func (h *healer) put(ctx context.Context, want connector.Site, last EdgeSyncReport) error {
	cur, ok := h.table[want.Name]
	var reason string
	force := false
	switch {
	case !ok:
		reason = "missing"
	case cur.Gen == want.Gen && cur.Owner == want.Owner && sameContent(cur, want):
		return nil // as desired (even when a skewed clock made it ahead)
	case AheadOfClock(cur.Gen, h.now):
		reason, force = "ahead", true
	case !h.a.owns(cur):
		h.conflict(want.Name, fmt.Sprintf("held by control plane %q", cur.Owner))
		return nil
	case cur.Gen.Less(want.Gen) && cur.Owner == want.Owner && sameContent(cur, want):
		// An older generation of the same content serves the same: the
		// edges a reverted rollout never reached, a table reloaded a
		// version behind. A later change's newer generation replaces it.
		return nil
	case cur.Gen.Less(want.Gen):
		reason = "stale"
	case sameContent(cur, want):
		if cur.Owner == want.Owner || cur.Gen != want.Gen {
			return nil // as desired (or newer and alike: visibility lags)
		}
		reason = "adopted"
	case cur.Gen == want.Gen:
		// One generation, two contents: no change in flight explains it.
		reason, force = "differs", true
	default:
		// Newer and different: a change visibility does not show yet, or
		// drift; the second round that sees it decides.
		key := want.Name + "@" + cur.Gen.String()
		if !slices.Contains(last.Differing, key) {
			if len(h.rep.Differing) < maxReportNames {
				h.rep.Differing = append(h.rep.Differing, key)
			}
			h.hold("in-flight", 1)
			h.log.Info("site differs under a newer generation; replaced if still so next round", "site", want.Name, "gen", cur.Gen.String(), "desired", want.Gen.String())
			return nil
		}
		reason, force = "differs", true
	}
	res, err := h.a.Edges.PutSite(ctx, h.e, want, force)
	if err == nil && !res.Applied && !force && res.Current != nil && AheadOfClock(*res.Current, h.now) {
		// What won is ahead of the clock: an entry or a deletion (a
		// closed site the table keeps) no control plane wrote.
		reason, force = "ahead", true
		res, err = h.a.Edges.PutSite(ctx, h.e, want, true)
	}
	var se *edge.StatusError
	if errors.As(err, &se) && se.Code == 400 {
		// A host another site holds (maybe another control plane's), or
		// an entry the edge refuses: not fought over.
		h.conflict(want.Name, err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", want.Name, err)
	}
	if !res.Applied {
		h.notApplied(want, res)
		return nil
	}
	h.table[want.Name] = want
	addReason(h.rep, reason)
	if ok && reason != "adopted" {
		h.log.Info("site healed", "site", want.Name, "reason", reason, "was", cur.Gen.String(), "owner", cur.Owner, "gen", want.Gen.String())
	}
	// What the hosts served may only go when it changed: a re-put of
	// equal content (a connector that reloaded its table, an adoption)
	// keeps the cache.
	if res.Changed && (res.New || !ok || servesOtherwise(cur, want)) {
		return h.ban(ctx, unionHosts(cur.Hosts, want.Hosts))
	}
	return nil
}

// orphans deletes own entries no running distribution names that were
// orphans last round too, at most deleteLimit of them a round, and none
// when the desired state is empty unless the operator allows it.
func (h *healer) orphans(ctx context.Context, w wanted, own int, last EdgeSyncReport) error {
	var names []string
	for name, s := range h.table {
		if _, ok := w.sites[name]; ok || w.live[name] || !h.a.owns(s) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > maxReportNames {
		// The first names in order are the same from round to round, so
		// they are deleted first; the rest are seen once they are gone.
		names = names[:maxReportNames]
	}
	h.rep.Orphans = names
	var due []string
	for _, name := range names {
		if slices.Contains(last.Orphans, name) {
			due = append(due, name)
		}
	}
	if len(due) == 0 {
		return nil
	}
	if w.empty && !h.a.AllowMassDelete {
		h.hold("empty-desired", len(due))
		h.log.Warn("orphan sites kept: the desired state is empty", "orphans", len(due), "own", own)
		return nil
	}
	if limit := h.a.deleteLimit(own); len(due) > limit {
		h.hold("delete-cap", len(due)-limit)
		h.log.Warn("orphan deletions capped this round; the rest follow in the next rounds", "due", len(due), "deleted", limit, "own", own)
		due = due[:limit]
	}
	for _, name := range due {
		if err := h.delete(ctx, name, "orphan"); err != nil {
			return err
		}
	}
	return nil
}

// drain deletes every own entry of a draining edge, uncapped (the
// operator asked for it by marking the edge), and bans their hosts; the
// edge gets no puts.
func (h *healer) drain(ctx context.Context) error {
	left := 0
	for _, name := range slices.Sorted(maps.Keys(h.table)) {
		if !h.a.owns(h.table[name]) {
			h.rep.Foreign++
			continue
		}
		if err := h.delete(ctx, name, "drain"); err != nil {
			return err
		}
		if _, ok := h.table[name]; ok {
			left++
		}
	}
	metrics.EdgeForeignSites.WithLabelValues(h.e.ID).Set(float64(h.rep.Foreign))
	h.rep.Drained = left == 0
	return nil
}

// delete removes the entry name as the round read it (its own
// generation: an entry changed since is not touched) and bans its hosts.
func (h *healer) delete(ctx context.Context, name, reason string) error {
	cur := h.table[name]
	res, err := h.a.Edges.DeleteSite(ctx, h.e, name, cur.Gen)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if !res.Applied {
		h.log.Info("site not deleted: the edge holds a newer generation", "site", name, "gen", cur.Gen.String())
		return nil
	}
	delete(h.table, name)
	addReason(h.rep, reason)
	h.log.Info("site deleted", "site", name, "reason", reason, "gen", cur.Gen.String())
	return h.ban(ctx, cur.Hosts)
}

func (h *healer) ban(ctx context.Context, hosts []string) error {
	for _, host := range hosts {
		if err := h.a.Edges.BanPrefix(ctx, h.e, host, ""); err != nil {
			return fmt.Errorf("ban %s: %w", host, err)
		}
	}
	return nil
}

func (h *healer) conflict(name, why string) {
	if len(h.rep.Conflicts) < maxReportNames {
		short := why
		if len(short) > maxConflictWhy {
			short = short[:maxConflictWhy] + "…"
		}
		h.rep.Conflicts = append(h.rep.Conflicts, name+": "+short)
	}
	h.hold("conflict", 1)
	h.log.Warn("desired site not taken by the edge", "site", name, "why", why)
}

// hold counts n actions left undone for reason (report and metric).
func (h *healer) hold(reason string, n int) {
	if h.rep.Held == nil {
		h.rep.Held = map[string]int{}
	}
	h.rep.Held[reason] += n
	metrics.EdgeSyncHeld.WithLabelValues(h.e.ID, reason).Add(float64(n))
}

// sorted is the table in name order.
func (h *healer) sorted() []connector.Site {
	out := slices.Collect(maps.Values(h.table))
	slices.SortFunc(out, func(x, y connector.Site) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// sameContent reports whether a and b serve the same, whatever their
// generation and owner: every other field of connector.Site is compared
// (hosts in any order; nil and empty lists alike, as JSON carries them).
// A field compare, not connector.Digest: it runs for every entry of every
// edge each round. TestSameContentCoversSite fails when Site gets a field
// this does not know.
func sameContent(a, b connector.Site) bool {
	if a.Name != b.Name || a.ForwardRequestHost != b.ForwardRequestHost || a.TTL != b.TTL || a.Suspended != b.Suspended ||
		!slices.Equal(a.Origins, b.Origins) || !sameHosts(a.Hosts, b.Hosts) || !sameCache(a.Cache, b.Cache) {
		return false
	}
	if a.Referrer == nil || b.Referrer == nil {
		return a.Referrer == b.Referrer
	}
	ra, rb := a.Referrer, b.Referrer
	return ra.Type == rb.Type && ra.AllowEmpty == rb.AllowEmpty && slices.Equal(ra.Patterns, rb.Patterns)
}

// sameCache reports whether a and b are the same cache policy (nil is the
// default).
func sameCache(a, b *connector.CachePolicy) bool {
	var za, zb connector.CachePolicy
	if a != nil {
		za = *a
	}
	if b != nil {
		zb = *b
	}
	return za.CachePrivate == zb.CachePrivate && slices.Equal(za.Cookies, zb.Cookies)
}

// sameHosts reports whether a and b hold the same hosts, in any order.
func sameHosts(a, b []string) bool {
	if slices.Equal(a, b) {
		return true
	}
	return len(a) == len(b) && slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// servesOtherwise reports whether b fetches other objects than a: other
// hosts, origins (or their paths), Host forwarding, or a cache policy
// (forwarded cookies change the objects' keys; private answers stored
// under an opt-in must not outlive it). TTL, suspension and referrer
// changes keep what is cached valid.
func servesOtherwise(a, b connector.Site) bool {
	return !sameHosts(a.Hosts, b.Hosts) || !slices.Equal(a.Origins, b.Origins) || a.ForwardRequestHost != b.ForwardRequestHost ||
		!sameCache(a.Cache, b.Cache)
}

func unionHosts(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// ownerSample names up to 5 foreign owners with their entry counts, for
// one log line.
func ownerSample(owners map[string]int) string {
	names := slices.Sorted(maps.Keys(owners))
	var b strings.Builder
	for i, o := range names {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(names)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %d", o, owners[o])
	}
	return b.String()
}

func addReason(rep *EdgeSyncReport, reason string) {
	if !slices.Contains(rep.Drift, reason) {
		rep.Drift = append(rep.Drift, reason)
	}
}

// finish counts and logs the round's drift.
func (a *EdgeSync) finish(l log.Logger, rep EdgeSyncReport) EdgeSyncReport {
	for _, r := range rep.Drift {
		metrics.EdgeDrift.WithLabelValues(rep.EdgeID, r).Inc()
	}
	if len(rep.Drift) > 0 {
		rep.LastDriftAt, rep.LastDrift = rep.CheckedAt, rep.Drift
		l.Warn("edge drift healed", "reasons", rep.Drift, "sites", rep.Sites)
	}
	if rep.Error != "" {
		l.Warn("edge sync failed", "error", rep.Error)
	}
	return rep
}
