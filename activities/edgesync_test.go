package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/inventory"
)

// syncCreated is the creation time (epoch ms) of the test distributions:
// long past, so no generation of theirs is ahead of the clock.
const syncCreated = 1_700_000_000_000

// fakeDesired is the desired state a test sets between rounds.
type fakeDesired struct {
	mu       sync.Mutex
	specs    []distribution.SiteSpec
	rollouts []SiteRollout
	running  []string
}

// set makes specs the desired state; every spec's domain runs, and so do
// the extra domains (distributions whose first change is in flight).
func (f *fakeDesired) set(specs []distribution.SiteSpec, extra ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = slices.Clone(specs)
	f.running = slices.Clone(extra)
	for _, s := range specs {
		f.running = append(f.running, s.Domain)
	}
}

func (f *fakeDesired) DesiredSites(context.Context) (Desired, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Desired{Specs: slices.Clone(f.specs), Rollouts: slices.Clone(f.rollouts), Running: slices.Clone(f.running)}, nil
}

// roll makes rs the rollouts in flight.
func (f *fakeDesired) roll(rs ...SiteRollout) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollouts = rs
}

// syncEdges is real edges (varnishd and connector, tables empty) whose
// sites fetch from one test origin, under the path each spec names.
type syncEdges struct {
	edges  []*edgetest.RunningEdge
	client *edge.Client
	origin vcl.Backend
}

func startSyncEdges(t *testing.T, n int) *syncEdges {
	t.Helper()
	srv := httptest.NewServer(&origin.Handler{})
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	o := vcl.Backend{Host: host, Port: p}
	edges := edgetest.StartEdges(t, n, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &o}
	})
	return &syncEdges{edges: edges, client: edge.NewClient(edge.Options{}), origin: o}
}

// spec is distribution domain at version, fetching from the test origin
// under path.
func (f *syncEdges) spec(domain string, version int, path string) distribution.SiteSpec {
	return distribution.SiteSpec{Domain: domain, Version: version, Created: syncCreated, Config: distribution.Config{
		UseOrigin: "Y", Origins: []distribution.Origin{{Origin: f.origin.Host, Port: f.origin.Port, OriginPath: path}},
	}}
}

// specs are n distributions sNNN.sync.test at version 1 under path.
func (f *syncEdges) specs(n int, path string) []distribution.SiteSpec {
	out := make([]distribution.SiteSpec, n)
	for i := range out {
		out[i] = f.spec(fmt.Sprintf("s%03d.sync.test", i), 1, path)
	}
	return out
}

// entry is spec as control plane owner's site table entry.
func entry(t *testing.T, spec distribution.SiteSpec, owner string) connector.Site {
	t.Helper()
	e, err := EntryOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	e.Owner = owner
	return e
}

// fill makes entries of specs, owned by owner, edge i's whole table.
func (f *syncEdges) fill(t *testing.T, i int, owner string, specs []distribution.SiteSpec) {
	t.Helper()
	var sites []connector.Site
	for _, s := range specs {
		sites = append(sites, entry(t, s, owner))
	}
	if err := f.edges[i].Connector.Table().Replace(sites); err != nil {
		t.Fatal(err)
	}
}

// put stores s in edge i's table through the edge's admin protocol.
func (f *syncEdges) put(t *testing.T, i int, s connector.Site, force bool) connector.PutResult {
	t.Helper()
	res, err := f.client.PutSite(context.Background(), f.edges[i].Edge, s, force)
	if err != nil || !res.Applied {
		t.Fatalf("put %s on edge %d: %+v, %v", s.Name, i, res, err)
	}
	return res
}

// inventory lists the edges; drain marks edge indexes Drain.
func (f *syncEdges) inventory(t *testing.T, drain ...int) *inventory.Inventory {
	t.Helper()
	var list []inventory.Edge
	for i, e := range f.edges {
		x := e.Edge
		x.Drain = slices.Contains(drain, i)
		list = append(list, x)
	}
	inv, err := inventory.New(list)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// sync is the edge sync of control plane cp over inv.
func (f *syncEdges) sync(cp string, inv *inventory.Inventory, d DesiredSites) *EdgeSync {
	return &EdgeSync{
		EdgeConfig: EdgeConfig{DefaultOrigin: net.JoinHostPort(f.origin.Host, strconv.Itoa(f.origin.Port)), ControlPlane: cp},
		Inventory:  inv, Edges: f.client, Desired: d,
	}
}

// table is edge i's site table by name, read through the edge.
func (f *syncEdges) table(t *testing.T, i int) map[string]connector.Site {
	t.Helper()
	st, err := f.client.Table(context.Background(), f.edges[i].Edge)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]connector.Site{}
	for _, s := range st.Sites {
		out[s.Name] = s
	}
	return out
}

// owned counts the entries of owner in table.
func owned(table map[string]connector.Site, owner string) int {
	n := 0
	for _, s := range table {
		if s.Owner == owner {
			n++
		}
	}
	return n
}

// round runs one sync round and returns its reports by edge, failing the
// test on a report error unless errorsOK.
func round(t *testing.T, a *EdgeSync, last map[string]EdgeSyncReport, errorsOK bool) map[string]EdgeSyncReport {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	var reports []EdgeSyncReport
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.SyncEdges, SyncEdgesInput{Last: last}, &reports); err != nil {
		t.Fatal(err)
	}
	out := map[string]EdgeSyncReport{}
	for _, r := range reports {
		if r.Error != "" && !errorsOK {
			t.Fatalf("edge %s: %s", r.EdgeID, r.Error)
		}
		out[r.EdgeID] = r
	}
	return out
}

// fetch GETs host path through edge i and returns the origin path it was
// fetched from and the cache outcome (X-Cache).
func (f *syncEdges) fetch(t *testing.T, i int, host, path string) (originPath, cache string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+f.edges[i].Edge.Address+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Transport{Proxy: nil}).RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s on edge %d: %d", host, path, i, resp.StatusCode)
	}
	return resp.Header.Get("X-Origin-Path"), resp.Header.Get("X-Cache")
}

// A second control plane on the same edges (a staging cdnflow pointed at
// production) deletes none of the first one's entries, with an empty or a
// different desired state, and takes no name the first one holds; the
// first one leaves the second one's entries alone in turn.
func TestEdgeSyncSecondControlPlaneLeavesFirstAlone(t *testing.T) {
	f := startSyncEdges(t, 2)
	inv := f.inventory(t)
	prod := &fakeDesired{}
	prod.set(f.specs(5, "/prod"))
	a := f.sync("prod", inv, prod)
	last := round(t, a, nil, false)
	for i := range f.edges {
		if n := owned(f.table(t, i), "prod"); n != 5 {
			t.Fatalf("edge %d holds %d entries of prod after its first round, want 5", i, n)
		}
	}

	staging := &fakeDesired{}
	b := f.sync("staging", inv, staging)
	var blast map[string]EdgeSyncReport
	for range 3 { // orphans go after two rounds: three give them every chance
		blast = round(t, b, blast, false)
	}
	for i := range f.edges {
		if n := owned(f.table(t, i), "prod"); n != 5 {
			t.Fatalf("an empty staging sync left %d of prod's 5 entries on edge %d", n, i)
		}
	}
	if r := blast[f.edges[0].Edge.ID]; r.Foreign != 5 || len(r.Orphans) != 0 {
		t.Fatalf("staging report %+v, want 5 foreign entries and no orphans", r)
	}
	if n := metricValue(t, fmt.Sprintf(`cdnflow_edge_foreign_sites{edge=%q}`, f.edges[0].Edge.ID)); n != 5 {
		t.Fatalf("foreign sites gauge %v, want 5", n)
	}

	// Staging desires a site of its own and one prod holds.
	staging.set([]distribution.SiteSpec{f.spec("stage.sync.test", 1, "/stage"), f.spec("s000.sync.test", 7, "/stage")})
	for range 3 {
		blast = round(t, b, blast, true)
	}
	for i := range f.edges {
		tab := f.table(t, i)
		if n := owned(tab, "prod"); n != 5 {
			t.Fatalf("a staging sync with another desired state left %d of prod's 5 entries on edge %d", n, i)
		}
		if s := tab["s000.sync.test"]; s.Owner != "prod" || s.Gen.Version != 1 {
			t.Fatalf("edge %d: s000 is %+v, want prod's version 1 (a conflict is not fought over)", i, s)
		}
		if s := tab["stage.sync.test"]; s.Owner != "staging" {
			t.Fatalf("edge %d: staging's own site is %+v", i, s)
		}
		r := blast[f.edges[i].Edge.ID]
		if r.Error == "" || len(r.Conflicts) != 1 || r.Held["conflict"] != 1 {
			t.Fatalf("edge %d: staging report %+v, want s000 reported as a conflict", i, r)
		}
	}

	for range 3 {
		last = round(t, a, last, false)
	}
	for i := range f.edges {
		tab := f.table(t, i)
		if s := tab["stage.sync.test"]; s.Owner != "staging" {
			t.Fatalf("prod's sync removed staging's entry on edge %d: %+v", i, s)
		}
		if r := last[f.edges[i].Edge.ID]; r.Foreign != 1 || len(r.Orphans) != 0 {
			t.Fatalf("prod report on edge %d: %+v, want 1 foreign entry, no orphans", i, r)
		}
	}
}

// An empty desired state (no distribution runs: a visibility answer gone
// wrong, a control plane on the wrong namespace) deletes nothing, round
// after round; the report names at most 100 of the orphans.
func TestEdgeSyncEmptyDesiredStateDeletesNothing(t *testing.T) {
	f := startSyncEdges(t, 1)
	f.fill(t, 0, "prod", f.specs(150, "/prod"))
	d := &fakeDesired{}
	a := f.sync("prod", f.inventory(t), d)
	held := fmt.Sprintf(`cdnflow_edge_sync_held_total{edge=%q,reason="empty-desired"}`, f.edges[0].Edge.ID)
	before := metricValue(t, held)
	var last map[string]EdgeSyncReport
	for range 3 {
		last = round(t, a, last, false)
	}
	if n := owned(f.table(t, 0), "prod"); n != 150 {
		t.Fatalf("empty desired state: %d of 150 entries left", n)
	}
	r := last[f.edges[0].Edge.ID]
	if len(r.Orphans) != maxReportNames || r.Held["empty-desired"] != maxReportNames {
		t.Fatalf("report: %d orphans named, held %v; want %d and %d", len(r.Orphans), r.Held, maxReportNames, maxReportNames)
	}
	if n := metricValue(t, held) - before; n != 2*maxReportNames {
		t.Fatalf("counted %v deletions held for the empty desired state, want %d (two rounds)", n, 2*maxReportNames)
	}

	// The operator's flag lets the same state empty the edge.
	a.AllowMassDelete = true
	round(t, a, last, false)
	if n := owned(f.table(t, 0), "prod"); n != 150-maxReportNames {
		t.Fatalf("allowed mass delete: %d entries left, want %d (the orphans named twice)", n, 150-maxReportNames)
	}
}

// When half of an edge's own entries lose their distribution, one round
// deletes at most the share cap (10% of the own entries, at least 1),
// and the rounds after it converge on the desired table.
func TestEdgeSyncDeletionsCappedPerRound(t *testing.T) {
	f := startSyncEdges(t, 1)
	all := f.specs(100, "/prod")
	f.fill(t, 0, "prod", all)
	d := &fakeDesired{}
	d.set(all[:50])
	a := f.sync("prod", f.inventory(t), d)
	last := round(t, a, nil, false) // orphans seen once: none deleted
	have := len(f.table(t, 0))
	if have != 100 {
		t.Fatalf("first round deleted %d entries, want 0 (orphans go when seen twice)", 100-have)
	}
	for r := 0; have > 50; r++ {
		if r == 20 {
			t.Fatalf("not converged after 20 rounds: %d entries", have)
		}
		last = round(t, a, last, false)
		now := len(f.table(t, 0))
		if limit := max(1, have/10); have-now > limit || now == have {
			t.Fatalf("round deleted %d of %d own entries, want 1 to %d", have-now, have, limit)
		}
		if rep := last[f.edges[0].Edge.ID]; have-now < have-50 && rep.Held["delete-cap"] != have-50-(have-now) {
			t.Fatalf("round report held %v, want %d capped deletions", rep.Held, have-50-(have-now))
		}
		have = now
	}
	tab := f.table(t, 0)
	for _, s := range all[:50] {
		if _, ok := tab[s.Domain]; !ok {
			t.Fatalf("desired site %s deleted", s.Domain)
		}
	}
	if len(tab) != 50 {
		t.Fatalf("converged on %d entries, want 50", len(tab))
	}
}

// The sync's repairs, on the edge's table: an own entry older than
// desired is replaced in one round; an orphan is deleted in the second
// round that sees it, not in the first; a running distribution whose
// first change is in flight is no orphan; an own entry without owner
// (written before owners) is adopted.
func TestEdgeSyncStaleAndOrphanRepairs(t *testing.T) {
	f := startSyncEdges(t, 1)
	cur, gone, inFlight, legacy := f.spec("cur.sync.test", 3, "/v3"), f.spec("gone.sync.test", 1, "/gone"), f.spec("new.sync.test", 1, "/new"), f.spec("legacy.sync.test", 1, "/legacy")
	old := f.spec("cur.sync.test", 2, "/v2")
	f.fill(t, 0, "prod", []distribution.SiteSpec{old, gone, inFlight})
	f.put(t, 0, entry(t, legacy, ""), false)
	d := &fakeDesired{}
	d.set([]distribution.SiteSpec{cur, legacy}, inFlight.Domain)
	a := f.sync("prod", f.inventory(t), d)

	last := round(t, a, nil, false)
	tab := f.table(t, 0)
	if s := tab["cur.sync.test"]; s.Gen.Version != 3 || s.Origins[0].Path != "/v3" || s.Owner != "prod" {
		t.Fatalf("stale entry after one round: %+v, want version 3 from /v3 owned by prod", s)
	}
	if got, _ := f.fetch(t, 0, "cur.sync.test", "/a.js"); got != "/v3/a.js" {
		t.Fatalf("the healed site fetched %q, want /v3/a.js", got)
	}
	if _, ok := tab["gone.sync.test"]; !ok {
		t.Fatal("an orphan was deleted in the first round that saw it")
	}
	if s := tab["legacy.sync.test"]; s.Owner != "prod" {
		t.Fatalf("entry without owner not adopted: %+v", s)
	}
	if r := last[f.edges[0].Edge.ID]; !slices.Equal(r.Orphans, []string{"gone.sync.test"}) || !slices.Contains(r.Drift, "stale") {
		t.Fatalf("first report %+v, want orphan gone.sync.test and stale drift", r)
	}

	last = round(t, a, last, false)
	tab = f.table(t, 0)
	if _, ok := tab["gone.sync.test"]; ok {
		t.Fatal("an orphan seen in two rounds in a row was not deleted")
	}
	if _, ok := tab["new.sync.test"]; !ok {
		t.Fatal("the site of a running distribution whose change is in flight was deleted")
	}
	if r := last[f.edges[0].Edge.ID]; !slices.Equal(r.Drift, []string{"orphan"}) {
		t.Fatalf("second report drift %v, want [orphan]", r.Drift)
	}
}

// A draining edge loses every entry of this control plane in one round,
// above the share cap, keeps other owners' entries, and is not filled
// again; the report says so.
func TestEdgeSyncDrainsEdge(t *testing.T) {
	f := startSyncEdges(t, 2)
	specs := f.specs(10, "/prod")
	f.fill(t, 1, "prod", specs)
	other := entry(t, f.spec("other.sync.test", 1, "/other"), "staging")
	f.put(t, 1, other, false)
	d := &fakeDesired{}
	d.set(specs)
	a := f.sync("prod", f.inventory(t, 1), d)
	var last map[string]EdgeSyncReport
	for r := range 2 {
		last = round(t, a, last, false)
		tab := f.table(t, 1)
		if n := owned(tab, "prod"); n != 0 {
			t.Fatalf("round %d: draining edge holds %d entries of prod", r, n)
		}
		if _, ok := tab["other.sync.test"]; !ok || len(tab) != 1 {
			t.Fatalf("round %d: draining edge table %v, want staging's entry only", r, tab)
		}
		if rep := last[f.edges[1].Edge.ID]; !rep.Draining || !rep.Drained || rep.Foreign != 1 {
			t.Fatalf("round %d: report %+v, want draining, drained, 1 foreign", r, rep)
		}
	}
	if n := owned(f.table(t, 0), "prod"); n != 10 {
		t.Fatalf("the edge beside the draining one holds %d entries, want 10", n)
	}
}

// An edge added to the inventory (the worker restarted with the new file)
// gets every distribution in the first round.
func TestEdgeSyncFillsAddedEdge(t *testing.T) {
	f := startSyncEdges(t, 2)
	specs := f.specs(20, "/prod")
	d := &fakeDesired{}
	d.set(specs)
	one, err := inventory.New([]inventory.Edge{f.edges[0].Edge})
	if err != nil {
		t.Fatal(err)
	}
	last := round(t, f.sync("prod", one, d), nil, false)
	if n := len(f.table(t, 1)); n != 0 {
		t.Fatalf("an edge outside the inventory got %d entries", n)
	}
	round(t, f.sync("prod", f.inventory(t), d), last, false)
	if n := owned(f.table(t, 1), "prod"); n != 20 {
		t.Fatalf("the added edge holds %d of 20 distributions after one round", n)
	}
	if got, _ := f.fetch(t, 1, "s007.sync.test", "/x.css"); got != "/prod/x.css" {
		t.Fatalf("the added edge serves s007 from %q", got)
	}
}

// A connector that reloaded its table (a restart with the table kept, an
// operator's restore) holding the desired content under an older
// generation or without owner gets it put again, and the cache stays:
// nothing is banned when the content did not change.
func TestEdgeSyncRePutKeepsCache(t *testing.T) {
	f := startSyncEdges(t, 1)
	specs := f.specs(3, "/prod")
	d := &fakeDesired{}
	d.set(specs)
	a := f.sync("prod", f.inventory(t), d)
	last := round(t, a, nil, false)
	for _, s := range specs {
		f.fetch(t, 0, s.Domain, "/keep.js")
		if _, c := f.fetch(t, 0, s.Domain, "/keep.js"); c != "HIT" {
			t.Fatalf("%s: second GET %s, want HIT", s.Domain, c)
		}
	}
	// The reloaded table: the same content, one entry a version behind,
	// one without owner.
	older := slices.Clone(specs)
	older[0].Version = 0
	reloaded := []connector.Site{entry(t, older[0], "prod"), entry(t, specs[1], ""), entry(t, specs[2], "prod")}
	if err := f.edges[0].Connector.Table().Replace(reloaded); err != nil {
		t.Fatal(err)
	}
	last = round(t, a, last, false)
	if r := last[f.edges[0].Edge.ID]; slices.Contains(r.Drift, "stale") || !slices.Contains(r.Drift, "adopted") {
		t.Fatalf("report drift %v, want adopted only (an older generation of equal content is no drift)", r.Drift)
	}
	tab := f.table(t, 0)
	for i, s := range specs {
		want := s.Gen()
		if i == 0 {
			want = older[0].Gen() // equal content: left as it is
		}
		if e := tab[s.Domain]; e.Owner != "prod" || e.Gen != want {
			t.Fatalf("%s after the round: %+v, want generation %s", s.Domain, e, want)
		}
		if _, c := f.fetch(t, 0, s.Domain, "/keep.js"); c != "HIT" {
			t.Fatalf("%s: GET after the re-put %s, want HIT (nothing banned)", s.Domain, c)
		}
	}
}

// An entry whose generation is ahead of the clock (planted, corrupt) is
// no newer change: whoever it names as owner, the desired entry replaces
// it in one round, and what it served is banned.
func TestEdgeSyncHealsPlantedEntry(t *testing.T) {
	f := startSyncEdges(t, 1)
	p, q := f.spec("p.sync.test", 1, "/good"), f.spec("q.sync.test", 1, "/good")
	d := &fakeDesired{}
	d.set([]distribution.SiteSpec{p, q})
	a := f.sync("prod", f.inventory(t), d)
	last := round(t, a, nil, false)

	for domain, owner := range map[string]string{p.Domain: "prod", q.Domain: "mallory"} {
		planted := entry(t, f.spec(domain, 1, "/evil"), owner)
		planted.Gen.Created = 9_000_000_000_000_000
		f.put(t, 0, planted, false)
		if got, _ := f.fetch(t, 0, domain, "/b.js"); got != "/evil/b.js" {
			t.Fatalf("the planted %s entry serves %q: the test plants nothing", domain, got)
		}
	}
	last = round(t, a, last, false)
	tab := f.table(t, 0)
	for _, s := range []distribution.SiteSpec{p, q} {
		if e := tab[s.Domain]; e.Gen != s.Gen() || e.Owner != "prod" || e.Origins[0].Path != "/good" {
			t.Fatalf("%s after one round: %+v, want prod's generation %s from /good", s.Domain, e, s.Gen())
		}
		if got, _ := f.fetch(t, 0, s.Domain, "/b.js"); got != "/good/b.js" {
			t.Fatalf("%s: /b.js is %q after the heal, want /good/b.js (the planted entry's objects banned)", s.Domain, got)
		}
	}
	if r := last[f.edges[0].Edge.ID]; !slices.Contains(r.Drift, "ahead") {
		t.Fatalf("report drift %v, want ahead", r.Drift)
	}
}

// An own entry whose content differs from the desired one under a newer,
// plausible generation may be a change visibility does not show yet: it
// is replaced only when seen with the same generation in two rounds in a
// row. Under the same generation as desired it is replaced at once.
func TestEdgeSyncDifferingEntry(t *testing.T) {
	f := startSyncEdges(t, 1)
	s := f.spec("d.sync.test", 1, "/good")
	same := f.spec("e.sync.test", 1, "/good")
	d := &fakeDesired{}
	d.set([]distribution.SiteSpec{s, same})
	a := f.sync("prod", f.inventory(t), d)
	last := round(t, a, nil, false)

	newer := func(version int) {
		f.put(t, 0, entry(t, f.spec(s.Domain, version, "/next"), "prod"), false)
	}
	newer(2)
	f.put(t, 0, entry(t, f.spec(same.Domain, 1, "/other"), "prod"), false)
	last = round(t, a, last, false)
	tab := f.table(t, 0)
	if e := tab[s.Domain]; e.Gen.Version != 2 {
		t.Fatalf("a newer differing entry was replaced in the first round that saw it: %+v", e)
	}
	if e := tab[same.Domain]; e.Origins[0].Path != "/good" {
		t.Fatalf("an entry differing under the desired generation was kept: %+v", e)
	}
	if r := last[f.edges[0].Edge.ID]; !slices.Equal(r.Differing, []string{"d.sync.test@1700000000000.2"}) || r.Held["in-flight"] != 1 {
		t.Fatalf("report differing %v, held %v", r.Differing, r.Held)
	}

	// Another change arrives before the next round: still in flight.
	newer(3)
	last = round(t, a, last, false)
	if e := f.table(t, 0)[s.Domain]; e.Gen.Version != 3 {
		t.Fatalf("an entry differing under a generation seen once was replaced: %+v", e)
	}
	last = round(t, a, last, false)
	if e := f.table(t, 0)[s.Domain]; e.Gen != s.Gen() || e.Origins[0].Path != "/good" {
		t.Fatalf("an entry differing in two rounds in a row was kept: %+v", e)
	}
	if r := last[f.edges[0].Edge.ID]; !slices.Contains(r.Drift, "differs") || len(r.Differing) != 0 {
		t.Fatalf("report %+v, want differs healed", r)
	}
}

// A control plane without an id (the flag not set: entries without
// owner, as before owners existed) finds its edges as desired after one
// round: no entry is adopted again and again; nor is a distribution
// created by a worker whose clock ran ahead forced again and again.
func TestEdgeSyncWithoutIDIsSteady(t *testing.T) {
	f := startSyncEdges(t, 1)
	d := &fakeDesired{}
	skewed := f.spec("skewed.sync.test", 1, "/prod")
	skewed.Created = time.Now().Add(time.Hour).UnixMilli()
	d.set(append(f.specs(2, "/prod"), skewed))
	a := f.sync("", f.inventory(t), d)
	last := round(t, a, nil, false)
	for range 2 {
		last = round(t, a, last, false)
		if r := last[f.edges[0].Edge.ID]; len(r.Drift) != 0 {
			t.Fatalf("a round after the fill found drift %v", r.Drift)
		}
	}
	if n := owned(f.table(t, 0), ""); n != 3 {
		t.Fatalf("%d entries without owner, want 3", n)
	}
}

type failingDesired struct{}

func (failingDesired) DesiredSites(context.Context) (Desired, error) {
	return Desired{}, errors.New("visibility unavailable")
}

// A desired state that cannot be read fails the round before any edge is
// asked anything: nothing is deleted on an unknown desired state.
func TestEdgeSyncFailedDesiredReadTouchesNothing(t *testing.T) {
	fe, inv := newFakeEdge(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	a := &EdgeSync{Inventory: inv, Edges: edge.NewClient(edge.Options{}), Desired: failingDesired{}}
	var ts testsuite.WorkflowTestSuite
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.SyncEdges, SyncEdgesInput{}, nil)
	if err == nil || !strings.Contains(err.Error(), "visibility unavailable") {
		t.Fatalf("round error %v, want the desired state's", err)
	}
	if n := fe.count(""); n != 0 {
		t.Fatalf("the edge got %d requests", n)
	}
}

// sameContent compares every field of a site table entry but its
// generation and owner: a field added to connector.Site (or its
// referrer) fails this test until sameContent knows it.
func TestSameContentCoversSite(t *testing.T) {
	if n, m := reflect.TypeFor[connector.Site]().NumField(), reflect.TypeFor[connector.Referrer]().NumField(); n != 10 || m != 3 {
		t.Fatalf("connector.Site has %d fields, Referrer %d: teach sameContent (and this test) the new ones", n, m)
	}
	base := connector.Site{Name: "a.test", Hosts: []string{"a.test", "b.test"}, Gen: connector.Generation{Created: 1, Version: 1},
		Origins: []connector.SiteOrigin{{Path: "/p"}}, Referrer: &connector.Referrer{Type: "WHITELIST", Patterns: []string{"x"}}, Owner: "prod"}
	same := base
	same.Gen, same.Owner, same.Hosts = connector.Generation{Created: 2, Version: 5}, "", []string{"b.test", "a.test"}
	if !sameContent(base, same) {
		t.Fatal("generation, owner or host order made two entries differ")
	}
	for name, change := range map[string]func(*connector.Site){
		"hosts":    func(s *connector.Site) { s.Hosts = []string{"a.test"} },
		"origins":  func(s *connector.Site) { s.Origins = []connector.SiteOrigin{{Path: "/q"}} },
		"forward":  func(s *connector.Site) { s.ForwardRequestHost = true },
		"ttl":      func(s *connector.Site) { s.TTL = 60 },
		"suspend":  func(s *connector.Site) { s.Suspended = true },
		"referrer": func(s *connector.Site) { s.Referrer = &connector.Referrer{Type: "WHITELIST", Patterns: []string{"y"}} },
		"no rule":  func(s *connector.Site) { s.Referrer = nil },
		"cookies":  func(s *connector.Site) { s.Cache = &connector.CachePolicy{Cookies: []string{"sid"}} },
		"private":  func(s *connector.Site) { s.Cache = &connector.CachePolicy{CachePrivate: true} },
		"empty": func(s *connector.Site) {
			s.Referrer = &connector.Referrer{Type: "WHITELIST", Patterns: []string{"x"}, AllowEmpty: true}
		},
	} {
		other := base
		other.Hosts = slices.Clone(base.Hosts)
		change(&other)
		if sameContent(base, other) {
			t.Errorf("%s: a changed entry compares the same", name)
		}
	}
}

// metricValue is the value of series (name{labels} as the text format
// writes it) on the process's /metrics; 0 when absent.
func metricValue(t *testing.T, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// A restart of varnishd (its cache is in memory: gone) changes nothing of
// the edge's configuration: the connector keeps the site table, the sync
// puts back only the VCL the restarted varnishd booted without, and every
// site is served from its own origin again.
func TestEdgeSyncVarnishdRestartKeepsTable(t *testing.T) {
	f := startSyncEdges(t, 1)
	specs := f.specs(5, "/prod")
	d := &fakeDesired{}
	d.set(specs)
	a := f.sync("prod", f.inventory(t), d)
	last := round(t, a, nil, false)
	before := last[f.edges[0].Edge.ID].TableDigest
	f.edges[0].Restart(t)
	last = round(t, a, last, false)
	r := last[f.edges[0].Edge.ID]
	if r.TableDigest != before {
		t.Fatalf("table digest %s after the varnishd restart, %s before", r.TableDigest, before)
	}
	for _, reason := range []string{"missing", "stale", "orphan", "ahead", "differs"} {
		if slices.Contains(r.Drift, reason) {
			t.Fatalf("drift %v after a varnishd restart: the site table was not touched", r.Drift)
		}
	}
	for _, s := range specs {
		if p, _ := f.fetch(t, 0, s.Domain, "/after.js"); p != "/prod/after.js" {
			t.Fatalf("%s after the varnishd restart fetched %q, want /prod/after.js", s.Domain, p)
		}
	}
}
