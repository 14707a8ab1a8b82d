package service

import (
	"encoding/json"

	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/activities"
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
// passes keeps the promises the workflow relies on.
func FuzzValidatePrewarm(f *testing.F) {
	f.Add([]byte(`{"url_list":["http://a.example/x"],"cf_domain":"a.example","target_type":"pop","region":["ATL56-C1"]}`))
	f.Add([]byte(`{"url_list":["https://a.example/x?y=1#f"],"target_type":"region","region":"all","timeout":"15m","header":["X-A: b"]}`))
	f.Add([]byte(`{"url_list":["http://a.example/x"],"cf_domain":"a.example","target_type":"country","region":["japan"],"timeout":30,"header":{"X":"y"}}`))
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
	})
}

// Distribution bodies in every mode: never a panic; accepted configs are
// inside the spec's ranges.
func FuzzDistributionBody(f *testing.F) {
	f.Add([]byte(`{"region":"GLOBAL","useOriginHttpProtocolDowngrade":false,"useOrigin":"N","referrerType":"BLACKLIST","origins":[{"origin":"o.example","port":80,"originPath":"/p"}]}`))
	f.Add([]byte(`{"domain":"d.example","maxAge":2147483647,"referrers":"a\\.b\nc","domainAlias":"x.example\ny.example","callback":{"httpMethod":"put","url":"http://cb.example/{status}"}}`))
	f.Add([]byte(`{"origins":[{"origin":"1.2.3.4","httpsPort":443}],"useOriginHttpProtocolDowngrade":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b DistributionBody
		if json.Unmarshal(body, &b) != nil {
			return
		}
		for _, mode := range []bodyMode{modeCreate, modePut, modePatch} {
			cfg, err := buildConfig(b, mode, activities.DistributionConfig{})
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
// absolute.
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
