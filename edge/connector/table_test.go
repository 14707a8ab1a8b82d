package connector

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// testSite is a valid site name with one host (its name) on origin
// 127.0.0.1:port.
func testSite(name string, port int, gen Generation) Site {
	return Site{Name: name, Hosts: []string{name}, Gen: gen,
		Origins: []SiteOrigin{{Origin: Origin{Scheme: "http", Host: "127.0.0.1", Port: port}}}}
}

func openTable(t *testing.T, o TableOptions) *Table {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	tb, err := OpenTable(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	return tb
}

func mustPut(t *testing.T, tb *Table, s Site, force bool) PutResult {
	t.Helper()
	res, err := tb.Put(s, force)
	if err != nil {
		t.Fatalf("put %s: %v", s.Name, err)
	}
	return res
}

// A table with a state file survives a restart: a new Table on the same
// file holds the same sites (same digest), the same closed sites, and
// says how many it loaded; the file is locked while a table holds it.
func TestTablePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "sites.json")
	tb := openTable(t, TableOptions{StateFile: path})
	if st := tb.State(); st.Loaded != 0 || len(st.Sites) != 0 {
		t.Fatalf("a table without a file: %+v", st)
	}
	for i := range 3 {
		s := testSite(fmt.Sprintf("s%d.test", i), 8000+i, Generation{Created: 10, Version: 1})
		s.Hosts = append(s.Hosts, fmt.Sprintf("www.s%d.test", i))
		s.Owner = "cp-a"
		mustPut(t, tb, s, false)
	}
	if res, err := tb.Delete("s1.test", Generation{Created: 10, Version: 2}, false); err != nil || !res.Applied || !res.Changed {
		t.Fatalf("delete: %+v %v", res, err)
	}
	before := tb.State()
	if len(before.Sites) != 2 || len(before.Closed) != 1 || before.Closed[0].Owner != "cp-a" ||
		!reflect.DeepEqual(before.Closed[0].Hosts, []string{"s1.test", "www.s1.test"}) {
		t.Fatalf("state before the restart: %+v", before)
	}
	if _, err := OpenTable(TableOptions{StateFile: path}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a second table on a file in use: %v", err)
	}
	tb.Close()
	if _, err := tb.Put(testSite("late.test", 1, Generation{Created: 1}), false); !errors.Is(err, ErrTableClosed) {
		t.Fatalf("a put after Close: %v", err)
	}

	again := openTable(t, TableOptions{StateFile: path})
	after := again.State()
	if after.Digest != before.Digest || after.Loaded != 2 || !reflect.DeepEqual(after.Sites, before.Sites) {
		t.Fatalf("after the restart: %+v, before %+v", after, before)
	}
	if !reflect.DeepEqual(after.Closed, before.Closed) {
		t.Fatalf("closed sites after the restart: %+v, before %+v", after.Closed, before.Closed)
	}
	if _, rt := again.route("www.s1.test"); rt != routeClosed {
		t.Fatalf("a closed site's host after the restart: %v", rt)
	}
	if res, _ := again.Put(testSite("s1.test", 1, Generation{Created: 10, Version: 1}), false); res.Applied || !res.CurrentClosed {
		t.Fatalf("a late retry after the restart: %+v", res)
	}
}

// A state file that is not a valid table stops the start with an error
// naming the file; a missing one is an empty table.
func TestTableRefusesBadStateFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":   "{not json",
		"truncated": `{"version":1,"sites":[{"name":"a.test"`,
		"version":   `{"version":2,"sites":[]}`,
		"bad site":  `{"version":1,"sites":[{"name":"a.test","hosts":["A B"],"gen":{"created":1,"version":1},"origins":[{"Scheme":"http","Host":"127.0.0.1","Port":80}]}]}`,
		"host twice": `{"version":1,"sites":[` +
			`{"name":"a.test","hosts":["x.test"],"gen":{"created":1,"version":1},"origins":[{"Scheme":"http","Host":"127.0.0.1","Port":80}]},` +
			`{"name":"b.test","hosts":["x.test"],"gen":{"created":1,"version":1},"origins":[{"Scheme":"http","Host":"127.0.0.1","Port":80}]}]}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tb, err := OpenTable(TableOptions{StateFile: path})
		if err == nil {
			tb.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: the error does not name the file: %v", name, err)
		}
		if _, err := New(Options{StateFile: path}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: New: %v", name, err)
		}
	}
}

// Changed compares what visitors get, not generations or owners.
func TestPutComparesContent(t *testing.T) {
	tb := NewTable()
	s := testSite("c.test", 80, Generation{Created: 1, Version: 1})
	s.Hosts = []string{"c.test", "www.c.test"}
	if res := mustPut(t, tb, s, false); !res.Applied || !res.New || !res.Changed || res.Current == nil || *res.Current != s.Gen {
		t.Fatalf("first put: %+v", res)
	}
	same := s
	same.Gen.Version, same.Owner = 2, "cp-b"
	same.Hosts = []string{"www.c.test", "c.test"}
	if res := mustPut(t, tb, same, false); !res.Applied || res.New || res.Changed || res.ReferrerChanged || res.CurrentOwner != "cp-b" {
		t.Fatalf("equal content under a new generation: %+v", res)
	}
	for i, change := range []func(*Site){
		func(s *Site) { s.TTL = 30 },
		func(s *Site) { s.Suspended = true },
		func(s *Site) { s.ForwardRequestHost = true },
		func(s *Site) { s.Hosts = []string{"c.test"} },
		func(s *Site) { s.Origins = []SiteOrigin{{Origin: s.Origins[0].Origin, Path: "/p"}} },
		func(s *Site) { s.Referrer = &Referrer{Type: "WHITELIST", Patterns: []string{"x"}} },
	} {
		next := same
		next.Gen.Version = 3 + i
		change(&next)
		if res := mustPut(t, tb, next, false); !res.Applied || !res.Changed {
			t.Errorf("change %d: %+v", i, res)
		}
		same.Gen.Version = next.Gen.Version
		mustPut(t, tb, same, false) // back to the common content
	}
}

// force puts over a far-future generation, another owner's entry and a
// newer closed entry; it still refuses another site's host. A forced
// delete closes whatever generation the table holds.
func TestForce(t *testing.T) {
	tb := NewTable()
	planted := testSite("f.test", 80, Generation{Created: 9e15, Version: 1})
	planted.Owner = "planted"
	mustPut(t, tb, planted, false)
	want := testSite("f.test", 81, Generation{Created: 1_700_000_000_000, Version: 4})
	want.Owner = "cp-a"
	res := mustPut(t, tb, want, false)
	if res.Applied || res.Current == nil || *res.Current != planted.Gen || res.CurrentOwner != "planted" || res.CurrentClosed {
		t.Fatalf("a put under the planted generation: %+v", res)
	}
	if res = mustPut(t, tb, want, true); !res.Applied || !res.Changed || res.New || *res.Current != want.Gen || res.CurrentOwner != "cp-a" {
		t.Fatalf("forced put: %+v", res)
	}
	if s, _ := tb.Lookup("f.test"); s.Gen != want.Gen || s.Origins[0].Port != 81 {
		t.Fatalf("served after the forced put: %+v", s)
	}

	other := testSite("o.test", 80, Generation{Created: 2_000_000_000_000, Version: 1})
	other.Owner = "cp-b"
	mustPut(t, tb, other, false)
	mine := testSite("o.test", 82, Generation{Created: 1_000, Version: 1})
	mine.Owner = "cp-a"
	if res = mustPut(t, tb, mine, true); !res.Applied || res.CurrentOwner != "cp-a" {
		t.Fatalf("forced put over another owner: %+v", res)
	}

	if res, _ = tb.Delete("o.test", Generation{Created: 9e15}, false); !res.Applied {
		t.Fatalf("delete: %+v", res)
	}
	if res = mustPut(t, tb, mine, false); res.Applied || !res.CurrentClosed || *res.Current != (Generation{Created: 9e15}) {
		t.Fatalf("a put under a far-future delete: %+v", res)
	}
	if res = mustPut(t, tb, mine, true); !res.Applied || !res.New || res.CurrentClosed {
		t.Fatalf("forced put over a closed entry: %+v", res)
	}
	if len(tb.State().Closed) != 0 {
		t.Fatalf("the closed entry stayed: %+v", tb.State().Closed)
	}

	thief := testSite("t.test", 80, Generation{Created: 1, Version: 1})
	thief.Hosts = []string{"t.test", "f.test"}
	if _, err := tb.Put(thief, true); !errors.Is(err, ErrHostTaken) {
		t.Fatalf("a forced put taking another site's host: %v", err)
	}

	mustPut(t, tb, planted, true)
	if res, _ = tb.Delete("f.test", want.Gen, false); res.Applied || *res.Current != planted.Gen {
		t.Fatalf("a delete under the planted generation: %+v", res)
	}
	if res, _ = tb.Delete("f.test", want.Gen, true); !res.Applied || !res.Changed || !res.CurrentClosed || *res.Current != want.Gen || res.CurrentOwner != "planted" {
		t.Fatalf("forced delete: %+v", res)
	}
	if _, rt := tb.route("f.test"); rt != routeClosed {
		t.Fatalf("the forced delete's host: %v", rt)
	}
}

// Hosts of a closed site answer 404 "closed" even when the edge names a
// default origin, until a live site takes them; suspended sites answer
// 404. Nothing reaches the origin.
func TestClosedAndSuspendedAnswer404(t *testing.T) {
	def := startOrigin(t, "default", "127.0.0.1", 0, nil)
	o := startOrigin(t, "site", "127.0.0.1", 0, nil)
	_, base := newConnector(t, Options{AllowLoopback: []string{port(def), port(o)}})
	s := testSite("gone.test", int(o.Addr.Port()), Generation{Created: 5, Version: 1})
	s.Hosts = []string{"gone.test", "alias.gone.test"}
	var res PutResult
	if code := admin(t, base, http.MethodPut, "gone.test", s, &res); code != 200 || !res.Applied {
		t.Fatalf("put: %d %+v", code, res)
	}
	withDefault := func(host string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/x", nil)
		req.Host = host
		req.Header.Set(HeaderOrigins, "http://127.0.0.1:"+port(def))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := withDefault("other.test"); resp.StatusCode != 200 || !strings.Contains(body, "served by default") {
		t.Fatalf("a host without a site: %d %q", resp.StatusCode, body)
	}
	if code := admin(t, base, http.MethodDelete, "gone.test?created=5&version=2", nil, &res); code != 200 || !res.Applied || !res.CurrentClosed {
		t.Fatalf("delete: %d %+v", code, res)
	}
	defBefore := def.requests.Load()
	for _, h := range []string{"gone.test", "ALIAS.gone.test:8080"} {
		resp, body := withDefault(h)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "closed") || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("closed site's host %s: %d %q", h, resp.StatusCode, body)
		}
	}
	if n := def.requests.Load() - defBefore; n != 0 {
		t.Fatalf("the default origin got %d requests for a closed site", n)
	}

	susp := testSite("susp.test", int(o.Addr.Port()), Generation{Created: 6, Version: 1})
	susp.Suspended = true
	admin(t, base, http.MethodPut, "susp.test", susp, &res)
	if resp, body := withDefault("susp.test"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "suspended") {
		t.Fatalf("suspended site: %d %q", resp.StatusCode, body)
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("the site's origin got %d requests", n)
	}

	taker := testSite("new.test", int(o.Addr.Port()), Generation{Created: 7, Version: 1})
	taker.Hosts = []string{"new.test", "alias.gone.test"}
	if code := admin(t, base, http.MethodPut, "new.test", taker, &res); code != 200 || !res.Applied {
		t.Fatalf("a site taking a closed site's host: %d %+v", code, res)
	}
	if resp, body := withDefault("alias.gone.test"); resp.StatusCode != 200 || !strings.Contains(body, "served by site") {
		t.Fatalf("the host taken over: %d %q", resp.StatusCode, body)
	}
	if resp, _ := withDefault("gone.test"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the closed site's other host: %d", resp.StatusCode)
	}
	if code := admin(t, base, http.MethodPut, "new.test?force=yes", taker, nil); code != http.StatusBadRequest {
		t.Fatalf("force=yes: %d", code)
	}
}

// Closed sites expire after the retention and are capped in number,
// oldest first; both survive in the state file.
func TestClosedExpiryAndCap(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	path := filepath.Join(t.TempDir(), "sites.json")
	tb := openTable(t, TableOptions{StateFile: path, ClosedRetention: time.Hour, MaxClosed: 3, now: clock})
	for i := range 5 {
		name := fmt.Sprintf("c%d.test", i)
		mustPut(t, tb, testSite(name, 80, Generation{Created: 1, Version: 1}), false)
		if _, err := tb.Delete(name, Generation{Created: 1, Version: 2}, false); err != nil {
			t.Fatal(err)
		}
		advance(10 * time.Minute)
	}
	st := tb.State()
	if st.Evicted != 2 || len(st.Closed) != 3 || st.Closed[0].Name != "c2.test" {
		t.Fatalf("after 5 deletes with a cap of 3: evicted %d, closed %+v", st.Evicted, st.Closed)
	}
	if _, rt := tb.route("c0.test"); rt != routeNone {
		t.Fatalf("an evicted site's host: %v", rt)
	}
	if _, rt := tb.route("c4.test"); rt != routeClosed {
		t.Fatalf("a closed site's host: %v", rt)
	}
	// c2 was closed at 0:20, c3 at 0:30, c4 at 0:40; at 1:25 c2 is gone.
	advance(35 * time.Minute)
	if st := tb.State(); len(st.Closed) != 2 || st.Closed[0].Name != "c3.test" {
		t.Fatalf("at 1:25: %+v", st.Closed)
	}
	if _, rt := tb.route("c2.test"); rt != routeNone {
		t.Fatalf("an expired closed site's host: %v", rt)
	}
	// Expired, it no longer stops an older change: why the retention must
	// outlast every retry.
	if res := mustPut(t, tb, testSite("c2.test", 80, Generation{Created: 1, Version: 1}), false); !res.Applied {
		t.Fatalf("a put after the expiry: %+v", res)
	}
	tb.Close()
	again := openTable(t, TableOptions{StateFile: path, ClosedRetention: time.Hour, MaxClosed: 3, now: clock})
	if st := again.State(); len(st.Closed) != 2 || len(st.Sites) != 1 || st.Loaded != 1 {
		t.Fatalf("after the restart: %+v", st)
	}
	advance(time.Hour)
	if st := again.State(); len(st.Closed) != 0 {
		t.Fatalf("an hour later: %+v", st.Closed)
	}
}

// A change the state file cannot take is refused with ErrNotSaved (500
// on the admin protocol) and leaves the table as it was; the next change
// that can be saved is.
func TestSaveFailureRefusesChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "sites.json")
	c, base := newConnector(t, Options{StateFile: path})
	s := testSite("a.test", 80, Generation{Created: 1, Version: 1})
	var res PutResult
	if code := admin(t, base, http.MethodPut, "a.test", s, &res); code != 200 || !res.Applied {
		t.Fatalf("put: %d %+v", code, res)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // the directory is now a file
		t.Fatal(err)
	}
	b := testSite("b.test", 80, Generation{Created: 1, Version: 1})
	if code := admin(t, base, http.MethodPut, "b.test", b, nil); code != http.StatusInternalServerError {
		t.Fatalf("a put that cannot be saved: %d", code)
	}
	if code := admin(t, base, http.MethodDelete, "a.test?created=1&version=2", nil, nil); code != http.StatusInternalServerError {
		t.Fatalf("a delete that cannot be saved: %d", code)
	}
	st := c.Table().State()
	if len(st.Sites) != 1 || st.Sites[0].Name != "a.test" || len(st.Closed) != 0 || st.SaveFailures != 2 {
		t.Fatalf("the table after failed saves: %+v", st)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if code := admin(t, base, http.MethodPut, "b.test", b, &res); code != 200 || !res.Applied || !res.New {
		t.Fatalf("the put retried: %d %+v", code, res)
	}
	saved, err := readStateFile(path)
	if err != nil || len(saved.sites) != 2 {
		t.Fatalf("the file after the retry: %v %v", saved, err)
	}
}

// Concurrent changes are each saved before they are answered: a table
// opened on the file afterwards holds all of them.
func TestConcurrentPutsAreSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sites.json")
	tb := openTable(t, TableOptions{StateFile: path})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			name := fmt.Sprintf("p%03d.test", i)
			if _, err := tb.Put(testSite(name, 80+i, Generation{Created: 1, Version: 1}), false); err != nil {
				errs <- err
				return
			}
			if i%4 == 0 {
				if _, err := tb.Delete(name, Generation{Created: 1, Version: 2}, false); err != nil {
					errs <- err
				}
			}
			if _, rt := tb.route(name); rt == routeNone {
				errs <- fmt.Errorf("%s: answered before it is served", name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := tb.State()
	if len(st.Sites) != 150 || len(st.Closed) != 50 {
		t.Fatalf("%d sites, %d closed", len(st.Sites), len(st.Closed))
	}
	saved, err := readStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tb.Close()
	again := openTable(t, TableOptions{StateFile: path})
	if got := again.State(); got.Digest != st.Digest || len(got.Closed) != 50 || len(saved.sites) != 150 {
		t.Fatalf("reopened: %d sites digest %s (want %s), %d closed", len(got.Sites), got.Digest, st.Digest, len(got.Closed))
	}
}

// The admin protocol's force=1 on PUT and DELETE.
func TestForceOverAdmin(t *testing.T) {
	_, base := newConnector(t, Options{})
	planted := testSite("f.test", 80, Generation{Created: 9e15, Version: 1})
	planted.Owner = "planted"
	var res PutResult
	if code := admin(t, base, http.MethodPut, "f.test", planted, &res); code != 200 || !res.Applied {
		t.Fatalf("planted: %d %+v", code, res)
	}
	want := testSite("f.test", 81, Generation{Created: 1_700_000_000_000, Version: 1})
	want.Owner = "cp-a"
	if code := admin(t, base, http.MethodPut, "f.test", want, &res); code != 200 || res.Applied || res.CurrentOwner != "planted" {
		t.Fatalf("put: %d %+v", code, res)
	}
	if code := admin(t, base, http.MethodPut, "f.test?force=1", want, &res); code != 200 || !res.Applied || res.CurrentOwner != "cp-a" {
		t.Fatalf("forced put: %d %+v", code, res)
	}
	admin(t, base, http.MethodPut, "f.test?force=1", planted, &res)
	if code := admin(t, base, http.MethodDelete, "f.test?created=1700000000000&version=2", nil, &res); code != 200 || res.Applied {
		t.Fatalf("delete: %d %+v", code, res)
	}
	if code := admin(t, base, http.MethodDelete, "f.test?created=1700000000000&version=2&force=1", nil, &res); code != 200 || !res.Applied || !res.CurrentClosed {
		t.Fatalf("forced delete: %d %+v", code, res)
	}
	if code := admin(t, base, http.MethodDelete, "f.test?created=1&version=2&force=true", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("force=true: %d", code)
	}
}

// The writer removes expired closed sites from the state file with no
// other change coming.
func TestExpirySweepIsSaved(t *testing.T) {
	defer func(d time.Duration) { sweepEvery = d }(sweepEvery)
	sweepEvery = 10 * time.Millisecond
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	path := filepath.Join(t.TempDir(), "sites.json")
	tb := openTable(t, TableOptions{StateFile: path, ClosedRetention: time.Hour, now: clock})
	if _, err := tb.Delete("x.test", Generation{Created: 1}, false); err != nil {
		t.Fatal(err)
	}
	if d, err := readStateFile(path); err != nil || len(d.closed) != 1 {
		t.Fatalf("the file after the delete: %v %v", d, err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := readStateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.closed) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired closed site stayed in the file")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Puts into a 10,000-site table with a state file, 16 at a time (a
// control plane's sync): each waits for its write, writes are shared.
func BenchmarkPutWithStateFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "sites.json")
	tb, err := OpenTable(TableOptions{StateFile: path})
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	sites := make([]Site, 10000)
	for i := range sites {
		sites[i] = testSite(fmt.Sprintf("b%05d.test", i), 80, Generation{Created: 1, Version: 1})
	}
	if err := tb.Replace(sites); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			s := sites[int(i)%len(sites)]
			s.Gen.Version = int(i) + 1
			if _, err := tb.Put(s, false); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
