//go:build !unit

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// v1Reply is a /v1 answer: status, ETag and body.
type v1Reply struct {
	status int
	etag   string
	body   []byte
}

func (r v1Reply) decode(t *testing.T, out any) {
	t.Helper()
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
}

// v1 calls a distribution's /v1 route (path after the domain) as appKey,
// with If-Match ifMatch when not "" and X-Request-Id rid when not "".
func v1(t *testing.T, env *testenv.Env, method, domain, path, ifMatch, rid string, body any) v1Reply {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, env.API.URL+"/v1/appKeys/"+appKey+"/distributions/"+domain+path, rdr)
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if rid != "" {
		req.Header.Set("X-Request-Id", rid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return v1Reply{status: resp.StatusCode, etag: resp.Header.Get("ETag"), body: data}
}

// waitVersion waits until the distribution is at version n and in status.
func waitVersion(t *testing.T, env *testenv.Env, domain string, n int, status string) {
	t.Helper()
	eventually.WithinEvery(t, 60*time.Second, 50*time.Millisecond, func() error {
		r := v1(t, env, "GET", domain, "", "", "", nil)
		var d service.DistributionV1
		r.decode(t, &d)
		if r.status != 200 || d.Version != n || d.Status != status || r.etag != strconv.Quote(strconv.Itoa(n)) {
			return fmt.Errorf("%d %s: version %d %s, want %d %s", r.status, r.etag, d.Version, d.Status, n, status)
		}
		// Settled: every edge holds the one site version, no wave runs.
		if d.Edges == nil || d.Edges.Version < 1 || d.Edges.Wave != 0 || len(d.Edges.Edges) != 0 {
			return fmt.Errorf("version %d %s: per-edge versions %+v, want every edge on one", n, status, d.Edges)
		}
		return nil
	})
}

func versionsEnv(t *testing.T) (*testenv.Env, string, func(path string) map[string]any) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, "app-two": "secret-two"}
		c.DefaultOrigin = ""
	}})
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	originAt := func(path string) map[string]any {
		return map[string]any{"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": path}}}
	}
	create := originAt("/p1")
	for k, v := range map[string]any{"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST"} {
		create[k] = v
	}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	req, _ := http.NewRequest("POST", env.API.URL+"/v1.5/appKeys/"+appKey+"/distributions", strings.NewReader(mustJSON(map[string]any{"distributions": []any{create}})))
	req.Header.Set("Authorization", secret)
	req.Header.Set("X-Request-Id", "rid-create")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || len(created.Distributions) != 1 {
		t.Fatalf("create: %v %+v", err, created)
	}
	domain := created.Distributions[0].Domain
	waitVersion(t, env, domain, 1, "OPEN")
	return env, domain, originAt
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Every accepted change through either API is a version with the caller's
// appKey and request id; /v1 lists, shows and diffs them; a PATCH with a
// stale If-Match is 412; a dry run changes nothing; a rollback to each of
// the last 20 versions makes the edge serve that version again.
func TestDistributionVersionsAndRollback(t *testing.T) {
	start := time.Now()
	env, domain, originAt := versionsEnv(t)
	path := func(n int) string { return "/p" + strconv.Itoa(n) }

	// Versions 2..22: /v1 PATCHes with If-Match, each on the version before.
	for n := 2; n <= 22; n++ {
		r := v1(t, env, "PATCH", domain, "", strconv.Quote(strconv.Itoa(n-1)), "rid-"+strconv.Itoa(n), originAt(path(n)))
		var p service.Plan
		r.decode(t, &p)
		if r.status != 202 || p.Version != n || p.From != n-1 || r.etag != strconv.Quote(strconv.Itoa(n)) || len(p.Diff) != 1 || p.Diff[0].Path != "/origins/0/originPath" {
			t.Fatalf("PATCH to version %d = %d %s %s", n, r.status, r.etag, r.body)
		}
		waitVersion(t, env, domain, n, "OPEN")
	}
	// A stale If-Match is 412, in the /v1 envelope, and changes nothing.
	r := v1(t, env, "PATCH", domain, "", `"21"`, "", originAt("/stale"))
	var eb struct{ Code, Message, RequestID string }
	r.decode(t, &eb)
	if r.status != http.StatusPreconditionFailed || eb.Code != "PreconditionFailed" || !strings.Contains(eb.Message, "version 22") {
		t.Fatalf("stale If-Match = %d %s", r.status, r.body)
	}
	// A dry run answers the diff and changes nothing.
	r = v1(t, env, "PATCH", domain, "?dryRun=true", `"22"`, "", originAt("/dry"))
	var plan service.Plan
	r.decode(t, &plan)
	if r.status != 200 || !plan.DryRun || plan.From != 22 || plan.Version != 23 || len(plan.Diff) != 1 || plan.Diff[0].To != "/dry" {
		t.Fatalf("dry run = %d %s", r.status, r.body)
	}
	// NHN suspend and resume are versions too, with the caller.
	for i, step := range []struct{ route, rid, status string }{{"suspend", "rid-suspend", "SUSPEND"}, {"resume", "rid-resume", "OPEN"}} {
		req, _ := http.NewRequest("PUT", env.API.URL+"/v1.5/appKeys/"+appKey+"/distributions/"+step.route, strings.NewReader(mustJSON(map[string]any{"domains": []string{domain}})))
		req.Header.Set("Authorization", secret)
		req.Header.Set("X-Request-Id", step.rid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Header nhnHeader }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || !out.Header.IsSuccessful {
			t.Fatalf("%s: %v %+v", step.route, err, out.Header)
		}
		waitVersion(t, env, domain, 23+i, step.status)
	}

	var list struct{ Versions []service.VersionSummary }
	r = v1(t, env, "GET", domain, "/versions", "", "", nil)
	r.decode(t, &list)
	if r.status != 200 || r.etag != `"24"` || len(list.Versions) != 24 {
		t.Fatalf("versions = %d %s %s", r.status, r.etag, r.body)
	}
	for i, v := range list.Versions {
		n := 24 - i
		action, rid := distribution.ActionModify, "rid-"+strconv.Itoa(n)
		switch n {
		case 1:
			action, rid = distribution.ActionCreate, "rid-create"
		case 23:
			action, rid = distribution.ActionSuspend, "rid-suspend"
		case 24:
			action, rid = distribution.ActionResume, "rid-resume"
		}
		if v.N != n || v.Action != action || v.KeyID != appKey || v.RequestID != rid || v.At == 0 || v.Suspended != (n == 23) {
			t.Fatalf("version %d = %+v, want %s by %s", n, v, action, rid)
		}
		if wantChanged := n > 1 && n <= 22; (len(v.Changed) == 1) != wantChanged {
			t.Fatalf("version %d changed %v", n, v.Changed)
		}
	}
	var v2 distribution.Version
	if r = v1(t, env, "GET", domain, "/versions/2", "", "", nil); r.status != 200 {
		t.Fatalf("version 2 = %d %s", r.status, r.body)
	}
	r.decode(t, &v2)
	if v2.Config.Origins[0].OriginPath != path(2) || v2.Config.Region != "GLOBAL" {
		t.Fatalf("version 2 = %s", r.body)
	}
	var diff struct {
		From, To int
		Diff     []service.Change
	}
	v1(t, env, "GET", domain, "/versions/diff?from=2&to=5", "", "", nil).decode(t, &diff)
	if diff.From != 2 || diff.To != 5 || len(diff.Diff) != 1 || diff.Diff[0].From != path(2) || diff.Diff[0].To != path(5) {
		t.Fatalf("diff 2..5 = %+v", diff)
	}
	for _, bad := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/versions/99", nil, 404},
		{"GET", "/versions/x", nil, 400},
		{"GET", "/versions/diff?from=1&to=99", nil, 404},
		{"POST", "/rollback", map[string]any{"version": 99}, 400},
		{"POST", "/rollback", map[string]any{"version": 0}, 400},
	} {
		if r := v1(t, env, bad.method, domain, bad.path, "", "", bad.body); r.status != bad.status {
			t.Fatalf("%s %s = %d %s, want %d", bad.method, bad.path, r.status, r.body, bad.status)
		}
	}
	if r := v1(t, env, "GET", "nope.example", "/versions", "", "", nil); r.status != 404 {
		t.Fatalf("unknown domain = %d %s", r.status, r.body)
	}
	// Another appKey does not see the distribution.
	req, _ := http.NewRequest("GET", env.API.URL+"/v1/appKeys/app-two/distributions/"+domain+"/versions", nil)
	req.Header.Set("Authorization", "secret-two")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("another appKey: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A dry-run rollback changes nothing.
	r = v1(t, env, "POST", domain, "/rollback?dryRun=true", "", "", map[string]any{"version": 3})
	r.decode(t, &plan)
	if r.status != 200 || !plan.DryRun || plan.Version != 25 || plan.Diff[0].To != path(3) {
		t.Fatalf("dry-run rollback = %d %s", r.status, r.body)
	}
	waitVersion(t, env, domain, 24, "OPEN")

	// Roll back to each of the last 20 versions (5..24), oldest first.
	rollStart := time.Now()
	current := 24
	for n := 5; n <= 24; n++ {
		want := list.Versions[24-n]
		r := v1(t, env, "POST", domain, "/rollback", strconv.Quote(strconv.Itoa(current)), "rid-rb-"+strconv.Itoa(n), map[string]any{"version": n, "immediate": true})
		r.decode(t, &plan)
		if r.status != 202 || plan.Version != current+1 || plan.Suspended != want.Suspended {
			t.Fatalf("rollback to %d = %d %s", n, r.status, r.body)
		}
		current++
		status, wantPath := "OPEN", path(min(n, 22))
		if want.Suspended {
			status = "SUSPEND"
		}
		waitVersion(t, env, domain, current, status)
		got := edgeGet(t, env, 0, domain, "/rb"+strconv.Itoa(n)+".js", "")
		switch {
		case want.Suspended && got.StatusCode != 404:
			t.Fatalf("rolled back to suspended version %d: edge answers %d", n, got.StatusCode)
		case !want.Suspended && got.Header.Get("X-Origin-Path") != wantPath+"/rb"+strconv.Itoa(n)+".js":
			t.Fatalf("rolled back to %d: edge fetched %q, want %s", n, got.Header.Get("X-Origin-Path"), wantPath)
		}
	}
	var v44 distribution.Version
	v1(t, env, "GET", domain, "/versions/44", "", "", nil).decode(t, &v44)
	if v44.Action != distribution.ActionRollback || v44.RollbackOf != 24 || v44.RequestID != "rid-rb-24" {
		t.Fatalf("version 44 = %+v", v44)
	}
	t.Logf("20 rollbacks in %s (%s each); test %s", time.Since(rollStart).Round(time.Millisecond), (time.Since(rollStart) / 20).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	env.Replay(t, "distribution/"+appKey+"/"+domain, "distribution_versions")
}

// Two writers edit the same distribution with If-Match, each until it made
// editsPerWriter changes (50; $CDNFLOW_IFMATCH_EDITS, e.g. 500 for the
// issue's 2 × 500): a write on a stale version is 412 and the writer
// reads again; a write while another change runs is 409. No update is
// lost: every success is the version right after the one its writer read,
// each its own, and the final version is 1 + the successes.
func TestDistributionConcurrentWritersWithIfMatch(t *testing.T) {
	const writers = 2
	editsPerWriter := 50
	if n, err := strconv.Atoi(os.Getenv("CDNFLOW_IFMATCH_EDITS")); err == nil && n > 0 {
		editsPerWriter = n
	}
	env, domain, _ := versionsEnv(t)
	start := time.Now()
	var mu sync.Mutex
	made := map[int]string{} // version -> description
	var stale, busy int
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < editsPerWriter; {
				var d service.DistributionV1
				g := v1(t, env, "GET", domain, "", "", "", nil)
				g.decode(t, &d)
				desc := fmt.Sprintf("w%d-%d", w, i)
				r := v1(t, env, "PATCH", domain, "", g.etag, "", map[string]any{"description": desc})
				mu.Lock()
				switch r.status {
				case 202:
					var p service.Plan
					r.decode(t, &p)
					if prev, dup := made[p.Version]; dup {
						t.Errorf("version %d made twice: %s and %s", p.Version, prev, desc)
					}
					if p.From != d.Version || p.Version != d.Version+1 {
						t.Errorf("%s: read version %d, made %d on %d: an update was lost", desc, d.Version, p.Version, p.From)
					}
					made[p.Version] = desc
					i++
				case http.StatusPreconditionFailed:
					stale++
				case http.StatusConflict:
					busy++
				default:
					t.Errorf("PATCH = %d %s", r.status, r.body)
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
				if r.status == http.StatusConflict {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	final := 1 + writers*editsPerWriter
	if len(made) != writers*editsPerWriter {
		t.Fatalf("%d successes, want %d", len(made), writers*editsPerWriter)
	}
	waitVersion(t, env, domain, final, "OPEN")
	var d service.DistributionV1
	v1(t, env, "GET", domain, "", "", "", nil).decode(t, &d)
	if d.Description != made[final] {
		t.Fatalf("final description %q, want the last success's %q", d.Description, made[final])
	}
	for n := 2; n <= final; n++ {
		if _, ok := made[n]; !ok {
			t.Fatalf("version %d was made by no writer", n)
		}
	}
	t.Logf("%d writers × %d edits: %s, %d stale (412), %d busy (409)", writers, editsPerWriter, elapsed.Round(time.Millisecond), stale, busy)
}
