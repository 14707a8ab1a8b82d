//go:build !unit

package httpapi_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// createWithAlias opens a distribution whose origin path is the origin's
// root, so the origin's /tag/... paths reach it unchanged.
func createWithAlias(t *testing.T, env *testenv.Env, alias string) service.DistributionView {
	t.Helper()
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	d := map[string]any{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/"}},
	}
	if alias != "" {
		d["domainAlias"] = alias
	}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{d}}, &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	waitStatus(t, env, created.Distributions[0].Domain, "OPEN")
	return created.Distributions[0]
}

func xcache(t *testing.T, env *testenv.Env, host, path string) string {
	t.Helper()
	return edgeGet(t, env, 0, host, path, "").Header.Get("X-Cache")
}

// warm fetches each host/path until the edge answers HIT.
func warm(t *testing.T, env *testenv.Env, hostPaths ...[2]string) {
	t.Helper()
	for _, hp := range hostPaths {
		edgeGet(t, env, 0, hp[0], hp[1], "")
		if got := xcache(t, env, hp[0], hp[1]); got != "HIT" {
			t.Fatalf("warm %s%s: %s", hp[0], hp[1], got)
		}
	}
}

func purge(t *testing.T, env *testenv.Env, body map[string]any) {
	t.Helper()
	var pr struct{ PurgeSeq int64 }
	if h := nhn(t, env, "POST", "/purges", secret, body, &pr); !h.IsSuccessful {
		t.Fatalf("purge %v: %+v", body, h)
	}
	waitPurge(t, env, body["domain"].(string), pr.PurgeSeq)
}

// ITEM and ALL cover the domain and its aliases and nothing else; TAG
// evicts only the tagged objects; soft ITEM keeps serving the stale copy
// while the edge refetches.
func TestPurgeScopesTagsAndSoft(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}})
	alias := "assets-alias.example"
	a := createWithAlias(t, env, alias)
	b := createWithAlias(t, env, "")

	warm(t, env, [2]string{a.Domain, "/x.js"}, [2]string{alias, "/x.js"}, [2]string{b.Domain, "/x.js"},
		[2]string{a.Domain, "/tag/rel1/t.js"}, [2]string{a.Domain, "/tag/rel2/u.js"}, [2]string{b.Domain, "/tag/rel1/t.js"})

	purge(t, env, map[string]any{"domain": a.Domain, "purgeType": "TAG", "purgeList": "rel1"})
	for _, c := range []struct{ host, path, want string }{
		{a.Domain, "/tag/rel1/t.js", "MISS"},
		{a.Domain, "/tag/rel2/u.js", "HIT"},
		{b.Domain, "/tag/rel1/t.js", "HIT"}, // same tag, other domain
	} {
		if got := xcache(t, env, c.host, c.path); got != c.want {
			t.Fatalf("after TAG %s%s = %s, want %s", c.host, c.path, got, c.want)
		}
	}

	purge(t, env, map[string]any{"domain": a.Domain, "purgeType": "ITEM", "purgeList": "/x.js"})
	for _, host := range []string{a.Domain, alias} {
		if got := xcache(t, env, host, "/x.js"); got != "MISS" {
			t.Fatalf("after ITEM %s = %s", host, got)
		}
	}
	if got := xcache(t, env, b.Domain, "/x.js"); got != "HIT" {
		t.Fatalf("ITEM on %s evicted %s: %s", a.Domain, b.Domain, got)
	}

	warm(t, env, [2]string{a.Domain, "/y.js"}, [2]string{alias, "/y.js"})
	purge(t, env, map[string]any{"domain": a.Domain, "purgeType": "ALL"})
	for _, host := range []string{a.Domain, alias} {
		if got := xcache(t, env, host, "/y.js"); got != "MISS" {
			t.Fatalf("after ALL %s = %s", host, got)
		}
	}
	if got := xcache(t, env, b.Domain, "/x.js"); got != "HIT" {
		t.Fatalf("ALL on %s evicted %s: %s", a.Domain, b.Domain, got)
	}

	warm(t, env, [2]string{b.Domain, "/soft.js"})
	before := env.Origin.Requests()
	purge(t, env, map[string]any{"domain": b.Domain, "purgeType": "ITEM", "purgeList": "/soft.js", "soft": true})
	if got := xcache(t, env, b.Domain, "/soft.js"); got != "HIT" {
		t.Fatalf("soft purge: stale copy not served (%s)", got)
	}
	eventually.WithinEvery(t, 10*time.Second, 50*time.Millisecond, func() error {
		if env.Origin.Requests() == before {
			return errors.New("soft purge: the edge never refetched")
		}
		return nil
	})
}

// Bad input is answered in the envelope with the documented resultCode,
// starts nothing, and never gets a 500.
func TestPurgeRejectsBadInput(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.PurgeItemInterval = 0
	}})
	d := createWithAlias(t, env, "")
	for name, tc := range map[string]struct {
		body any
		code int
		want string
	}{
		"not json":       {`{"domain":`, 10001, "not valid JSON"},
		"empty body":     {``, 10001, "empty"},
		"trailing data":  {`{"domain": "` + d.Domain + `", "purgeType": "ALL"} trailing`, 10001, "data after the JSON"},
		"no domain":      {map[string]any{"purgeType": "ALL"}, 10001, "domain is required"},
		"bad domain":     {map[string]any{"domain": "a b", "purgeType": "ALL"}, 10001, "not a valid domain"},
		"unknown domain": {map[string]any{"domain": "nobody.example", "purgeType": "ALL"}, 10002, "unknown domain"},
		"bad type":       {map[string]any{"domain": d.Domain, "purgeType": "PAGE", "purgeList": "/a"}, 10001, "purgeType must be"},
		"empty ITEM":     {map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "\n"}, 10001, "at least one path"},
		"no slash":       {map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a\nb.js"}, 10001, "must start with /"},
		"fragment":       {map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a#b"}, 10001, "#"},
		"bad escape":     {map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a%zz"}, 10001, "not a valid URL path"},
		"wildcard":       {map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/img/"}, 10001, "has no * or ?"},
		"tag comma":      {map[string]any{"domain": d.Domain, "purgeType": "TAG", "purgeList": "a,b"}, 10001, "commas"},
		"soft ALL":       {map[string]any{"domain": d.Domain, "purgeType": "ALL", "soft": true}, 10001, "soft purge"},
		"too many":       {map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": strings.Repeat("/a\n", service.MaxPurgePaths+1)}, 10001, "at most"},
	} {
		t.Run(name, func(t *testing.T) {
			h := nhn(t, env, "POST", "/purges", secret, tc.body, nil)
			if h.IsSuccessful || h.ResultCode != tc.code || !strings.Contains(h.ResultMessage, tc.want) {
				t.Fatalf("= %+v, want %d containing %q", h, tc.code, tc.want)
			}
		})
	}
	for name, q := range map[string]string{
		"no domain":    "/purges",
		"bad start":    "/purges?domain=" + d.Domain + "&startTime=yesterday",
		"bad page":     "/purges?domain=" + d.Domain + "&page=0",
		"bad per page": "/purges?domain=" + d.Domain + "&itemsPerPage=100000",
	} {
		if h := nhn(t, env, "GET", q, secret, nil, nil); h.IsSuccessful || h.ResultCode != 10001 {
			t.Fatalf("GET %s = %+v, want 10001", name, h)
		}
	}
	var list struct{ TotalItems int }
	if h := nhn(t, env, "GET", "/purges?domain="+d.Domain, secret, nil, &list); !h.IsSuccessful || list.TotalItems != 0 {
		t.Fatalf("rejected purges were started: %+v %+v", h, list)
	}
}
