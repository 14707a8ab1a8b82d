//go:build !unit

package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
)

// Each origin's originPath applies to that origin. Two origins
// (the test origin under two paths) are balanced by the edge's connector;
// every fetch carries the path of the origin it went to, on every edge.
func TestEachOriginFetchesWithItsOwnPath(t *testing.T) {
	env := faultEnv(t)
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	var created struct {
		Distributions []struct{ Domain string } `json:"distributions"`
	}
	body := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{
			{"origin": originHost, "port": atoi(originPort), "originPath": "/a"},
			{"origin": originHost, "port": atoi(originPort), "originPath": "/b/"},
		},
	}}}
	if h := nhn(t, env, "POST", "/distributions", secret, body, &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	d := waitStatus(t, env, created.Distributions[0].Domain, "OPEN")
	if d.Origins[0].OriginPath != "/a" || d.Origins[1].OriginPath != "/b" {
		t.Fatalf("origins as stored: %+v", d.Origins)
	}
	for i := range env.Edges {
		seen := map[string]int{}
		for n := range 6 {
			path := fmt.Sprintf("/e%d/f%d.js", i, n)
			got := edgeGet(t, env, i, d.Domain, path, "").Header.Get("X-Origin-Path")
			prefix, rest, _ := strings.Cut(strings.TrimPrefix(got, "/"), "/")
			if "/"+rest != path || (prefix != "a" && prefix != "b") {
				t.Fatalf("edge %d fetched %q for %s: want /a%s or /b%s", i, got, path, path, path)
			}
			seen[prefix]++
		}
		if seen["a"] == 0 || seen["b"] == 0 {
			t.Fatalf("edge %d used one origin only: %v", i, seen)
		}
	}
}
