package vcl_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

// TestHitThroughput measures cache HITs per second through one real edge
// on loopback: 8 keep-alive clients GET one warmed object for 5 s, with
// and without an analytics cookie. It runs only with CDNFLOW_BENCH=1
// (docs/performance.md figures; a timing, not a check).
func TestHitThroughput(t *testing.T) {
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
		return vcl.Config{EdgeID: id, Sites: []vcl.Site{{Name: "b", Hosts: []string{"bench.example.com"}, Origins: []vcl.Backend{{Host: host, Port: p}}}}}
	})
	addr := edges[0].Edge.Address
	for _, cookie := range []string{"", "_ga=GA1.2.1234.5678"} {
		var hits, other atomic.Int64
		deadline := time.Now().Add(5 * time.Second)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				for time.Now().Before(deadline) {
					req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/hit.css", nil)
					req.Host = "bench.example.com"
					if cookie != "" {
						req.Header.Set("Cookie", cookie)
					}
					resp, err := c.Do(req)
					if err != nil {
						other.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.Header.Get("X-Cache") == "HIT" {
						hits.Add(1)
					} else {
						other.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		t.Logf("Cookie %q: %.0f HIT/s (%d HIT, %d other in 5 s)", cookie, float64(hits.Load())/5, hits.Load(), other.Load())
	}
}
