package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/inventory"
)

func testHostIndex() hostIndex {
	idx := hostIndex{}
	idx.add(prewarmSite{AppKey: "app-one", Domain: "d1.cdn.test", Status: distribution.StatusOpen, Hosts: []string{"d1.cdn.test", "www.example.com", "static.example.com"}})
	idx.add(prewarmSite{AppKey: "app-two", Domain: "d2.cdn.test", Status: distribution.StatusOpen, Hosts: []string{"d2.cdn.test", "other.example.net"}})
	idx.add(prewarmSite{AppKey: "app-one", Domain: "d3.cdn.test", Status: distribution.StatusSuspend, Hosts: []string{"d3.cdn.test"}})
	// A refused change left d4 in ERROR with a host d1 serves.
	idx.add(prewarmSite{AppKey: "app-one", Domain: "d4.cdn.test", Status: distribution.StatusError, Hosts: []string{"d4.cdn.test", "www.example.com"}})
	idx.add(prewarmSite{AppKey: "app-one", Domain: "d5.cdn.test", Status: distribution.StatusOpen, Hosts: []string{"d5.cdn.test", "twice.example"}})
	idx.add(prewarmSite{AppKey: "app-two", Domain: "d6.cdn.test", Status: distribution.StatusOpen, Hosts: []string{"d6.cdn.test", "twice.example"}})
	return idx
}

func TestResolvePrewarmTarget(t *testing.T) {
	idx := testHostIndex()
	cases := []struct {
		name          string
		cf            string
		urls          []string
		defaultServed bool
		want          prewarmTarget
		wantErr       []string
	}{
		{name: "cf_domain is the distribution, URL on an alias", cf: "d1.cdn.test",
			urls: []string{"https://www.example.com/index.html"}, want: prewarmTarget{Domain: "d1.cdn.test", AppKey: "app-one"}},
		{name: "URLs on the domain and both aliases", cf: "D1.cdn.test",
			urls: []string{"https://WWW.example.com/a", "http://static.example.com:8080/b", "http://d1.cdn.test/c"}, want: prewarmTarget{Domain: "d1.cdn.test", AppKey: "app-one"}},
		{name: "cf_domain given as an alias names its distribution", cf: "static.example.com",
			urls: []string{"http://www.example.com/a"}, want: prewarmTarget{Domain: "d1.cdn.test", AppKey: "app-one"}},
		{name: "omitted cf_domain resolved from an alias",
			urls: []string{"http://static.example.com/a", "https://www.example.com/b"}, want: prewarmTarget{Domain: "d1.cdn.test", AppKey: "app-one"}},
		{name: "omitted cf_domain, another appKey's distribution",
			urls: []string{"http://other.example.net/a"}, want: prewarmTarget{Domain: "d2.cdn.test", AppKey: "app-two"}},
		{name: "URLs spanning distributions",
			urls:    []string{"http://www.example.com/a", "http://other.example.net/b"},
			wantErr: []string{`url_list[1] "http://other.example.net/b" is on distribution d2.cdn.test, not on distribution d1.cdn.test`, "one request warms one distribution"}},
		{name: "URL on another distribution than cf_domain", cf: "d1.cdn.test",
			urls:    []string{"http://other.example.net/b"},
			wantErr: []string{`url_list[0] "http://other.example.net/b" is on distribution d2.cdn.test`, "cf_domain d1.cdn.test"}},
		{name: "host no distribution serves, beside a distribution's", cf: "d1.cdn.test", defaultServed: true,
			urls:    []string{"http://www.example.com/a", "http://nobody.example/b"},
			wantErr: []string{`url_list[1] "http://nobody.example/b": host nobody.example is not served by distribution d1.cdn.test`, "d1.cdn.test, www.example.com, static.example.com"}},
		{name: "unknown host, no cf_domain, no default origin",
			urls:    []string{"http://nobody.example/b"},
			wantErr: []string{`url_list[0] "http://nobody.example/b": host nobody.example is served by no distribution`, "cf_domain is not set"}},
		{name: "unknown cf_domain, no default origin", cf: "nobody.example",
			urls:    []string{"http://nobody.example/b"},
			wantErr: []string{"cf_domain nobody.example is neither the domain nor a domainAlias", "no default origin"}},
		{name: "default-served cf_domain keeps the one-host rule", cf: "assets.example.com", defaultServed: true,
			urls: []string{"http://assets.example.com/a", "https://ASSETS.example.com/b"}, want: prewarmTarget{Domain: "assets.example.com"}},
		{name: "default-served cf_domain, URL elsewhere", cf: "assets.example.com", defaultServed: true,
			urls:    []string{"http://assets.example.com/a", "http://www.example.com/b"},
			wantErr: []string{`url_list[1] "http://www.example.com/b" is not on cf_domain assets.example.com`, "on distribution d1.cdn.test"}},
		{name: "default-served host from the URLs", defaultServed: true,
			urls: []string{"http://127.0.0.1/a", "http://127.0.0.1:9/b"}, want: prewarmTarget{Domain: "127.0.0.1"}},
		{name: "default-served host, mixed hosts", defaultServed: true,
			urls:    []string{"http://a.example/a", "http://b.example/b"},
			wantErr: []string{`url_list[1] "http://b.example/b" is not on a.example, the host of url_list[0]`}},
		{name: "suspended distribution", cf: "d3.cdn.test", urls: []string{"http://d3.cdn.test/a"},
			wantErr: []string{"distribution d3.cdn.test (cf_domain d3.cdn.test) is suspended"}},
		{name: "host claimed twice", urls: []string{"http://twice.example/a"},
			wantErr: []string{"twice.example is claimed by distributions d5.cdn.test and d6.cdn.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvePrewarmTarget(tc.cf, tc.urls, idx, tc.defaultServed)
			if tc.wantErr != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("= %+v, %v; want a validation error", got, err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(ve.Msg, w) {
						t.Fatalf("error %q does not say %q", ve.Msg, w)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestInferTargetType(t *testing.T) {
	inv := fuzzInventory(t) // ATL56-C1 (us, united_states), NRT57-C3 (jp, japan)
	cases := []struct {
		given   string
		values  []string
		want    string
		wantErr []string
	}{
		{values: []string{"all"}, want: "region"},
		{values: []string{"ALL"}, want: "region"},
		{values: []string{"apac"}, want: "region"},
		{values: []string{"us", "JP"}, want: "region"},
		{values: []string{"ATL56-C1", "NRT57-C3"}, want: "pop"},
		{values: []string{"japan", "united_states"}, want: "country"},
		{given: "Country", values: []string{"all"}, want: "country"},
		{given: "pop", values: []string{"apac"}, want: "pop"}, // Select reports the unknown PoP
		{values: []string{"us", "ATL56-C1"}, wantErr: []string{"region mixes kinds of target", `region "us"`, `pop "ATL56-C1"`, "set target_type", "ATL56-C1, NRT57-C3", "south_korea"}},
		{values: []string{"japan", "jp"}, wantErr: []string{"region mixes kinds of target", `country "japan"`}},
		{values: []string{"mars"}, wantErr: []string{`region "mars" is no region code, PoP id or country name`, `"all" or region codes (apac, au`, "PoP ids (ATL56-C1, NRT57-C3)", "country names (india"}},
		{values: []string{"atl56-c1"}, wantErr: []string{`region "atl56-c1" is no region code`}},
		{values: []string{"all", "us"}, wantErr: []string{`region "all" is no region code`}},
		{values: nil, wantErr: []string{"region must name at least one"}},
	}
	for _, tc := range cases {
		got, err := inferTargetType(tc.given, tc.values, inv)
		if tc.wantErr != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("%q %v = %q, %v; want a validation error", tc.given, tc.values, got, err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(ve.Msg, w) {
					t.Fatalf("%v: error %q does not say %q", tc.values, ve.Msg, w)
				}
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Fatalf("%q %v = %q, %v; want %q", tc.given, tc.values, got, err, tc.want)
		}
	}
	// A PoP id that is also a region code is ambiguous without target_type.
	odd, err := inventory.New([]inventory.Edge{{ID: "eu", Region: "eu", Country: "germany", Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inferTargetType("", []string{"eu"}, odd); err == nil || !strings.Contains(err.Error(), "fits target_type region and pop alike") {
		t.Fatalf("ambiguous value: %v", err)
	}
}

// The two bodies the solution's published client sends pass validation:
// no target_type, region a single string, URLs on an alias, https URLs
// without protocol (each URL's scheme decides: scheme stays empty).
func TestValidatePrewarmClientBodies(t *testing.T) {
	inv, err := inventory.New([]inventory.Edge{
		{ID: "ATL56-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"},
		{ID: "SIN2-C1", Region: "apac", Country: "singapore", Address: "127.0.0.1:3", AdminAddress: "127.0.0.1:4", SecretFile: "s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for body, edges := range map[string]int{
		`{"url_list":["https://www.example.com/index.html"],"cf_domain":"d1.cdn.test","region":"all"}`:    2,
		`{"url_list":["https://www.example.com/js/config.js"],"cf_domain":"d1.cdn.test","region":"apac"}`: 1,
	} {
		var req PrewarmRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatal(err)
		}
		v, err := ValidatePrewarm(req, inv, 0)
		if err != nil || len(v.edges) != edges || v.scheme != "" || len(v.urls) != 1 {
			t.Fatalf("%s: %+v %v", body, v, err)
		}
		tgt, err := resolvePrewarmTarget(req.CFDomain, req.URLList, testHostIndex(), false)
		if err != nil || tgt.Domain != "d1.cdn.test" {
			t.Fatalf("%s: %+v %v", body, tgt, err)
		}
	}
	// An explicit protocol wins and keeps its check of HTTPS listeners.
	req := PrewarmRequest{URLList: []string{"http://www.example.com/a"}, Protocol: "https", Region: json.RawMessage(`"all"`)}
	if _, err := ValidatePrewarm(req, inv, 0); err == nil || !strings.Contains(err.Error(), "no HTTPS listener") {
		t.Fatalf("protocol https without listeners: %v", err)
	}
	req.Protocol = "HTTP"
	if v, err := ValidatePrewarm(req, inv, 0); err != nil || v.scheme != "http" {
		t.Fatalf("protocol http: %+v %v", v, err)
	}
}

// A draining PoP is inferred as a PoP, so the request is told it drains
// (inventory.Select), not that it names nothing.
func TestInferTargetTypeDrainingPoP(t *testing.T) {
	inv, err := inventory.New([]inventory.Edge{
		{ID: "ATL56-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"},
		{ID: "ORD51-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:3", AdminAddress: "127.0.0.1:4", SecretFile: "s", Drain: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	kind, err := inferTargetType("", []string{"ORD51-C1"}, inv)
	if err != nil || kind != inventory.TargetPoP {
		t.Fatalf("infer ORD51-C1 = %q, %v; want pop", kind, err)
	}
	if _, err := inv.Select(kind, []string{"ORD51-C1"}); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("select draining PoP: %v", err)
	}
}

// countingSource is a hostIndex that records the hosts asked about.
type countingSource struct {
	hostIndex
	asked []string
}

func (c *countingSource) sites(host string) ([]prewarmSite, error) {
	c.asked = append(c.asked, host)
	return c.hostIndex.sites(host)
}

// Resolution asks about two hosts at most, however many URLs and hosts a
// request names: the lookup's cost does not grow with the request.
func TestResolvePrewarmTargetAsksTwoHostsAtMost(t *testing.T) {
	var onDist, spread []string
	for i := range 3000 {
		onDist = append(onDist, fmt.Sprintf("http://%s/p%d", []string{"www.example.com", "static.example.com", "d1.cdn.test"}[i%3], i))
		spread = append(spread, fmt.Sprintf("http://h%d.example/p", i))
	}
	cases := []struct {
		name          string
		cf            string
		urls          []string
		defaultServed bool
		asked         int
	}{
		{name: "every URL on the distribution", cf: "d1.cdn.test", urls: onDist, asked: 1},
		{name: "cf_domain omitted", urls: onDist, asked: 1},
		{name: "one URL elsewhere", cf: "d1.cdn.test", urls: append(slices.Clone(onDist), "http://other.example.net/x"), asked: 2},
		{name: "thousands of hosts no distribution serves", urls: spread, defaultServed: true, asked: 2},
		{name: "thousands of hosts beside a distribution", cf: "d1.cdn.test", urls: append([]string{onDist[0]}, spread...), asked: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingSource{hostIndex: testHostIndex()}
			_, _ = resolvePrewarmTarget(tc.cf, tc.urls, src, tc.defaultServed)
			if len(src.asked) != tc.asked {
				t.Fatalf("asked about %d hosts (%v), want %d", len(src.asked), src.asked, tc.asked)
			}
		})
	}
}
