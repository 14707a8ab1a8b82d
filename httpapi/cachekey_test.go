//go:build !unit

package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// cacheKeyEnv is one real varnishd edge with one open distribution (and an
// alias) in front of the test origin; purges are not rate-limited.
func cacheKeyEnv(t *testing.T) (*testenv.Env, service.DistributionView, string) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}})
	alias := "www.cachekey.example"
	return env, createWithAlias(t, env, alias), alias
}

// Raw UTF-8 URLs and the canonical ITEM purge: a prewarm of a URL written
// with raw UTF-8 warms the object a browser requests (percent-encoded), the
// pair view shows the URL as given and the key; an ITEM purge written the
// raw way evicts the encoded object; a path that is no URL is a 10001
// naming purgeList and purges nothing.
func TestCanonicalKeyPrewarmAndItemPurge(t *testing.T) {
	env, d, alias := cacheKeyEnv(t)

	given := "http://" + d.Domain + "/q?name=日本"
	id := startPrewarm(t, env, map[string]any{
		"url_list":  []string{given, "http://" + d.Domain + "/q?name=%E6%97%A5%E6%9C%AC"}, // the same object twice
		"cf_domain": d.Domain, "region": "all",
	}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Total != 1 {
		t.Fatalf("prewarm status %+v, want COMPLETED with 1 URL (two spellings of one key)", st)
	}
	if got := browserCache(t, env, 0, d.Domain, "/q?name=%E6%97%A5%E6%9C%AC"); got != "HIT" {
		t.Fatalf("browser GET of the encoded form after prewarm = %s, want HIT", got)
	}
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges", &pairs); code != http.StatusOK || len(pairs.Pairs) != 1 {
		t.Fatalf("pairs = %d %+v", code, pairs)
	}
	if p := pairs.Pairs[0]; p.URL != given || p.Key != "http://"+d.Domain+"/q?name=%E6%97%A5%E6%9C%AC" || p.State != "success" {
		t.Fatalf("pair row %+v: want URL as given and the canonical key", p)
	}

	// ITEM: the raw spelling, a space and a dot segment reach the encoded
	// objects, on the domain and the alias.
	encoded := "/%E7%94%BB%E5%83%8F/a%20b.png"
	warm(t, env, [2]string{d.Domain, encoded}, [2]string{alias, encoded}, [2]string{d.Domain, "/keep.png"})

	// A bad path anywhere in the list refuses the whole request.
	h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/画像/x/../a b.png\n/bad%zz"}, nil)
	if h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, "purgeList line 2") {
		t.Fatalf("bad ITEM path answered %+v, want 10001 naming purgeList line 2", h)
	}
	if got := xcache(t, env, d.Domain, encoded); got != "HIT" {
		t.Fatalf("a refused purge evicted %s: %s", encoded, got)
	}

	purge(t, env, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/画像/x/../a b.png"})
	for _, c := range []struct{ host, path, want string }{
		{d.Domain, encoded, "MISS"}, {alias, encoded, "MISS"}, {d.Domain, "/keep.png", "HIT"},
	} {
		if got := xcache(t, env, c.host, c.path); got != c.want {
			t.Fatalf("after ITEM purge %s%s = %s, want %s", c.host, c.path, got, c.want)
		}
	}
}
