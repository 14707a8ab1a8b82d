//go:build !unit

package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// edgeCookie asks edge i for path with Cookie cookie ("" none) and
// answers its X-Cache.
func edgeCookie(t *testing.T, env *testenv.Env, i int, host, path, cookie string) string {
	t.Helper()
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	resp := env.EdgeGet(t, i, host, path, h)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s (Cookie %q) on edge %d = %d", host, path, cookie, i, resp.StatusCode)
	}
	return resp.Header.Get("X-Cache")
}

// The cache policy extension from the API to the edges: by default a
// browser holding an analytics cookie gets the object a prewarm warmed
// (HIT); forwarded cookies, set at create and changed by /v1 PATCH, make
// each value its own object; bodies beyond the bounds are refused 10001.
func TestCachePolicyFromAPIToEdges(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
	}})
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	body := func(policy any) map[string]any {
		d := map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort)}},
		}
		if policy != nil {
			d["cachePolicy"] = policy
		}
		return map[string]any{"distributions": []map[string]any{d}}
	}
	for name, policy := range map[string]any{
		"11 cookies":   map[string]any{"forwardCookies": strings.Split("a b c d e f g h i j k", " ")},
		"bad name":     map[string]any{"forwardCookies": []string{"sid=1"}},
		"long name":    map[string]any{"forwardCookies": []string{strings.Repeat("s", 65)}},
		"twice":        map[string]any{"forwardCookies": []string{"sid", "sid"}},
		"empty name":   map[string]any{"forwardCookies": []string{""}},
		"not a policy": "forward everything",
	} {
		if h := nhn(t, env, "POST", "/distributions", secret, body(policy), nil); h.IsSuccessful || (h.ResultCode != 10001 && name != "not a policy") {
			t.Errorf("%s: %+v, want refused 10001", name, h)
		}
	}

	// A referrer rule built to backtrack is refused before it reaches an
	// edge (vcl.CheckReferrerPattern).
	for _, ref := range []string{`^(a+)+$`, `(a|aa)*c`, `^https?://([a-z0-9-]+\.)*example\.com/`, `.*a.*b.*c`} {
		b := body(nil)
		b["distributions"].([]map[string]any)[0]["referrers"] = ref
		if h := nhn(t, env, "POST", "/distributions", secret, b, nil); h.IsSuccessful || h.ResultCode != 10001 ||
			!strings.Contains(h.ResultMessage, "referrer") {
			t.Errorf("referrers %s: %+v, want refused 10001", ref, h)
		}
	}

	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, body(map[string]any{"forwardCookies": []string{"sid"}}), &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	d := created.Distributions[0]
	if d.CachePolicy == nil || len(d.CachePolicy.ForwardCookies) != 1 || d.CachePolicy.CachePrivate {
		t.Fatalf("created view cachePolicy = %+v", d.CachePolicy)
	}
	waitStatus(t, env, d.Domain, "OPEN")
	steps := []struct{ cookie, want string }{
		{"", "MISS"}, {"_ga=GA1.2.1234.5678", "HIT"}, {"sid=1; _ga=1", "MISS"}, {"_ga=2; sid=1", "HIT"}, {"sid=2", "MISS"},
	}
	for _, s := range steps {
		if got := edgeCookie(t, env, 0, d.Domain, "/app.css", s.cookie); got != s.want {
			t.Errorf("forwarding sid, Cookie %q: %s, want %s", s.cookie, got, s.want)
		}
	}

	// While sid is forwarded, a prewarm warms the cookieless object: a
	// browser without sid (or with other cookies only) gets it, one with
	// sid gets its own.
	id := startPrewarm(t, env, map[string]any{"url_list": []string{"http://" + d.Domain + "/warm-sid.js"}, "cf_domain": d.Domain,
		"target_type": "region", "region": []string{"us"}}, nil)
	if st := waitPrewarm(t, env, id); st.Status != "COMPLETED" {
		t.Fatalf("prewarm while forwarding sid: %+v", st)
	}
	for _, s := range []struct{ cookie, want string }{{"", "HIT"}, {"_ga=GA1.2.1234.5678", "HIT"}, {"sid=9", "MISS"}} {
		if got := edgeCookie(t, env, 0, d.Domain, "/warm-sid.js", s.cookie); got != s.want {
			t.Errorf("after a prewarm forwarding sid, Cookie %q: %s, want %s", s.cookie, got, s.want)
		}
	}

	// Back to the default by /v1 PATCH: cookies leave the key.
	if r := v1(t, env, "PATCH", d.Domain, "", "", "", map[string]any{"cachePolicy": map[string]any{"forwardCookies": []string{}}}); r.status != http.StatusAccepted {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	waitVersion(t, env, d.Domain, 2, "OPEN")
	var got service.DistributionV1
	v1(t, env, "GET", d.Domain, "", "", "", nil).decode(t, &got)
	if raw, _ := json.Marshal(got); strings.Contains(string(raw), "forwardCookies") {
		t.Errorf("after PATCH to the default: %s", raw)
	}
	if r := v1(t, env, "PATCH", d.Domain, "", "", "", map[string]any{"cachePolicy": map[string]any{"forwardCookies": []string{"a,b"}}}); r.status != http.StatusBadRequest {
		t.Errorf("PATCH with a bad cookie name: %d %s, want 400", r.status, r.body)
	}

	// The prewarm warms the object every browser gets.
	id = startPrewarm(t, env, map[string]any{"url_list": []string{"http://" + d.Domain + "/warm.js"}, "cf_domain": d.Domain,
		"target_type": "region", "region": []string{"us"}}, nil)
	if st := waitPrewarm(t, env, id); st.Status != "COMPLETED" {
		t.Fatalf("prewarm: %+v", st)
	}
	for _, c := range []string{"_ga=GA1.2.1234.5678", "sid=7; _ga=1", ""} {
		if got := edgeCookie(t, env, 0, d.Domain, "/warm.js", c); got != "HIT" {
			t.Errorf("after prewarm, Cookie %q: %s, want HIT", c, got)
		}
	}
}
