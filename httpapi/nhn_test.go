//go:build !unit

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

const (
	appKey = "app-one"
	secret = "secret-one"
)

type nhnHeader struct {
	IsSuccessful  bool   `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

// nhn calls a /v1.5 route and decodes the envelope into out; NHN answers
// HTTP 200 whatever the outcome.
func nhn(t *testing.T, env *testenv.Env, method, path, key string, body any, out any) nhnHeader {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, _ := json.Marshal(body)
			raw = string(b)
		}
		rdr = strings.NewReader(raw)
	}
	req, _ := http.NewRequest(method, env.API.URL+"/v1.5/appKeys/"+appKey+path, rdr)
	if strings.HasPrefix(path, "@") { // another appKey: "@key/path"
		k, p, _ := strings.Cut(strings.TrimPrefix(path, "@"), "/")
		req, _ = http.NewRequest(method, env.API.URL+"/v1.5/appKeys/"+k+"/"+p, rdr)
	}
	req.Header.Set("Authorization", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = HTTP %d %s (NHN answers 200)", method, path, resp.StatusCode, data)
	}
	var env2 struct {
		Header nhnHeader `json:"header"`
	}
	if err := json.Unmarshal(data, &env2); err != nil {
		t.Fatalf("%s %s: %s: %v", method, path, data, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatal(err)
		}
	}
	return env2.Header
}

type callbackLog struct {
	mu    sync.Mutex
	calls []string // "METHOD status=... domain=... body-status"
}

func (l *callbackLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var cb struct {
		Header       nhnHeader `json:"header"`
		Distribution struct {
			AppKey, Domain, Status string
		} `json:"distribution"`
	}
	_ = json.Unmarshal(body, &cb)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, r.Method+" "+r.URL.Query().Get("status")+" "+r.URL.Query().Get("domain")+" "+cb.Distribution.Status+" "+cb.Distribution.AppKey)
}

func (l *callbackLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

func (l *callbackLog) seen(entry string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.calls {
		if c == entry {
			return true
		}
	}
	return false
}

func waitStatus(t *testing.T, env *testenv.Env, domain, want string) service.DistributionView {
	t.Helper()
	var view service.DistributionView
	eventually.WithinEvery(t, 90*time.Second, 200*time.Millisecond, func() error {
		var out struct {
			Distributions []service.DistributionView `json:"distributions"`
		}
		q := "/distributions?domain=" + domain
		if want == "CLOSE" {
			q += "&status=CLOSE" // deleted distributions are listed only when asked for
		}
		h := nhn(t, env, "GET", q, secret, nil, &out)
		if !h.IsSuccessful {
			t.Fatalf("list: %+v", h)
		}
		if len(out.Distributions) == 1 && out.Distributions[0].Status == want {
			view = out.Distributions[0]
			return nil
		}
		return fmt.Errorf("%s not %s: %+v", domain, want, out.Distributions)
	})
	return view
}

func edgeGet(t *testing.T, env *testenv.Env, i int, host, path, referer string) *http.Response {
	t.Helper()
	h := http.Header{}
	if referer != "" {
		h.Set("Referer", referer)
	}
	resp := env.EdgeGet(t, i, host, path, h)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestDistributionLifecycleAndPurges(t *testing.T) {
	cbLog := &callbackLog{}
	cbSrv := httptest.NewServer(cbLog)
	defer cbSrv.Close()
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, "app-two": "secret-two"}
		c.DefaultOrigin = "" // hosts without a distribution are not served
		c.PurgeItemInterval = 0
		c.PurgeAllInterval = time.Hour
	}})
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	create := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "N", "maxAge": 120,
		"referrerType": "BLACKLIST", "referrers": `evil\.example`, "isAllowWhenEmptyReferrer": false,
		"description": "release assets",
		"origins":     []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/base"}},
		"callback":    map[string]any{"httpMethod": "POST", "url": cbSrv.URL + "/cb?app={appKey}&status={status}&domain={domain}"},
	}}}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, create, &created); !h.IsSuccessful || len(created.Distributions) != 1 {
		t.Fatalf("create: %+v %+v", h, created)
	}
	d := created.Distributions[0]
	if d.Status != "OPENING" || !strings.HasSuffix(d.Domain, "."+env.Config.CDNBaseDomain) || len(d.Domain) != 9+len(env.Config.CDNBaseDomain) {
		t.Fatalf("created = %+v", d)
	}
	if d.ForwardHostHeader != "ORIGIN_HOSTNAME" || d.CreateTime == 0 {
		t.Fatalf("defaults = %+v", d)
	}
	waitStatus(t, env, d.Domain, "OPEN")

	// Every edge routes the domain to the origin under originPath, with maxAge as TTL.
	for i := range env.Edges {
		resp := edgeGet(t, env, i, d.Domain, "/app.js", "https://good.example/")
		if resp.StatusCode != 200 || resp.Header.Get("X-Origin-Path") != "/base/app.js" {
			t.Fatalf("edge %d: %d %v", i, resp.StatusCode, resp.Header)
		}
		if ttl := resp.Header.Get("X-Cache-TTL"); !strings.HasPrefix(ttl, "11") && !strings.HasPrefix(ttl, "12") {
			t.Fatalf("edge %d ttl %q, want ~120", i, ttl)
		}
		if r := edgeGet(t, env, i, d.Domain, "/app.js", "https://evil.example/page"); r.StatusCode != 403 {
			t.Fatalf("blacklisted referer = %d", r.StatusCode)
		}
		if r := edgeGet(t, env, i, d.Domain, "/app.js", ""); r.StatusCode != 403 {
			t.Fatalf("empty referer with isAllowWhenEmptyReferrer=false = %d", r.StatusCode)
		}
	}

	// Purges: ITEM turns a HIT into a MISS on every edge.
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/app.js", "https://good.example/"); r.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("before purge edge %d: %s", i, r.Header.Get("X-Cache"))
		}
	}
	var pr struct {
		Header    nhnHeader
		PurgeSeq  int64
		PurgeSeqs []int64
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/app.js"}, &pr); !h.IsSuccessful || pr.PurgeSeq == 0 {
		t.Fatalf("purge: %+v %+v", h, pr)
	}
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/app.js", "https://good.example/"); r.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("after purge edge %d: %s", i, r.Header.Get("X-Cache"))
		}
	}
	// A 450-path list becomes 3 seqs (200 + 200 + 50).
	var paths []string
	for i := 0; i < 450; i++ {
		paths = append(paths, "/p/"+itoa(i))
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")}, &pr); !h.IsSuccessful || len(pr.PurgeSeqs) != 3 || pr.PurgeSeq != pr.PurgeSeqs[0] {
		t.Fatalf("split: %+v %+v", h, pr)
	}
	for _, seq := range pr.PurgeSeqs {
		waitPurge(t, env, d.Domain, seq)
	}
	// WILDCARD evicts the prefix only.
	edgeGet(t, env, 0, d.Domain, "/img/a.png", "")
	edgeGet(t, env, 0, d.Domain, "/css/a.css", "")
	for _, p := range []string{"/img/a.png", "/css/a.css"} {
		edgeGet(t, env, 0, d.Domain, p, "https://good.example/")
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/img/*"}, &pr); !h.IsSuccessful {
		t.Fatalf("wildcard: %+v", h)
	}
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	if r := edgeGet(t, env, 0, d.Domain, "/img/a.png", "https://good.example/"); r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("wildcard target = %s", r.Header.Get("X-Cache"))
	}
	if r := edgeGet(t, env, 0, d.Domain, "/css/a.css", "https://good.example/"); r.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("wildcard bystander = %s", r.Header.Get("X-Cache"))
	}
	// The list is newest first, with NHN's fields.
	var list struct {
		TotalItems int
		Purges     []service.PurgeItem
	}
	if h := nhn(t, env, "GET", "/purges?domain="+d.Domain+"&page=1&itemsPerPage=2", secret, nil, &list); !h.IsSuccessful || list.TotalItems != 5 || len(list.Purges) != 2 {
		t.Fatalf("list: %+v %+v", h, list)
	}
	if list.Purges[0].Seq <= list.Purges[1].Seq || list.Purges[0].Type != "WILDCARD" || list.Purges[0].Path != "/img/*" || list.Purges[0].Progress != 100 || list.Purges[0].PurgeID == 0 || list.Purges[0].LastCheckTime < list.Purges[0].PurgeTime {
		t.Fatalf("list page = %+v", list.Purges)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"))
	if h := nhn(t, env, "GET", "/purges?domain="+d.Domain+"&startTime="+future, secret, nil, &list); !h.IsSuccessful || list.TotalItems != 0 {
		t.Fatalf("time filter: %+v %+v", h, list)
	}
	// ALL evicts this domain only, and only once per interval.
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ALL"}, &pr); !h.IsSuccessful {
		t.Fatalf("all: %+v", h)
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ALL"}, nil); h.IsSuccessful || h.ResultCode != 30001 {
		t.Fatalf("second ALL = %+v, want 30001", h)
	}
	// Another appKey can neither see nor purge this domain.
	if h := nhn(t, env, "POST", "@app-two/purges", "secret-two", map[string]any{"domain": d.Domain, "purgeType": "ALL"}, nil); h.IsSuccessful || h.ResultCode != 10002 {
		t.Fatalf("cross-appKey purge = %+v", h)
	}
	if h := nhn(t, env, "GET", "/purges?domain="+d.Domain, "wrong-secret", nil, nil); h.IsSuccessful || h.ResultCode != 10003 {
		t.Fatalf("wrong secret = %+v", h)
	}

	// PATCH the origin path: every edge follows.
	if h := nhn(t, env, "PATCH", "/distributions", secret, map[string]any{"domain": d.Domain, "origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/v2"}}}, nil); !h.IsSuccessful {
		t.Fatalf("patch: %+v", h)
	}
	waitStatus(t, env, d.Domain, "OPEN")
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/new.js", "https://good.example/"); r.Header.Get("X-Origin-Path") != "/v2/new.js" {
			t.Fatalf("after patch edge %d: %v", i, r.Header)
		}
	}
	// Suspend → 404 everywhere (NHN SUSPEND: the domain is not served); a second suspend is the wrong state.
	if h := nhn(t, env, "PUT", "/distributions/suspend", secret, map[string]any{"domains": []string{d.Domain}}, nil); !h.IsSuccessful {
		t.Fatalf("suspend: %+v", h)
	}
	waitStatus(t, env, d.Domain, "SUSPEND")
	if h := nhn(t, env, "PUT", "/distributions/suspend", secret, map[string]any{"domains": []string{d.Domain}}, nil); h.IsSuccessful || h.ResultCode != 30003 {
		t.Fatalf("suspend twice = %+v", h)
	}
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/new.js", "https://good.example/"); r.StatusCode != 404 {
			t.Fatalf("suspended edge %d = %d", i, r.StatusCode)
		}
	}
	if h := nhn(t, env, "PUT", "/distributions/resume", secret, map[string]any{"domains": []string{d.Domain}}, nil); !h.IsSuccessful {
		t.Fatalf("resume: %+v", h)
	}
	waitStatus(t, env, d.Domain, "OPEN")
	if r := edgeGet(t, env, 1, d.Domain, "/new.js", "https://good.example/"); r.StatusCode != 200 {
		t.Fatalf("resumed = %d", r.StatusCode)
	}
	// DELETE → CLOSE, and the domain is no longer served.
	if h := nhn(t, env, "DELETE", "/distributions", secret, map[string]any{"domains": []string{d.Domain}}, nil); !h.IsSuccessful {
		t.Fatalf("delete: %+v", h)
	}
	waitStatus(t, env, d.Domain, "CLOSE")
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/new.js", "https://good.example/"); r.StatusCode != 404 {
			t.Fatalf("deleted domain on edge %d = %d", i, r.StatusCode)
		}
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/x"}, nil); h.ResultCode != 10002 {
		t.Fatalf("purge of deleted domain = %+v", h)
	}
	// Each transition reached the callback with its method, URL and body.
	eventually.Within(t, 30*time.Second, func() error {
		for _, st := range []string{"OPEN", "SUSPEND", "CLOSE"} {
			if want := "POST " + st + " " + d.Domain + " " + st + " " + appKey; !cbLog.seen(want) {
				return fmt.Errorf("callback %q not seen in %v", want, cbLog.snapshot())
			}
		}
		return nil
	})
	env.Replay(t, "distribution/"+appKey+"/"+d.Domain, "distribution_probe_local")
	env.Replay(t, "purge-"+appKey+"-"+itoa64(pr.PurgeSeq), "purge")
	// Long-running entities replay too, up to where they are now.
	env.Replay(t, workflows.EdgeSyncWorkflowID, "edge_sync")
	env.Replay(t, "sequence/purge", "sequence")
}

func waitPurge(t *testing.T, env *testenv.Env, domain string, seq int64) {
	t.Helper()
	eventually.Within(t, 60*time.Second, func() error {
		var list struct {
			Purges []service.PurgeItem
		}
		nhn(t, env, "GET", "/purges?domain="+domain+"&itemsPerPage=1000", secret, nil, &list)
		for _, p := range list.Purges {
			if p.Seq == seq && p.Progress == 100 {
				return nil
			}
		}
		return fmt.Errorf("purge %d not at 100: %+v", seq, list.Purges)
	})
}

func TestDistributionValidation(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
	}})
	base := func() map[string]any {
		return map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "N", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": "static.origin.example", "port": 80, "originPath": "/r"}},
		}
	}
	with := func(k string, v any) map[string]any { m := base(); m[k] = v; return m }
	without := func(k string) map[string]any { m := base(); delete(m, k); return m }
	origin := func(o map[string]any) map[string]any { return with("origins", []map[string]any{o}) }
	cases := map[string]struct {
		body map[string]any
		want string
	}{
		"no region":        {without("region"), "region is required"},
		"bad region":       {with("region", "ASIA"), "region must be GLOBAL"},
		"no downgrade":     {without("useOriginHttpProtocolDowngrade"), "useOriginHttpProtocolDowngrade is required"},
		"bad useOrigin":    {with("useOrigin", "maybe"), "useOrigin must be Y or N"},
		"no referrerType":  {without("referrerType"), "referrerType is required"},
		"bad referrerType": {with("referrerType", "GREYLIST"), "referrerType must be"},
		"bad forward":      {with("forwardHostHeader", "X"), "forwardHostHeader must be"},
		"long description": {with("description", strings.Repeat("d", 256)), "description is longer than 255"},
		"bad alias":        {with("domainAlias", "ok.example\nnot a host"), "domainAlias"},
		"negative maxAge":  {with("maxAge", -1), "maxAge must be between"},
		"huge maxAge":      {with("maxAge", 2147483648), "maxAge must be between"},
		"long referrers":   {with("referrers", strings.Repeat("a", 1025)), "referrers is longer than 1024"},
		"bad referrer re":  {with("referrers", "("), "referrers"},
		"no origins":       {without("origins"), "origins is required"},
		"empty origins":    {with("origins", []map[string]any{}), "at least one origin"},
		"no origin host":   {origin(map[string]any{"port": 80}), "origin is required"},
		"port and http":    {origin(map[string]any{"origin": "o.example", "port": 80, "httpPort": 8080}), "not both"},
		"no port":          {origin(map[string]any{"origin": "o.example"}), "one of port, httpPort or httpsPort"},
		"bad port":         {origin(map[string]any{"origin": "o.example", "port": 70000}), "between 1 and 65535"},
		"path no slash":    {origin(map[string]any{"origin": "o.example", "port": 80, "originPath": "r"}), "must start with /"},
		"long path":        {origin(map[string]any{"origin": "o.example", "port": 80, "originPath": "/" + strings.Repeat("a", 8192)}), "at most 1024"},
		"bad cb method":    {with("callback", map[string]any{"httpMethod": "DELETE", "url": "http://cb.example/"}), "callback.httpMethod"},
		"cb no url":        {with("callback", map[string]any{"httpMethod": "GET"}), "callback needs"},
		"long cb url":      {with("callback", map[string]any{"httpMethod": "GET", "url": "http://cb.example/" + strings.Repeat("a", 1024)}), "callback.url is longer"},
		"bad cb url":       {with("callback", map[string]any{"httpMethod": "GET", "url": "ftp://cb.example/"}), "not an http(s) URL"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{tc.body}}, nil)
			if h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, tc.want) {
				t.Fatalf("= %+v, want 10001 containing %q", h, tc.want)
			}
		})
	}
	for name, tc := range map[string]struct {
		method, path, body string
		code               int
	}{
		"malformed json":   {"POST", "/distributions", `{"distributions": [`, 10001},
		"empty list":       {"POST", "/distributions", `{"distributions": []}`, 10001},
		"put no domain":    {"PUT", "/distributions", `{}`, 10001},
		"patch unknown":    {"PATCH", "/distributions", `{"domain": "nope.example"}`, 10002},
		"delete unknown":   {"DELETE", "/distributions", `{"domains": ["nope.example"]}`, 10002},
		"delete empty":     {"DELETE", "/distributions", `{"domains": []}`, 10001},
		"purge bad type":   {"POST", "/purges", `{"domain": "a.example", "purgeType": "SOME"}`, 10001},
		"purge no slash":   {"POST", "/purges", `{"domain": "a.example", "purgeType": "ITEM", "purgeList": "img.png"}`, 10001},
		"purge empty item": {"POST", "/purges", `{"domain": "a.example", "purgeType": "ITEM"}`, 10001},
		"purge unknown":    {"POST", "/purges", `{"domain": "a.example", "purgeType": "ITEM", "purgeList": "/x"}`, 10002},
		"purge bad star":   {"POST", "/purges", `{"domain": "a.example", "purgeType": "WILDCARD", "purgeList": "/a/../b*"}`, 10001},
		"list no domain":   {"GET", "/purges", "", 10001},
		"list bad time":    {"GET", "/purges?domain=a.example&startTime=yesterday", "", 10001},
		"bad status":       {"GET", "/distributions?status=SLEEPING", "", 10001},
	} {
		t.Run(name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			h := nhn(t, env, tc.method, tc.path, secret, body, nil)
			if h.IsSuccessful || h.ResultCode != tc.code || h.ResultMessage == "" {
				t.Fatalf("= %+v, want %d", h, tc.code)
			}
		})
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }
