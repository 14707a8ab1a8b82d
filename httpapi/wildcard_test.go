//go:build !unit

package httpapi_test

import (
	"strings"
	"testing"
)

// NHN's WILDCARD grammar on a real edge. A
// non-ASCII folder purges the objects browsers cached percent-encoded, "?"
// is one character, "*" works mid-path, the ban covers the alias and
// objects that do not match stay HIT. More than 10 patterns are split into
// seqs of 10, each of which reaches 100.
func TestWildcardPurgeNHNGrammar(t *testing.T) {
	env, d, alias := cacheKeyEnv(t)
	objs := []string{
		"/%E7%94%BB%E5%83%8F/a.png",   // /画像/a.png
		"/%E7%94%BB%E5%83%8F2/a.png",  // /画像2/a.png: not under /画像/
		"/images/sports/acme/a.jpg",   // ac?e
		"/images/sports/acne/b.jpg",   // ac?e
		"/images/sports/acmme/a.jpg",  // two characters: no
		"/news/sports/today.jpg",      // /*/sports/*.jpg
		"/news/sports/today.png",      // not .jpg
		"/news/weather/today.jpg",     // not sports
		"/images/sports/x.jpg?v=2",    // /*/sports/*.jpg is anchored: the query is after .jpg
		"/static/%E6%97%A5/index.css", // untouched
	}
	warmAll := func() {
		t.Helper()
		var hp [][2]string
		for _, o := range objs {
			hp = append(hp, [2]string{d.Domain, o}, [2]string{alias, o})
		}
		warm(t, env, hp...)
	}
	check := func(step string, gone ...string) {
		t.Helper()
		for _, o := range objs {
			want := "HIT"
			for _, g := range gone {
				if g == o {
					want = "MISS"
				}
			}
			for _, host := range []string{d.Domain, alias} {
				if got := xcache(t, env, host, o); got != want {
					t.Fatalf("%s: %s%s = %s, want %s", step, host, o, got, want)
				}
			}
		}
	}

	warmAll()
	purge(t, env, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/画像/*"})
	check("/画像/*", objs[0])

	warmAll()
	purge(t, env, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/images/sports/ac?e/*"})
	check("/images/sports/ac?e/*", objs[2], objs[3])

	warmAll()
	purge(t, env, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/*/sports/*.jpg"})
	check("/*/sports/*.jpg", objs[2], objs[3], objs[4], objs[5])

	// 11 patterns: two seqs (10 + 1), both applied.
	warmAll()
	list := strings.Repeat("/nothing/here/*\n", 10) + "/news/weather/*"
	var pr struct {
		PurgeSeq  int64
		PurgeSeqs []int64
	}
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": list}, &pr); !h.IsSuccessful || len(pr.PurgeSeqs) != 2 {
		t.Fatalf("11 patterns: %+v %+v, want two seqs", h, pr)
	}
	for _, s := range pr.PurgeSeqs {
		waitPurge(t, env, d.Domain, s)
	}
	check("11 patterns", objs[7])

	// Patterns that cannot be translated are a 10001 naming the line.
	for _, bad := range []string{"images/*", "/a/../b/*", "/a\\", "/#x*"} {
		h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "WILDCARD", "purgeList": "/ok/*\n" + bad}, nil)
		if h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, "purgeList line 2") {
			t.Fatalf("pattern %q answered %+v, want 10001 naming purgeList line 2", bad, h)
		}
	}
}
