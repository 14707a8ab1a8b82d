package activities

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
)

// keys is n surrogate keys "k0001 k0002 …".
func keys(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%04d", i)
	}
	return strings.Join(out, " ")
}

// An edge takes 16 KiB of origin headers (a long Surrogate-Key list) and
// serves them from its cache; an answer beyond its limits is a 502 naming
// the cause, counted per distribution and cause (metric) and reported by
// the edge check.
func TestEdgeLimitsSayWhy(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		switch r.URL.Path {
		case "/big16": // 16 KiB of headers: 2,730 keys in one line, and more
			w.Header().Set("Surrogate-Key", keys(2730))
			for i := range 4 {
				w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", 512))
			}
		case "/line": // one 30 KiB header line
			w.Header().Set("X-Huge", strings.Repeat("h", 30<<10))
		case "/many": // 40 lines of 2 KiB: 80 KiB in all
			for i := range 40 {
				w.Header().Set(fmt.Sprintf("X-Many-%d", i), strings.Repeat("m", 2<<10))
			}
		case "/keys": // 3,900 keys: the xkey header would be 3,900 × (host + "#" + key)
			w.Header().Set("Surrogate-Key", keys(3900))
		}
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	host, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	const site = "a-rather-long-distribution-name.cdn.example.com"
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{{Name: site, Hosts: []string{site}, Origins: []vcl.Backend{{Host: host, Port: p}}}}}
	})
	e := edges[0]
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.Edge.Address+path, nil)
		req.Host = site
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Cache")
	}
	if code, _ := get("/big16"); code != 200 {
		t.Fatalf("16 KiB of origin headers: %d", code)
	}
	if code, cache := get("/big16"); code != 200 || cache != "HIT" {
		t.Fatalf("16 KiB of origin headers, again: %d %s, want a HIT", code, cache)
	}
	// Every key of the list was indexed: the last one purges the object.
	client := edge.NewClient(edge.Options{})
	if n, err := client.PurgeTag(context.Background(), e.Edge, site, "k2729", false); err != nil || n != 1 {
		t.Fatalf("purge of the last surrogate key: %d objects, %v", n, err)
	}
	if _, cache := get("/big16"); cache != "MISS" {
		t.Fatalf("after the key's purge: %s, want MISS", cache)
	}
	before := map[string]float64{}
	causes := map[string]string{"/line": connector.CauseHeaderLineTooBig, "/many": connector.CauseHeadersTooLarge, "/keys": connector.CauseSurrogateKeys}
	for _, c := range causes {
		before[c] = unstorableCount(t, site, c)
	}
	for path := range causes {
		if code, _ := get(path); code != http.StatusBadGateway {
			t.Errorf("%s: %d, want 502 from the connector", path, code)
		}
	}
	for path, c := range causes {
		if d := unstorableCount(t, site, c) - before[c]; d != 1 {
			t.Errorf("%s: cdnflow_edge_unstorable_total{distribution=%q,cause=%q} rose by %v, want 1", path, site, c, d)
		}
	}

	inv, err := inventory.New([]inventory.Edge{e.Edge})
	if err != nil {
		t.Fatal(err)
	}
	a := &EdgeCheck{Inventory: inv, Edges: client}
	var ts testsuite.WorkflowTestSuite
	var h EdgeHealth
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.CheckEdge, e.Edge.ID, &h); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, u := range h.Unstorable {
		if u.Site == site {
			got[u.Cause] = u.Count
		}
	}
	for _, c := range causes {
		if got[c] != 1 {
			t.Errorf("edge check: %s counted %d, want 1 (report %+v, error %q)", c, got[c], h.Unstorable, h.Error)
		}
	}
}

// unstorableCount reads cdnflow_edge_unstorable_total{distribution=site,
// cause=cause} from the process's registry (0 when absent).
func unstorableCount(t *testing.T, site, cause string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "cdnflow_edge_unstorable_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["distribution"] == site && labels["cause"] == cause {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
