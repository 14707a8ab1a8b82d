package service

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/inventory"
)

func fuzzInventory(t interface{ Fatal(...any) }) *inventory.Inventory {
	inv, err := inventory.New([]inventory.Edge{
		{ID: "ATL56-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"},
		{ID: "NRT57-C3", Region: "jp", Country: "japan", Address: "127.0.0.1:3", AdminAddress: "127.0.0.1:4", SecretFile: "s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// The Prewarm body decoder and validator: never a panic, and whatever
// passes keeps the promises the workflow relies on: every URL of the body
// is in the job exactly once (fragment dropped, first position kept), on
// the job's domain, and the edges are distinct inventory edges.
func FuzzValidatePrewarm(f *testing.F) {
	f.Add([]byte(`{"url_list":["http://a.example/x"],"cf_domain":"a.example","target_type":"pop","region":["ATL56-C1"]}`))
	f.Add([]byte(`{"url_list":["https://a.example/x?y=1#f"],"target_type":"region","region":"all","timeout":"15m","header":["X-A: b"]}`))
	f.Add([]byte(`{"url_list":["http://a.example/x"],"cf_domain":"a.example","target_type":"country","region":["japan"],"timeout":30,"header":{"X":"y"}}`))
	f.Add([]byte(`{"url_list":["http://a.example/x","http://a.example/x#f"," http://a.example/y"],"cf_domain":"a.example","target_type":"pop","region":["ATL56-C1"]}`))
	f.Add([]byte(`{"url_list":[],"region":null}`))
	f.Add([]byte(`{"url_list":["ftp://x"],"protocol":"gopher","timeout":-1}`))
	inv := fuzzInventory(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req PrewarmRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		v, err := ValidatePrewarm(req, inv, 0)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("non-validation error %T: %v", err, err)
			}
			return
		}
		if len(v.urls) == 0 || len(v.urls) > MaxPrewarmURLs || len(v.edges) == 0 || (v.domain != "" && !validHostname(v.domain)) {
			t.Fatalf("accepted an invalid job: %+v", v)
		}
		for _, raw := range v.urls {
			k, err := cachekey.Parse(raw)
			if err != nil || !validHostname(strings.TrimSuffix(k.Host, ".")) {
				t.Fatalf("accepted URL %q without a valid host", raw)
			}
		}
		// The host rules: with cf_domain not a distribution and a default
		// origin, every URL is on cf_domain (or the first URL's host).
		if tgt, err := resolvePrewarmTarget(req.CFDomain, req.URLList, hostIndex{}, true); err == nil {
			for _, raw := range v.urls {
				if k, _ := cachekey.Parse(raw); strings.TrimSuffix(k.Host, ".") != tgt.Domain {
					t.Fatalf("accepted URL %q not on %s", raw, tgt.Domain)
				}
			}
		}
		var want []string
		seen := map[string]bool{}
		for _, raw := range req.URLList {
			k, err := cachekey.Parse(strings.TrimSpace(raw))
			if err != nil {
				t.Fatalf("accepted a URL with no cache key %q: %v", raw, err)
			}
			if !seen[k.String()] {
				seen[k.String()] = true
				want = append(want, strings.TrimSpace(raw))
			}
		}
		if !slices.Equal(v.urls, want) {
			t.Fatalf("job URLs %q, want each body URL once per cache key, as given, in order: %q", v.urls, want)
		}
		ids := map[string]bool{}
		for _, e := range v.edges {
			if ids[e.ID] {
				t.Fatalf("edge %s selected twice", e.ID)
			}
			ids[e.ID] = true
			if got, ok := inv.Get(e.ID); !ok || got != e {
				t.Fatalf("selected edge %+v is not the inventory's", e)
			}
		}
	})
}

// patchOnlyRefusal is a PATCH refused by the rule only PATCH has (NHN v1.5
// partial update: an origin given in a PATCH needs its originPath), which
// create and PUT accept without one.
func patchOnlyRefusal(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve) && strings.Contains(ve.Msg, "originPath is required")
}

// Distribution bodies in every mode: never a panic; accepted configs are
// inside the spec's ranges; and a body is idempotent: PATCHing a config
// with the body that made it (create, or PUT over another config) changes
// nothing. (A PUT keeps optional fields it omits, so it may depend on the
// config it replaces.)
func FuzzDistributionBody(f *testing.F) {
	f.Add([]byte(`{"useOriginHttpProtocolDowngrade":false,"useOrigin":"Y","referrerType":"WHITELIST","origins":[{"origin":"0","port":1}]}`))
	f.Add([]byte(`{"region":"GLOBAL","useOriginHttpProtocolDowngrade":false,"useOrigin":"N","referrerType":"BLACKLIST","origins":[{"origin":"o.example","port":80,"originPath":"/p"}]}`))
	f.Add([]byte(`{"domain":"d.example","maxAge":2147483647,"referrers":"a\\.b\nc","domainAlias":"x.example\ny.example","callback":{"httpMethod":"put","url":"http://cb.example/{status}"}}`))
	f.Add([]byte(`{"origins":[{"origin":"1.2.3.4","httpsPort":443}],"useOriginHttpProtocolDowngrade":true}`))
	f.Add([]byte(`{"region":"GLOBAL","useOriginHttpProtocolDowngrade":false,"useOrigin":"N","referrerType":"WHITELIST","maxAge":600,"referrers":"a\\.example","description":"d","domainAlias":"x.example","origins":[{"origin":"o.example","port":80,"originPath":"/p"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b DistributionBody
		if json.Unmarshal(body, &b) != nil {
			return
		}
		if created, err := buildConfig(b, modeCreate, distribution.Config{}); err == nil {
			patched, err := buildConfig(b, modePatch, created)
			if patchOnlyRefusal(err) {
				return
			}
			if err != nil || !reflect.DeepEqual(patched, created) {
				t.Fatalf("PATCH with the creating body changed the config (%v):\n%+v\n%+v", err, created, patched)
			}
		}
		other := distribution.Config{MaxAge: 7, Description: "other", Referrers: "x"}
		if put, err := buildConfig(b, modePut, other); err == nil {
			patched, err := buildConfig(b, modePatch, put)
			if patchOnlyRefusal(err) {
				return
			}
			if err != nil || !reflect.DeepEqual(patched, put) {
				t.Fatalf("PATCH with the PUT body changed the config (%v):\n%+v\n%+v", err, put, patched)
			}
		}
		for _, mode := range []bodyMode{modeCreate, modePut, modePatch} {
			cfg, err := buildConfig(b, mode, distribution.Config{})
			if err != nil {
				if _, ok := err.(*ValidationError); !ok {
					t.Fatalf("non-validation error %T: %v", err, err)
				}
				continue
			}
			if cfg.MaxAge < 0 || cfg.MaxAge > MaxAgeLimit || len(cfg.Description) > 4*255 || len(cfg.Referrers) > 1024 {
				t.Fatalf("accepted out-of-range config %+v", cfg)
			}
			if mode != modePatch && len(cfg.Origins) == 0 {
				t.Fatalf("accepted %v without origins", mode)
			}
			for _, o := range cfg.Origins {
				if o.OriginPath != "" && !strings.HasPrefix(o.OriginPath, "/") {
					t.Fatalf("accepted originPath %q", o.OriginPath)
				}
			}
		}
	})
}

// Purge lists: never a panic; batches respect the limits and every path is
// absolute; and no path is lost, duplicated or reordered: the batches put
// together are the list's non-blank lines, trimmed, in order, and only the
// last batch may be short.
func FuzzSplitPurgeList(f *testing.F) {
	f.Add("ITEM", "/a\n/b")
	f.Add("WILDCARD", "/img/*")
	f.Add("ALL", "")
	f.Add("TAG", "release-1")
	f.Add("ITEM", "a\n\n/b c")
	f.Fuzz(func(t *testing.T, typ, list string) {
		batches, err := SplitPurgeList(typ, list, 200, 10)
		if err != nil {
			return
		}
		if typ == activities.PurgeAll {
			if len(batches) != 1 || len(batches[0]) != 0 {
				t.Fatalf("ALL gave batches %q, want one empty batch", batches)
			}
			return
		}
		size := 200
		if typ == activities.PurgeWildcard {
			size = 10
		}
		var want, got []string
		for _, line := range strings.Split(list, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				if typ == activities.PurgeItem {
					// ITEM paths are kept as their canonical cache key.
					if line, err = cachekey.PathQuery(line); err != nil {
						t.Fatalf("accepted list holds %q, which has no cache key: %v", line, err)
					}
				}
				want = append(want, line)
			}
		}
		for i, b := range batches {
			got = append(got, b...)
			if len(b) == 0 || len(b) > size || (i < len(batches)-1 && len(b) != size) {
				t.Fatalf("batch %d of %d has %d paths, want %d (the last 1 to %d)", i, len(batches), len(b), size, size)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("batches hold %q, want the list's lines %q", got, want)
		}
		for _, b := range batches {
			if len(b) > 200 || (typ == activities.PurgeWildcard && len(b) > cachekey.MaxWildcardPatterns) {
				t.Fatalf("%s batch of %d", typ, len(b))
			}
			for _, p := range b {
				if (typ == activities.PurgeItem || typ == activities.PurgeWildcard) && !strings.HasPrefix(p, "/") {
					t.Fatalf("accepted path %q", p)
				}
				// ITEM paths are canonical cache keys already; WILDCARD
				// patterns always translate into a ban regex.
				if c, err := cachekey.PathQuery(p); typ == activities.PurgeItem && (err != nil || c != p) {
					t.Fatalf("ITEM path %q is not canonical (%q, %v)", p, c, err)
				}
				if _, err := cachekey.WildcardRegex(p); typ == activities.PurgeWildcard && err != nil {
					t.Fatalf("accepted WILDCARD %q: %v", p, err)
				}
			}
		}
	})
}
