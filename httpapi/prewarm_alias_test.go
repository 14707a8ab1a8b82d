//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// createOpenDistribution creates a distribution under key (an appKey with
// its secret) in front of the test origin and waits until it is OPEN.
func createOpenDistribution(t *testing.T, env *testenv.Env, key, keySecret, aliases string) string {
	t.Helper()
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	body := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y",
		"referrerType": "BLACKLIST", "isAllowWhenEmptyReferrer": true, "domainAlias": aliases,
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort)}},
	}}}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "@"+key+"/distributions", keySecret, body, &created); !h.IsSuccessful || len(created.Distributions) != 1 {
		t.Fatalf("create: %+v %+v", h, created)
	}
	d := created.Distributions[0].Domain
	deadline := time.Now().Add(90 * time.Second)
	for {
		var out struct {
			Distributions []service.DistributionView `json:"distributions"`
		}
		nhn(t, env, "GET", "@"+key+"/distributions?domain="+d, keySecret, nil, &out)
		if len(out.Distributions) == 1 && out.Distributions[0].Status == "OPEN" {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never OPEN: %+v", d, out.Distributions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// browserCache asks edge i for path the way a visitor's browser does, with
// Host = host, and answers the edge's X-Cache.
func browserCache(t *testing.T, env *testenv.Env, i int, host, path string) string {
	t.Helper()
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	resp := env.EdgeGet(t, i, host, path, h)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s on edge %d = %d", host, path, i, resp.StatusCode)
	}
	return resp.Header.Get("X-Cache")
}

// The Prewarm bodies of the CloudFront Extensions client — URLs
// on the customer's host (an alias), cf_domain = the distribution, no
// target_type, region one string, no protocol — start jobs that complete
// and leave the alias URLs a HIT for visitors on the targeted edges only.
func TestPrewarmOnDistributionAliases(t *testing.T) {
	places := []inventory.Edge{{Region: "us", Country: "united_states"}, {Region: "apac", Country: "japan"}, {Region: "eu", Country: "germany"}}
	env := testenv.Start(t, testenv.Options{Edges: 3,
		Place: func(i int, e *inventory.Edge) { e.Region, e.Country = places[i].Region, places[i].Country },
		Configure: func(c *config.Config) {
			c.AppKeys = map[string]string{appKey: secret, "app-two": "secret-two"}
			c.DefaultOrigin = "" // only distributions are served: an alias HIT is the distribution's
			c.ShowSuccessURLs = true
		}})
	dist := createOpenDistribution(t, env, appKey, secret, "www.example.com\nstatic.example.com")
	other := createOpenDistribution(t, env, "app-two", "secret-two", "other.example.net")

	start := func(body string) string {
		t.Helper()
		resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
		var out struct{ RequestID string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.RequestID == "" {
			t.Fatalf("prewarm %s = %d %s", body, resp.StatusCode, data)
		}
		return out.RequestID
	}
	completed := func(id string, urls int, edges ...string) {
		t.Helper()
		st := waitPrewarm(t, env, id)
		if st.Status != "COMPLETED" || st.Total != urls || st.Completed != urls || len(st.FailedURL) != 0 || st.SuccessURL == nil || len(*st.SuccessURL) != urls {
			t.Fatalf("status = %+v", st)
		}
		if st.Domain != dist {
			t.Fatalf("status domain = %q, want the distribution %s", st.Domain, dist)
		}
		var got []string
		for _, e := range st.Edges {
			got = append(got, e.EdgeID)
		}
		if fmt.Sprint(got) != fmt.Sprint(edges) {
			t.Fatalf("edges = %v, want %v", got, edges)
		}
	}
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, env.Edges[i].Edge.ID)
		}
		return out
	}

	// The client's first body: region "all" is every edge.
	completed(start(`{"url_list":["https://www.example.com/index.html"],"cf_domain":"`+dist+`","region":"all"}`), 1, ids(0, 1, 2)...)
	for i := range env.Edges {
		if got := browserCache(t, env, i, "www.example.com", "/index.html"); got != "HIT" {
			t.Fatalf("alias URL on edge %d = %s after prewarm, want HIT", i, got)
		}
	}
	// The pairs went with Host = the alias, not cf_domain: the
	// distribution's own domain is another cache object, still cold.
	if got := browserCache(t, env, 0, dist, "/index.html"); got != "MISS" {
		t.Fatalf("%s/index.html = %s, want MISS (not warmed)", dist, got)
	}

	// The client's second body: region "apac" is the one apac edge.
	completed(start(`{"url_list":["https://www.example.com/js/config.js"],"cf_domain":"`+dist+`","region":"apac"}`), 1, ids(1)...)
	for i, want := range []string{"MISS", "HIT", "MISS"} {
		if got := browserCache(t, env, i, "www.example.com", "/js/config.js"); got != want {
			t.Fatalf("config.js on edge %d = %s, want %s", i, got, want)
		}
	}

	// cf_domain omitted: resolved from the alias; PoP ids infer target_type pop.
	completed(start(`{"url_list":["http://static.example.com/css/a.css","https://static.example.com/css/b.css","http://`+dist+`/css/c.css"],"region":["`+env.Edges[2].Edge.ID+`"]}`), 3, ids(2)...)
	for _, u := range [][2]string{{"static.example.com", "/css/a.css"}, {"static.example.com", "/css/b.css"}, {dist, "/css/c.css"}} {
		if got := browserCache(t, env, 2, u[0], u[1]); got != "HIT" {
			t.Fatalf("%s%s on edge 2 = %s, want HIT", u[0], u[1], got)
		}
	}
	// A country name infers target_type country.
	completed(start(`{"url_list":["http://www.example.com/img/logo.png"],"region":"japan"}`), 1, ids(1)...)
	if got := browserCache(t, env, 1, "www.example.com", "/img/logo.png"); got != "HIT" {
		t.Fatalf("logo.png on the japan edge = %s", got)
	}

	// The jobs carry the distribution's appKey in visibility.
	q := "CdnflowKind = 'prewarm' AND CdnflowAppKey = '" + appKey + "' AND CdnflowDomain = '" + dist + "'"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := env.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetExecutions()); n == 4 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d prewarm jobs of %s under appKey %s, want 4", n, dist, appKey)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// What cannot be warmed as one job is a 400 naming the URL and why.
	pop := env.Edges[0].Edge.ID
	cases := map[string]struct{ body, want string }{
		"URLs spanning distributions": {
			`{"url_list":["http://www.example.com/a","http://other.example.net/b"],"region":"all"}`,
			`url_list[1] "http://other.example.net/b" is on distribution ` + other + `, not on distribution ` + dist},
		"URL on another distribution than cf_domain": {
			`{"url_list":["http://other.example.net/b"],"cf_domain":"` + dist + `","region":"all"}`,
			`url_list[0] "http://other.example.net/b" is on distribution ` + other},
		"unknown host": {
			`{"url_list":["http://nobody.example/x"],"region":"all"}`,
			`url_list[0] "http://nobody.example/x": host nobody.example is served by no distribution`},
		"unknown host beside an alias": {
			`{"url_list":["http://www.example.com/a","http://nobody.example/x"],"cf_domain":"` + dist + `","region":"all"}`,
			`url_list[1] "http://nobody.example/x": host nobody.example is not served by distribution ` + dist},
		"unknown cf_domain": {
			`{"url_list":["http://nobody.example/x"],"cf_domain":"nobody.example","region":"all"}`,
			`cf_domain nobody.example is neither the domain nor a domainAlias of a live distribution`},
		"mixed target values": {
			`{"url_list":["http://www.example.com/a"],"region":["us","` + pop + `"]}`,
			`region mixes kinds of target (region "us", pop "` + pop + `")`},
		"unknown target value": {
			`{"url_list":["http://www.example.com/a"],"region":"mars"}`,
			`region "mars" is no region code, PoP id or country name`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, data := postJSON(t, env.API.URL+"/prewarm", tc.body, nil)
			var e struct{ Code, Message string }
			_ = json.Unmarshal(data, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Code != "InvalidRequest" || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("= %d %s, want 400 containing %q", resp.StatusCode, data, tc.want)
			}
			if strings.HasPrefix(tc.want, "region") && !strings.Contains(e.Message, "PoP ids ("+strings.Join(env.Inventory.IDs(), ", ")+")") {
				t.Fatalf("%s does not list the valid values", e.Message)
			}
		})
	}
}
