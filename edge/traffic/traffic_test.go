package traffic_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/eventually"
)

// startTrafficEdge starts one real edge serving sites a.example.com and
// b.example.com from a cacheable test origin, with its connector reading
// the edge's request log (varnishncsa) into an Aggregator.
func startTrafficEdge(t *testing.T) (*edgetest.RunningEdge, *traffic.Aggregator) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		if r.URL.Path == "/short" {
			w.Header().Set("Cache-Control", "max-age=1")
		}
		_, _ = io.WriteString(w, "0123456789")
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		o := []vcl.Backend{{Host: host, Port: p}}
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{
			{Name: "a.example.com", Hosts: []string{"a.example.com"}, Origins: o},
			{Name: "b.example.com", Hosts: []string{"b.example.com", "www.b.example.com"}, Origins: o},
		}}
	})
	e := edges[0]
	agg := edgetest.StartTraffic(t, e)
	// The reader attaches to the edge's shared memory log: a request
	// counted says it reads.
	eventually.WithinEvery(t, 20*time.Second, 200*time.Millisecond, func() error {
		get(t, e, "warm.example.org", "/")
		if total(agg.Read(traffic.Query{})).Requests == 0 {
			return fmt.Errorf("no request counted yet")
		}
		return nil
	})
	return e, agg
}

// get sends GET path with Host host through edge e.
func get(t *testing.T, e *edgetest.RunningEdge, host, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Edge.Address+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func total(series []traffic.Series) traffic.Point {
	var p traffic.Point
	for _, s := range series {
		for _, q := range s.Points {
			p.Merge(q)
		}
	}
	return p
}

// A real edge's traffic under 400 requests with random Host headers: the
// Prometheus label set on the connector stays the edge's two sites plus
// "other", while each request is counted; a distribution's hits and
// misses are told apart (a MISS, then a HIT of the same object) and read
// back through the edge as the control plane reads them.
func TestLabelsBoundedUnderRandomHosts(t *testing.T) {
	e, agg := startTrafficEdge(t)
	before := total(agg.Read(traffic.Query{})).Requests
	if x := get(t, e, "a.example.com", "/obj").Header.Get("X-Cache"); x != "MISS" {
		t.Fatalf("first GET: X-Cache %s, want MISS", x)
	}
	if x := get(t, e, "A.Example.com:80", "/obj").Header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("second GET: X-Cache %s, want HIT", x)
	}
	get(t, e, "www.b.example.com", "/b")
	// An object past its TTL is served from grace: a stale hit.
	get(t, e, "a.example.com", "/short")
	time.Sleep(2100 * time.Millisecond)
	get(t, e, "a.example.com", "/short")
	const random = 400
	for i := range random {
		get(t, e, fmt.Sprintf("r%d-%x.example.net", i, rand.Uint64()), "/"+strconv.Itoa(i))
	}
	want := before + 5 + random
	eventually.WithinEvery(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := total(agg.Read(traffic.Query{})).Requests; n < want {
			return fmt.Errorf("%d of %d requests counted", n, want)
		}
		return nil
	})
	labels := metricLabels(t, e)
	if want := []string{"a.example.com", "b.example.com", "other"}; !slices.Equal(labels, want) {
		t.Fatalf("distribution labels %v, want %v", labels, want)
	}
	rep, err := edge.NewClient(edge.Options{}).Traffic(context.Background(), e.Edge, url.Values{"distribution": {"a.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if a := total(rep.Series); len(rep.Series) != 1 || a.Hit != 1 || a.Miss != 2 || a.Stale != 1 || a.Requests != 4 || a.Bytes != 40 || a.S2xx != 4 || a.OriginFetches != 2 {
		t.Fatalf("a.example.com through the edge: %+v in %d series, want 1 hit, 2 misses, 1 stale, 40 bytes, 2 origin fetches", a, len(rep.Series))
	}
}

// metricLabels scrapes the connector's Prometheus series through the
// edge (control token) and answers the distinct distribution labels.
func metricLabels(t *testing.T, e *edgetest.RunningEdge) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Edge.Address+connector.TrafficPath+"/metrics", nil)
	req.Host = "edge-admin.cdnflow"
	req.Header.Set(connector.HeaderAdmin, "1")
	req.Header.Set(connector.HeaderControl, e.ControlToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`distribution="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
		seen[m[1]] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	if n := len(regexp.MustCompile(`(?m)^cdnflow_edge_requests_total\{`).FindAllString(string(body), -1)); n > 3*5 {
		t.Fatalf("%d request series, more than 3 distributions × 5 classes", n)
	}
	return out
}

// Past MaxDistributions, new distributions fold into "other".
func TestAggregatorBoundsDistributions(t *testing.T) {
	agg := traffic.NewAggregator("E1", func(h string) (string, bool) { return h, true }, 3)
	for i := range 50 {
		agg.Add(traffic.Sample{Host: fmt.Sprintf("d%d.example.com", i), Class: traffic.ClassHit, Status: 200})
	}
	series := agg.Read(traffic.Query{})
	if len(series) != 4 || series[3].Distribution != traffic.OtherDistribution || total(series[3:]).Requests != 47 {
		t.Fatalf("series %d (last %s, %d requests), want 3 distributions and other with 47", len(series), series[len(series)-1].Distribution, total(series[3:]).Requests)
	}
}
