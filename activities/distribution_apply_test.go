package activities

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// applyCreated is the creation time (epoch ms) of the test distribution:
// long past, so its generations are never ahead of the clock.
const applyCreated = 1_700_000_000_000

// applyCP is the control plane the tests' ApplySite runs as.
const applyCP = "cp-apply"

// applyEdges are the sync tests' real edges (syncEdges: varnishd and
// connector, empty tables, one test origin), driven by ApplySite.
type applyEdges struct{ *syncEdges }

func startApplyEdges(t *testing.T, n int) *applyEdges { return &applyEdges{startSyncEdges(t, n)} }

// spec is distribution a.apply.test at version, fetching from the test
// origin under path (suspended when suspended).
func (f *applyEdges) spec(version int, path string, suspended bool) distribution.SiteSpec {
	return distribution.SiteSpec{Domain: "a.apply.test", Version: version, Created: applyCreated, Suspended: suspended, Config: distribution.Config{
		UseOrigin: "Y", Origins: []distribution.Origin{{Origin: f.origin.Host, Port: f.origin.Port, OriginPath: path}},
	}}
}

// activity is the Distribution activities of control plane applyCP over
// the edges at indexes (drain: marked Drain).
func (f *applyEdges) activity(t *testing.T, indexes []int, drain ...int) *Distribution {
	t.Helper()
	var list []inventory.Edge
	for _, i := range indexes {
		e := f.edges[i].Edge
		for _, d := range drain {
			e.Drain = e.Drain || d == i
		}
		list = append(list, e)
	}
	inv, err := inventory.New(list)
	if err != nil {
		t.Fatal(err)
	}
	return &Distribution{Inventory: inv, Edges: f.client, ControlPlane: applyCP,
		DefaultOrigin: net.JoinHostPort(f.origin.Host, strconv.Itoa(f.origin.Port))}
}

func apply(t *testing.T, a *Distribution, spec distribution.SiteSpec) error {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	return runActivity(t, ts.NewTestActivityEnvironment(), a.ApplySite, ApplySiteInput{Spec: spec}, nil)
}

// held is edge i's entry for name (ok false: none).
func (f *applyEdges) held(t *testing.T, i int, name string) (connector.Site, bool) {
	t.Helper()
	st, err := f.client.Table(context.Background(), f.edges[i].Edge)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return connector.Site{}, false
}

// requireGen fails unless edge i holds name at version v, owned by applyCP.
func (f *applyEdges) requireGen(t *testing.T, i int, v int) connector.Site {
	t.Helper()
	s, ok := f.held(t, i, "a.apply.test")
	if !ok || s.Gen != (connector.Generation{Created: applyCreated, Version: v}) || s.Owner != applyCP {
		t.Fatalf("edge %d holds %+v (present %v), want version %d owned by %s", i, s, ok, v, applyCP)
	}
	return s
}

// plant stores s on edge i with force, as drift (an operator, a restore
// of an old backup, a bug) would.
func (f *applyEdges) plant(t *testing.T, i int, s connector.Site) {
	t.Helper()
	if res, err := f.client.PutSite(context.Background(), f.edges[i].Edge, s, true); err != nil || !res.Applied {
		t.Fatalf("plant on edge %d: %+v, %v", i, res, err)
	}
}

func (f *applyEdges) entry(t *testing.T, spec distribution.SiteSpec, owner string) connector.Site {
	t.Helper()
	e, err := EntryOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	e.Owner = owner
	return e
}

// fetch GETs path of a.apply.test through edge i: the origin path it came
// from and X-Cache.
func (f *applyEdges) fetch(t *testing.T, i int, path string) (originPath, cache string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+f.edges[i].Edge.Address+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a.apply.test"
	resp, err := (&http.Transport{Proxy: nil}).RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on edge %d: %d", path, i, resp.StatusCode)
	}
	return resp.Header.Get("X-Origin-Path"), resp.Header.Get("X-Cache")
}

// A distribution's edges are the worker's serving edges when a change is
// applied: an edge that left the inventory (or drains) is neither
// refused nor touched, and an edge added later gets the next change.
func TestApplySiteTargetsTheInventoryOfTheChange(t *testing.T) {
	f := startApplyEdges(t, 2)
	if err := apply(t, f.activity(t, []int{0, 1}), f.spec(1, "/v1", false)); err != nil {
		t.Fatal(err)
	}
	f.requireGen(t, 0, 1)
	f.requireGen(t, 1, 1)

	// Edge 1 leaves the inventory: a patch, a suspend and a resume each
	// reach edge 0 and leave edge 1 as it was.
	one := f.activity(t, []int{0})
	for v, spec := range []distribution.SiteSpec{f.spec(2, "/v2", false), f.spec(3, "/v2", true), f.spec(4, "/v2", false)} {
		if err := apply(t, one, spec); err != nil {
			t.Fatalf("change %d with edge 1 out of the inventory: %v", v+2, err)
		}
		f.requireGen(t, 0, v+2)
	}
	f.requireGen(t, 1, 1)

	// Draining is out as well.
	if err := apply(t, f.activity(t, []int{0, 1}, 1), f.spec(5, "/v2", false)); err != nil {
		t.Fatal(err)
	}
	f.requireGen(t, 0, 5)
	f.requireGen(t, 1, 1)

	// Back in the inventory: the next change reaches it.
	if err := apply(t, f.activity(t, []int{0, 1}), f.spec(6, "/v3", false)); err != nil {
		t.Fatal(err)
	}
	f.requireGen(t, 0, 6)
	if s := f.requireGen(t, 1, 6); s.Origins[0].Path != "/v3" {
		t.Fatalf("edge 1 origin %+v, want path /v3", s.Origins)
	}
}

// An entry planted under the distribution's name — created ahead of the
// clock, or of the distribution's own life with a version it never gave
// — does not keep the owner's change out: the change is put with force.
func TestApplySiteOverwritesPlantedEntries(t *testing.T) {
	f := startApplyEdges(t, 1)
	a := f.activity(t, []int{0})
	if err := apply(t, a, f.spec(1, "/v1", false)); err != nil {
		t.Fatal(err)
	}
	future := f.spec(1, "/planted", false)
	future.Created = time.Now().Add(24 * time.Hour).UnixMilli()
	sameLife := f.spec(99, "/planted", false)
	for name, planted := range map[string]connector.Site{
		"ahead of the clock, unowned": f.entry(t, future, ""),
		"ahead of the clock, ours":    f.entry(t, future, applyCP),
		// No control plane writes ahead of the clock: the owner it names
		// is as planted as its generation (the edge sync agrees).
		"ahead of the clock, another owner": f.entry(t, future, "cp-other"),
		"same life, newer version":          f.entry(t, sameLife, applyCP),
	} {
		f.plant(t, 0, planted)
		if err := apply(t, a, f.spec(2, "/v2", false)); err != nil {
			t.Fatalf("%s: the owner's change: %v", name, err)
		}
		if s := f.requireGen(t, 0, 2); s.Origins[0].Path != "/v2" {
			t.Fatalf("%s: edge holds %+v, want the owner's /v2", name, s.Origins)
		}
		if p, _ := f.fetch(t, 0, "/x-"+strconv.Itoa(len(name))); !strings.HasPrefix(p, "/v2/") {
			t.Fatalf("%s: fetched from %s, want /v2/...", name, p)
		}
	}
	// A planted entry also gives way to the owner's delete.
	f.plant(t, 0, f.entry(t, future, ""))
	del := f.spec(3, "/v2", false)
	del.Deleted = true
	if err := apply(t, a, del); err != nil {
		t.Fatalf("delete over a planted entry: %v", err)
	}
	if s, ok := f.held(t, 0, "a.apply.test"); ok {
		t.Fatalf("edge keeps %+v after the delete", s)
	}
}

// An entry of another control plane under the name is a final refusal
// naming the edge and that owner (two control planes must not take a
// domain from each other on an edge); its entry stays. A newer life of
// the domain refuses a put of an older one; a delete of the older one is
// done.
func TestApplySiteRefusesOtherOwnersAndNewerLives(t *testing.T) {
	f := startApplyEdges(t, 1)
	a := f.activity(t, []int{0})
	other := f.spec(7, "/other", false)
	other.Created = time.Now().Add(-time.Hour).UnixMilli()

	f.plant(t, 0, f.entry(t, other, "cp-other"))
	err := apply(t, a, f.spec(1, "/v1", false))
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != ErrBadSite || !ae.NonRetryable() {
		t.Fatalf("put over another control plane's entry: %v, want a non-retryable %s", err, ErrBadSite)
	}
	for _, want := range []string{f.edges[0].Edge.ID, `second control plane ("cp-other")`} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not name %s", err, want)
		}
	}
	if s, _ := f.held(t, 0, "a.apply.test"); s.Owner != "cp-other" || s.Gen != other.Gen() {
		t.Fatalf("edge holds %+v, want cp-other's entry kept", s)
	}
	// Its delete of the domain leaves the other's entry and is done.
	gone := f.spec(2, "/v1", false)
	gone.Deleted = true
	if err := apply(t, a, gone); err != nil {
		t.Fatalf("delete beside another control plane's entry: %v, want done", err)
	}
	if s, _ := f.held(t, 0, "a.apply.test"); s.Owner != "cp-other" {
		t.Fatalf("edge holds %+v after our delete, want cp-other's entry kept", s)
	}

	// A newer life of the domain, this control plane's.
	f.plant(t, 0, f.entry(t, other, applyCP))
	if err := apply(t, a, f.spec(1, "/v1", false)); !errors.As(err, &ae) || !ae.NonRetryable() || !strings.Contains(err.Error(), "later life") {
		t.Fatalf("put of an older life: %v, want a non-retryable refusal", err)
	}
	del := f.spec(2, "/v1", false)
	del.Deleted = true
	if err := apply(t, a, del); err != nil {
		t.Fatalf("delete of an older life: %v, want done", err)
	}
	if s, _ := f.held(t, 0, "a.apply.test"); s.Gen != other.Gen() {
		t.Fatalf("edge holds %+v, want the newer life kept", s)
	}
}

// A change whose content equals what the edge holds (a new generation
// only: a rollback to the same config, a re-apply) bans nothing: a cached
// object stays a HIT. A change of content bans the hosts.
func TestApplySiteBansOnlyChangedContent(t *testing.T) {
	f := startApplyEdges(t, 1)
	a := f.activity(t, []int{0})
	if err := apply(t, a, f.spec(1, "/v1", false)); err != nil {
		t.Fatal(err)
	}
	f.fetch(t, 0, "/obj")
	if _, c := f.fetch(t, 0, "/obj"); c != "HIT" {
		t.Fatalf("second GET: %s, want HIT", c)
	}
	if err := apply(t, a, f.spec(2, "/v1", false)); err != nil {
		t.Fatal(err)
	}
	f.requireGen(t, 0, 2)
	if _, c := f.fetch(t, 0, "/obj"); c != "HIT" {
		t.Fatalf("after a re-put of equal content: %s, want HIT (nothing banned)", c)
	}
	if err := apply(t, a, f.spec(3, "/v2", false)); err != nil {
		t.Fatal(err)
	}
	if p, c := f.fetch(t, 0, "/obj"); c == "HIT" || !strings.HasPrefix(p, "/v2/") {
		t.Fatalf("after a change of origin path: %s from %s, want a MISS from /v2/obj", c, p)
	}
}
