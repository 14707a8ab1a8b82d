package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/inventory"
)

// trafficStack is one real edge serving site.example.com from a
// cacheable origin, its connector reading the edge's request log, and an
// API server whose inventory is that edge (no Temporal: /v1/traffic
// reads the edges only).
type trafficStack struct {
	edge *edgetest.RunningEdge
	agg  *traffic.Aggregator
	api  string
}

const trafficKey = "traffic-key"

func startTrafficStack(t *testing.T) *trafficStack {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, "0123456789")
	}))
	t.Cleanup(origin.Close)
	host, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	e := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{{Name: "site.example.com", Hosts: []string{"site.example.com"}, Origins: []vcl.Backend{{Host: host, Port: p}}}}}
	})[0]
	s := &trafficStack{edge: e, agg: edgetest.StartTraffic(t, e)}
	inv, err := inventory.New([]inventory.Edge{e.Edge})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.APIKeys = []string{trafficKey}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Config: cfg, Inventory: inv, Logger: zap.NewNop()}))
	t.Cleanup(ts.Close)
	s.api = ts.URL
	// The reader attaches to the edge's shared memory log: a request
	// counted says it reads.
	eventually.WithinEvery(t, 20*time.Second, 200*time.Millisecond, func() error {
		s.visit(t, "/warm")
		if s.requests() == 0 {
			return fmt.Errorf("no request counted yet")
		}
		return nil
	})
	return s
}

// visit GETs path of site.example.com through the edge, as a client.
func (s *trafficStack) visit(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.edge.Edge.Address+path, nil)
	req.Host = "site.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.Header.Get("X-Cache")
}

// requests counts the requests of the edge's rings.
func (s *trafficStack) requests() uint64 {
	return sumPoints(s.agg.Read(traffic.Query{})).Requests
}

func sumPoints(series []traffic.Series) traffic.Point {
	var p traffic.Point
	for _, s := range series {
		for _, q := range s.Points {
			p.Merge(q)
		}
	}
	return p
}

// counts waits until the edge has counted at least n requests (its log
// is read asynchronously), lets a moment pass for stragglers and answers
// the summed counts.
func (s *trafficStack) counts(t *testing.T, n uint64) traffic.Point {
	t.Helper()
	eventually.WithinEvery(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got := s.requests(); got < n {
			return fmt.Errorf("%d of %d requests counted", got, n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	return sumPoints(s.agg.Read(traffic.Query{}))
}

// getTraffic is GET /v1/traffic?query: status and body.
func (s *trafficStack) getTraffic(t *testing.T, query string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.api+"/v1/traffic?"+query, nil)
	req.Header.Set("x-api-key", trafficKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestTrafficAPI(t *testing.T) {
	edgetest.RequireVarnish(t)
	s := startTrafficStack(t)

	// A day of minutes is read for one distribution only, by the API and
	// by the edge itself: at most traffic.Minutes points per edge.
	t.Run("MinuteStepNeedsDistribution", func(t *testing.T) {
		if code, body := s.getTraffic(t, "step=1m"); code != http.StatusBadRequest || !strings.Contains(string(body), "InvalidRequest") {
			t.Fatalf("step=1m without distribution: %d %.200s, want 400 InvalidRequest", code, body)
		}
		code, body := s.getTraffic(t, "step=1m&distribution=site.example.com")
		var v struct {
			Total []traffic.Series `json:"total"`
		}
		if err := json.Unmarshal(body, &v); code != http.StatusOK || err != nil || len(v.Total) != 1 || len(v.Total[0].Points) > traffic.Minutes {
			t.Fatalf("step=1m of one distribution: %d %.200s", code, body)
		}
		_, err := edge.NewClient(edge.Options{}).Traffic(context.Background(), s.edge.Edge, url.Values{"step": {"1m"}})
		var se *edge.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
			t.Fatalf("edge asked for step 1m of every distribution: %v, want 400", err)
		}
	})

	// The control plane's own GETs (prewarm and the rollout health gate,
	// both through edge.Fetcher) are not visitors: a prewarm of new
	// objects, all misses, leaves the visitors' counts and hit ratio as
	// they were, while a visitor's request after it is counted.
	t.Run("PrewarmNotCountedAsVisitors", func(t *testing.T) {
		s.visit(t, "/visited")
		if x := s.visit(t, "/visited"); x != "HIT" {
			t.Fatalf("second visit: X-Cache %s, want HIT", x)
		}
		before := s.counts(t, 2)
		f := edge.NewClient(edge.Options{}).Fetcher(context.Background(), s.edge.Edge, nil, 0)
		units := make([]edge.FetchUnit, 20)
		for i := range units {
			units[i] = edge.FetchUnit{Host: "site.example.com", Path: "/prewarmed/" + strconv.Itoa(i)}
		}
		for i, a := range f.FetchBatch(context.Background(), units) {
			if a.Err != nil || a.Result.Cache != "MISS" {
				t.Fatalf("prewarm GET %d: %+v %v, want a MISS", i, a.Result, a.Err)
			}
		}
		if _, err := f.Fetch(context.Background(), "", "site.example.com", "/prewarmed/one"); err != nil {
			t.Fatal(err)
		}
		s.visit(t, "/visited") // a visitor's hit after the prewarm
		after := s.counts(t, before.Requests+1)
		if after.Requests != before.Requests+1 || after.Miss != before.Miss || after.HitRatio() <= before.HitRatio() {
			t.Fatalf("visitors before the prewarm %+v (ratio %.2f), after %+v (ratio %.2f): want one more request, a hit, no miss",
				before, before.HitRatio(), after, after.HitRatio())
		}
	})

	// A since in the future is refused by the API in the /v1 envelope,
	// and sent to the edge directly it reads the current bucket only: the
	// edge's reader is never blocked and goes on counting.
	t.Run("FutureSinceRefusedAndEdgeKeepsCounting", func(t *testing.T) {
		future := time.Now().Add(time.Hour).Unix()
		code, body := s.getTraffic(t, "since="+strconv.FormatInt(future, 10))
		var env httpapi.ErrorBody
		if err := json.Unmarshal(body, &env); code != http.StatusBadRequest || err != nil || env.Code == "" || env.Message == "" {
			t.Fatalf("future since: %d %s, want 400 with a /v1 JSON error", code, body)
		}
		if code, body := s.getTraffic(t, "since="+strconv.FormatInt(time.Now().Unix()-5, 10)); code != http.StatusOK {
			t.Fatalf("since 5 s ago: %d %s", code, body)
		}
		for _, step := range []string{"1s", "1m"} {
			q := url.Values{"step": {step}, "since": {strconv.FormatInt(future, 10)}, "distribution": {"site.example.com"}}
			rep, err := edge.NewClient(edge.Options{}).Traffic(context.Background(), s.edge.Edge, q)
			if err != nil {
				t.Fatalf("edge with a future since, step %s: %v", step, err)
			}
			for _, sr := range rep.Series {
				if len(sr.Points) > 1 {
					t.Fatalf("step %s: %d points for a future since, want the current bucket only", step, len(sr.Points))
				}
			}
		}
		before := s.requests()
		s.visit(t, "/after-future-since")
		eventually.WithinEvery(t, 10*time.Second, 100*time.Millisecond, func() error {
			if n := s.requests(); n <= before {
				return fmt.Errorf("edge counted %d requests, still %d: its reader is stuck", n, before)
			}
			return nil
		})
	})
}
