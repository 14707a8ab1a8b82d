//go:build !unit

package httpapi_test

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/vcl"
)

// refusedByVarnish is a referrer pattern Go's regexp accepts (so the API
// admits it) and Varnish's PCRE2 refuses ("invalid range in character
// class"): only the edge can tell.
const refusedByVarnish = `[\d-z]`

// A referrer rule Varnish will not compile sends its distribution to
// ERROR with the edge's reason while a change to another distribution,
// made at the same time, goes OPEN and is served on every edge; the
// refused distribution keeps serving its last good configuration.
func TestRefusedReferrerRuleIsolated(t *testing.T) {
	if err := vcl.CheckReferrerPattern(refusedByVarnish); err != nil {
		t.Fatalf("the API must admit the pattern for this test: %v", err)
	}
	env := faultEnv(t)
	bad := createDistribution(t, env, "/bad-before")
	good := createDistribution(t, env, "/good-before")
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	if h := nhn(t, env, "PATCH", "/distributions", secret, map[string]any{"domain": bad.Domain,
		"referrerType": "BLACKLIST", "referrers": refusedByVarnish}, nil); !h.IsSuccessful {
		t.Fatalf("patch with the refused rule: %+v", h)
	}
	if h := nhn(t, env, "PATCH", "/distributions", secret, map[string]any{"domain": good.Domain,
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/good-after"}}}, nil); !h.IsSuccessful {
		t.Fatalf("patch of the other distribution: %+v", h)
	}
	v := waitStatus(t, env, bad.Domain, "ERROR")
	if !strings.Contains(v.LastError, "refuses the VCL") || !strings.Contains(v.LastError, bad.Domain) {
		t.Fatalf("lastError = %q, want the edge's refusal of %s", v.LastError, bad.Domain)
	}
	if g := waitStatus(t, env, good.Domain, "OPEN"); g.LastError != "" {
		t.Fatalf("the other distribution: lastError %q", g.LastError)
	}
	for i := range env.Edges {
		if r := edgeGet(t, env, i, good.Domain, "/g.js", ""); r.Header.Get("X-Origin-Path") != "/good-after/g.js" {
			t.Errorf("edge %d serves the other distribution from %q, want /good-after/g.js", i, r.Header.Get("X-Origin-Path"))
		}
		if r := edgeGet(t, env, i, bad.Domain, "/b.js", "https://9.example/"); r.StatusCode != 200 || r.Header.Get("X-Origin-Path") != "/bad-before/b.js" {
			t.Errorf("edge %d serves the refused distribution: %d from %q, want its last good config (/bad-before)", i, r.StatusCode, r.Header.Get("X-Origin-Path"))
		}
	}
}
