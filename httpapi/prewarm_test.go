//go:build !unit

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

const domain = "assets.example.com"

func postJSON(t *testing.T, url string, body any, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func startPrewarm(t *testing.T, env *testenv.Env, body map[string]any, header map[string]string) string {
	t.Helper()
	resp, data := postJSON(t, env.API.URL+"/prewarm", body, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prewarm = %d %s", resp.StatusCode, data)
	}
	var out struct{ RequestID string }
	if err := json.Unmarshal(data, &out); err != nil || out.RequestID == "" {
		t.Fatalf("prewarm body %s", data)
	}
	return out.RequestID
}

func waitPrewarm(t *testing.T, env *testenv.Env, id string) service.PrewarmStatusResponse {
	t.Helper()
	var st service.PrewarmStatusResponse
	eventually.WithinEvery(t, 2*time.Minute, 200*time.Millisecond, func() error {
		st = service.PrewarmStatusResponse{}
		if code := getJSON(t, env.API.URL+"/status?requestID="+id, &st); code != http.StatusOK {
			t.Fatalf("status = %d", code)
		}
		if st.Status == "IN_PROGRESS" {
			return fmt.Errorf("prewarm %s still %+v", id, st)
		}
		return nil
	})
	return st
}

func cacheState(t *testing.T, env *testenv.Env, edge int, path string) string {
	t.Helper()
	resp := env.EdgeGet(t, edge, domain, path, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Cache")
}

func TestPrewarmWarmsTargetedEdgesOnly(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 3, Configure: func(c *config.Config) {
		c.ShowSuccessURLs = true
		c.PrewarmAttempts = 2
	}})
	var urls []string
	for i := 0; i < 30; i++ {
		urls = append(urls, fmt.Sprintf("http://%s/static/app-%d.js?v=1", domain, i))
	}
	urls = append(urls, "http://"+domain+"/status/404/missing.png")
	id := startPrewarm(t, env, map[string]any{
		"url_list": urls, "cf_domain": domain, "target_type": "pop",
		"region": []string{env.Edges[0].Edge.ID, env.Edges[1].Edge.ID},
		"header": map[string]string{"X-Release": "r1"},
	}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Total != 31 || st.Completed != 31 || st.InProgress != 0 {
		t.Fatalf("status = %+v", st)
	}
	if len(st.FailedURL) != 1 || !strings.Contains(st.FailedURL[0], "/status/404/") {
		t.Fatalf("failedUrl = %v", st.FailedURL)
	}
	if st.SuccessURL == nil || len(*st.SuccessURL) != 30 {
		t.Fatalf("successUrl = %v", st.SuccessURL)
	}
	for _, e := range st.Edges {
		if e.Done != 31 || e.Failed != 1 {
			t.Fatalf("edge progress %+v", e)
		}
	}
	for i := 0; i < 30; i += 7 {
		path := fmt.Sprintf("/static/app-%d.js?v=1", i)
		for edge, want := range []string{"HIT", "HIT", "MISS"} {
			if got := cacheState(t, env, edge, path); got != want {
				t.Fatalf("%s on edge %d = %s, want %s", path, edge, got, want)
			}
		}
	}
	// The per-pair view names the 404 with its HTTP status, once per edge.
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges?pageSize=100", &pairs); code != 200 {
		t.Fatalf("pairs = %d", code)
	}
	if pairs.TotalPairs != 62 || len(pairs.Pairs) != 62 {
		t.Fatalf("pairs total %d len %d", pairs.TotalPairs, len(pairs.Pairs))
	}
	failed := 0
	for _, p := range pairs.Pairs {
		if p.State == "failed" {
			failed++
			if p.Status != 404 || p.Attempts != 1 || !strings.Contains(p.Error, "404") {
				t.Fatalf("404 pair = %+v", p)
			}
		} else if p.State != "success" || p.Status != 200 || (p.Cache != "MISS" && p.Cache != "HIT") {
			t.Fatalf("pair = %+v", p)
		}
	}
	if failed != 2 {
		t.Fatalf("failed pairs = %d", failed)
	}
	resp, err := http.Get(env.API.URL + "/prewarm/" + id + "/edges?format=csv&pageSize=5")
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lines := strings.Count(string(csvBody), "\n"); lines != 6 || !strings.HasPrefix(string(csvBody), "edgeId,url,state") {
		t.Fatalf("csv:\n%s", csvBody)
	}
	// The real histories replay against the current workflow code.
	env.Replay(t, "prewarm-"+id, "prewarm_job")
	// The API answers the same from the other path.
	var again service.PrewarmStatusResponse
	getJSON(t, env.API.URL+"/prewarm/"+id, &again)
	if again.Status != "COMPLETED" || again.Completed != 31 {
		t.Fatalf("GET /prewarm/id = %+v", again)
	}
}

func TestPrewarmStoppedEdgeAndIdempotency(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.PrewarmAttempts = 3
		c.PrewarmAttemptTimeout = time.Second
	}})
	if err := env.Edges[1].Process.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{
		"url_list":    []string{"http://" + domain + "/a.css", "http://" + domain + "/b.css"},
		"cf_domain":   domain,
		"target_type": "region", "region": "all",
	}
	id := startPrewarm(t, env, body, map[string]string{"Idempotency-Key": "release-42"})
	id2 := startPrewarm(t, env, body, map[string]string{"Idempotency-Key": "release-42"})
	if id != id2 {
		t.Fatalf("idempotency: %s != %s", id, id2)
	}
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || len(st.FailedURL) != 2 {
		t.Fatalf("status = %+v", st)
	}
	var pairs service.PairPage
	getJSON(t, env.API.URL+"/prewarm/"+id+"/edges", &pairs)
	for _, p := range pairs.Pairs {
		if p.EdgeID == env.Edges[1].Edge.ID && (p.State != "failed" || p.Attempts != 3 || !strings.Contains(p.Error, "refused")) {
			t.Fatalf("pair on stopped edge = %+v", p)
		}
		if p.EdgeID == env.Edges[0].Edge.ID && p.State != "success" {
			t.Fatalf("pair on live edge = %+v", p)
		}
	}
	// After completion the same key still answers the same id.
	if id3 := startPrewarm(t, env, body, map[string]string{"Idempotency-Key": "release-42"}); id3 != id {
		t.Fatalf("idempotency after completion: %s", id3)
	}
}

func TestPrewarmDeadlineTimesOut(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.PrewarmAttemptTimeout = 20 * time.Second
		c.PrewarmConcurrency = 1
		c.PrewarmPipeline = 1
	}})
	var urls []string
	for i := 0; i < 4; i++ {
		urls = append(urls, fmt.Sprintf("http://%s/slow/1500/%d", domain, i))
	}
	id := startPrewarm(t, env, map[string]any{
		"url_list": urls, "cf_domain": domain, "target_type": "pop",
		"region": []string{env.Edges[0].Edge.ID}, "timeout": 2,
	}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "TIMEOUT" || st.InProgress == 0 || len(st.InProgressURL) != st.InProgress {
		t.Fatalf("status = %+v", st)
	}
	env.Replay(t, "prewarm-"+id, "prewarm_job_timeout")
}

func TestPrewarmRejectsBadRequests(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true})
	ok := func() map[string]any {
		return map[string]any{"url_list": []string{"http://" + domain + "/x"}, "cf_domain": domain, "target_type": "pop", "region": []string{env.Edges[0].Edge.ID}}
	}
	with := func(k string, v any) map[string]any { m := ok(); m[k] = v; return m }
	many := make([]string, service.MaxPrewarmURLs+1)
	for i := range many {
		many[i] = "http://" + domain + "/x"
	}
	cases := map[string]struct {
		body any
		want string
	}{
		"malformed":      {`{"url_list": [`, "not valid JSON"},
		"empty body":     {``, "empty"},
		"trailing data":  {`{"url_list": ["http://` + domain + `/x"], "cf_domain": "` + domain + `", "target_type": "region", "region": "all"} {"x": 1}`, "data after the JSON"},
		"empty list":     {with("url_list", []string{}), "at least one URL"},
		"non-http":       {with("url_list", []string{"ftp://" + domain + "/x"}), "not an http(s) URL"},
		"other host":     {with("url_list", []string{"http://evil.example/x"}), "not on cf_domain"},
		"unknown pop":    {with("region", []string{"NOPE1"}), "unknown pop \"NOPE1\" (valid: " + env.Edges[0].Edge.ID},
		"unknown region": {with("target_type", "region"), "unknown region"},
		"bad type":       {with("target_type", "city"), "unknown target_type"},
		"too many":       {with("url_list", many), "at most 100000"},
		"bad protocol":   {with("protocol", "gopher"), "protocol must be"},
		"bad timeout":    {with("timeout", "soon"), "timeout"},
		"bad header":     {with("header", map[string]string{"Host": "x"}), "cannot be set"},
		"no region":      {with("region", nil), "region is required"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, data := postJSON(t, env.API.URL+"/prewarm", tc.body, nil)
			var e struct{ Code, Message string }
			_ = json.Unmarshal(data, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Code != "InvalidRequest" || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("= %d %s, want 400 containing %q", resp.StatusCode, data, tc.want)
			}
		})
	}
	var e struct{ Code string }
	if code := getJSON(t, env.API.URL+"/status?requestID=00000000-0000-0000-0000-000000000000", &e); code != 404 || e.Code != "NotFound" {
		t.Fatalf("unknown id = %d %+v", code, e)
	}
	if code := getJSON(t, env.API.URL+"/status", &e); code != 400 {
		t.Fatalf("missing id = %d", code)
	}
}

// A prewarm never dials the URL's own host: only inventory edges are
// contacted, whatever the URLs say.
func TestPrewarmNeverDialsTheURLHost(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	var victimHits atomic.Int64
	victim := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { victimHits.Add(1) }))
	defer victim.Close()
	host := victim.Listener.Addr().String() // 127.0.0.1:port
	id := startPrewarm(t, env, map[string]any{
		"url_list":    []string{"http://" + host + "/admin/delete", "http://" + host + "/x"},
		"target_type": "region", "region": "all",
	}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || victimHits.Load() != 0 {
		t.Fatalf("status %+v, the URL's host was dialled %d times", st, victimHits.Load())
	}
}

// Origin and edge faults end in failedUrl with the reason per pair:
// 5xx is retried, 4xx is not, a slow answer times out per attempt.
func TestPrewarmFaultReasons(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.PrewarmAttempts = 2
		c.PrewarmAttemptTimeout = 700 * time.Millisecond
	}})
	urls := map[string]struct {
		attempts int
		reason   string
	}{
		"/status/500/a.js": {2, "HTTP 500"},
		"/status/503/b.js": {2, "HTTP 503"},
		"/status/404/c.js": {1, "HTTP 404"},
		"/status/403/d.js": {1, "HTTP 403"},
		"/slow/2000/e.js":  {2, "deadline exceeded"},
		"/nocache/f.js":    {1, "did not cache"},
		"/healthy/g.js":    {1, ""},
	}
	var list []string
	for p := range urls {
		list = append(list, "http://"+domain+p)
	}
	id := startPrewarm(t, env, map[string]any{"url_list": list, "cf_domain": domain, "target_type": "region", "region": "all"}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || len(st.FailedURL) != len(urls)-1 {
		t.Fatalf("status = %+v", st)
	}
	var pairs service.PairPage
	getJSON(t, env.API.URL+"/prewarm/"+id+"/edges", &pairs)
	for _, p := range pairs.Pairs {
		path := strings.TrimPrefix(p.URL, "http://"+domain)
		want := urls[path]
		if p.Attempts != want.attempts || (want.reason == "" && p.State != "success") || !strings.Contains(p.Error, want.reason) {
			t.Errorf("%s: attempts %d error %q state %s; want %d attempts and %q", path, p.Attempts, p.Error, p.State, want.attempts, want.reason)
		}
	}
}

// Status follows the job as each chunk finishes (the API tallies the
// summaries the chunks publish beside their rows): a 2,500-URL job
// on one edge runs as two chunks, URLs [0, 2000) and [2000, 2500)
// (workflows.ChunkSizeFor), and the second chunk's URLs are slow, so
// polls see one chunk done before the job completes. Every answer is one
// the chunks explain (0, 500, 2,000 or 2,500 URLs done) and never goes
// back.
func TestPrewarmStatusFollowsChunks(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) { c.PrewarmConcurrency = 50 }})
	urls := make([]string, 2500)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/follow/%d.js", domain, i)
		if i >= 2000 {
			urls[i] = fmt.Sprintf("http://%s/slow/500/follow/%d.js", domain, i)
		}
	}
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "region", "region": "all"}, nil)
	seen, last := map[int]bool{}, 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st service.PrewarmStatusResponse
		if code := getJSON(t, env.API.URL+"/status?requestID="+id+"&pageSize=1", &st); code != http.StatusOK {
			t.Fatalf("status = %d", code)
		}
		if st.Total != 2500 || st.Completed < last || !slices.Contains([]int{0, 500, 2000, 2500}, st.Completed) {
			t.Fatalf("status %s: %d of %d done after %d: not what the chunks explain", st.Status, st.Completed, st.Total, last)
		}
		seen[st.Completed], last = true, st.Completed
		if st.Status == "COMPLETED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not COMPLETED within 2 min: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !seen[500] && !seen[2000] || last != 2500 {
		t.Fatalf("progress seen %v (last %d): want one chunk done before the end", seen, last)
	}
}

// A finished job whose lists are longer than its result holds (100
// entries) pages its URLs from the chunks' summaries: 250 URLs on two
// edges, 130 answered 404, read in pages of 40 — every failed and every
// successful URL once, in url_list order, with the result's counts.
func TestPrewarmStatusPagesLongLists(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.ShowSuccessURLs = true
		c.PrewarmAttempts = 1
		c.PrewarmConcurrency = 20
	}})
	var urls, wantFailed, wantOK []string
	for i := 0; i < 250; i++ {
		u := fmt.Sprintf("http://%s/pages/%d.js", domain, i)
		if i%2 == 0 || i < 10 {
			u = fmt.Sprintf("http://%s/status/404/pages/%d.js", domain, i)
			wantFailed = append(wantFailed, u)
		} else {
			wantOK = append(wantOK, u)
		}
		urls = append(urls, u)
	}
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "region", "region": "all"}, nil)
	first := waitPrewarm(t, env, id)
	if first.Status != "COMPLETED" || first.Failed != len(wantFailed) || first.Succeeded != len(wantOK) || first.Completed != 250 {
		t.Fatalf("status = %+v", first)
	}
	var failed, ok []string
	for page := 1; page <= 7; page++ {
		var st service.PrewarmStatusResponse
		if code := getJSON(t, fmt.Sprintf("%s/status?requestID=%s&page=%d&pageSize=40", env.API.URL, id, page), &st); code != http.StatusOK {
			t.Fatalf("page %d = %d", page, code)
		}
		if st.Page != page || st.PageSize != 40 || st.Status != "COMPLETED" || st.Failed != len(wantFailed) || st.SuccessURL == nil {
			t.Fatalf("page %d = %+v", page, st)
		}
		failed, ok = append(failed, st.FailedURL...), append(ok, *st.SuccessURL...)
	}
	if !slices.Equal(failed, wantFailed) || !slices.Equal(ok, wantOK) {
		t.Fatalf("paged failedUrl %d (want %d), successUrl %d (want %d)", len(failed), len(wantFailed), len(ok), len(wantOK))
	}
}
