package traffic_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

// TestReaderOverhead measures a real edge's HITs per second with and
// without the request log reader (varnishncsa feeding an Aggregator),
// rounds alternating, 8 keep-alive clients on one warmed object; and how
// long a request takes to show in the Aggregator while the edge is under
// that load. It runs only with CDNFLOW_BENCH=1 (docs/console.md figures;
// a timing, not a check):
//
//	CDNFLOW_BENCH=1 go test -count=1 -v -run TestReaderOverhead ./edge/traffic/
func TestReaderOverhead(t *testing.T) {
	if os.Getenv("CDNFLOW_BENCH") != "1" {
		t.Skip("set CDNFLOW_BENCH=1 to measure")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, "body")
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		o := []vcl.Backend{{Host: host, Port: p}}
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{
			{Name: "bench.example.com", Hosts: []string{"bench.example.com"}, Origins: o},
			{Name: "lag.example.com", Hosts: []string{"lag.example.com"}, Origins: o},
		}}
	})
	e := edges[0]
	agg := e.Connector.EnableTraffic(e.Edge.ID, 0)
	var off, on []float64
	var lags []time.Duration
	lost := 0
	const rounds, length = 4, 5 * time.Second
	for i := range 2 * rounds {
		reading := i%2 == 1
		var stop func()
		if reading {
			stop = startReader(t, e, agg)
		}
		var lag []time.Duration
		rps := hitLoad(e.Edge.Address, length, func() {
			if reading {
				if d, ok := lagOf(t, e, agg); ok {
					lag = append(lag, d)
				} else {
					lost++
				}
			}
		})
		if reading {
			stop()
			on, lags = append(on, rps), append(lags, lag...)
		} else {
			off = append(off, rps)
		}
	}
	if len(lags) == 0 {
		t.Fatalf("no probe request showed (%d lost)", lost)
	}
	slices.Sort(lags)
	t.Logf("HIT/s without the reader %v, with %v (%d rounds of %s, alternating)", rounds1(off), rounds1(on), rounds, length)
	t.Logf("with / without: %.3f (means); lag request → Aggregator under load: median %v, max %v (%d samples, %d not shown within 5 s)",
		mean(on)/mean(off), lags[len(lags)/2], lags[len(lags)-1], len(lags), lost)
}

// startReader runs a Reader of e's log into agg until the returned stop,
// once it counts requests.
func startReader(t *testing.T, e *edgetest.RunningEdge, agg *traffic.Aggregator) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = (&traffic.Reader{WorkDir: e.Process.Options().WorkDir, Agg: agg}).Run(ctx)
	}()
	for start := time.Now(); ; {
		if _, ok := lagOf(t, e, agg); ok {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("the reader counted nothing within a minute")
		}
	}
	return func() { cancel(); <-done }
}

// lagOf sends one GET to lag.example.com and answers how long until agg
// counts it (polled every millisecond); ok is false when it did not show
// within 5 s (the reader lost it).
func lagOf(t *testing.T, e *edgetest.RunningEdge, agg *traffic.Aggregator) (lag time.Duration, ok bool) {
	count := func() uint64 { return total(agg.Read(traffic.Query{Distribution: "lag.example.com"})).Requests }
	before := count()
	start := time.Now()
	get(t, e, "lag.example.com", "/lag")
	for count() == before {
		if time.Since(start) > 5*time.Second {
			return 0, false
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start), true
}

// hitLoad GETs one object with 8 keep-alive clients for length and
// answers HITs per second; probe runs every 500 ms meanwhile.
func hitLoad(addr string, length time.Duration, probe func()) float64 {
	var hits atomic.Int64
	deadline := time.Now().Add(length)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/hit.css", nil)
				req.Host = "bench.example.com"
				resp, err := c.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.Header.Get("X-Cache") == "HIT" {
					hits.Add(1)
				}
			}
		}()
	}
	for time.Now().Before(deadline.Add(-time.Second)) {
		time.Sleep(500 * time.Millisecond)
		probe()
	}
	wg.Wait()
	return float64(hits.Load()) / length.Seconds()
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func rounds1(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
