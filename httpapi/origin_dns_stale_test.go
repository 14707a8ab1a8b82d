//go:build !unit

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/dnstest"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// A DNS server that stops answering (queries dropped: the resolver times
// out) while a distribution serves through a real edge: misses are still
// fetched from the origin with the name's last good address until the
// serve-stale bound (--origin-dns-serve-stale) past its TTL, then fail. A
// change to a new origin name made during the outage is not sent to ERROR:
// its origin probe is retried and the change completes once DNS answers
// again.
func TestOriginDNSOutageServesStaleAndChangeRetries(t *testing.T) {
	a, b, port := originPair(t)
	dns := dnstest.Start(t)
	dns.Set("www.stale.test", 1, "127.0.0.2")
	dns.Set("www2.stale.test", 1, "127.0.0.3")
	const bound = 6 * time.Second
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.OriginDNSServer = dns.Addr
		c.OriginDNSServeStale = bound
		c.OriginAllowLoopback = append(c.OriginAllowLoopback, port)
	}})
	var out struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": "www.stale.test", "port": atoi(port)}},
	}}}, &out); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	domain := out.Distributions[0].Domain
	waitStatus(t, env, domain, "OPEN")
	n := 0
	miss := func() int {
		n++
		return edgeGet(t, env, 0, domain, "/miss"+strconv.Itoa(n), "").StatusCode
	}
	if st := miss(); st != http.StatusOK {
		t.Fatalf("before the outage: %d", st)
	}

	dns.SetOutage(dnstest.OutageDrop)
	outage := time.Now()
	time.Sleep(1100 * time.Millisecond) // past the record TTL
	before, served := a.gets.Load(), 0
	for time.Since(outage) < bound-time.Second {
		if st := miss(); st != http.StatusOK {
			t.Fatalf("miss %d, %v into the DNS outage: %d, want the origin's answer", n, time.Since(outage).Round(time.Millisecond), st)
		}
		served++
		time.Sleep(100 * time.Millisecond)
	}
	if got := a.gets.Load() - before; got != int64(served) {
		t.Fatalf("%d misses during the outage, origin saw %d", served, got)
	}
	t.Logf("DNS outage: %d of %d misses served from the origin with stale addresses", served, served)
	time.Sleep(time.Until(outage.Add(time.Second + bound + 500*time.Millisecond)))
	if st := miss(); st < 500 {
		t.Fatalf("miss past the serve-stale bound: %d, want a 5xx", st)
	}

	// A change to a name never resolved: the probe cannot resolve it while
	// DNS is down and is retried; the distribution is never in ERROR.
	if h := nhn(t, env, "PATCH", "/distributions", secret, map[string]any{"domain": domain,
		"origins": []map[string]any{{"origin": "www2.stale.test", "port": atoi(port), "originPath": ""}}}, nil); !h.IsSuccessful {
		t.Fatalf("change during the outage: %+v", h)
	}
	seen := watchStatus(t, env, domain)
	time.Sleep(8 * time.Second)
	if s := seen(); s["ERROR"] || s["OPEN"] {
		t.Fatalf("during the DNS outage the change went through %v, want MODIFYING until DNS is back", s)
	}
	dns.SetOutage(dnstest.OutageNone)
	waitStatus(t, env, domain, "OPEN")
	if s := seen(); s["ERROR"] {
		t.Fatalf("the change went through ERROR: %v", s)
	}
	before = b.gets.Load()
	if st := miss(); st != http.StatusOK || b.gets.Load() != before+1 {
		t.Fatalf("after the change: %d, new origin saw %d GETs", st, b.gets.Load()-before)
	}
}

// watchStatus polls domain's status every 200 ms until the test ends and
// returns the set of statuses seen so far.
func watchStatus(t *testing.T, env *testenv.Env, domain string) func() map[string]bool {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			st, err := distributionStatus(env, domain)
			if err == nil {
				mu.Lock()
				seen[st] = true
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]bool{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

// distributionStatus reads domain's status from the /v1.5 list, for use
// off the test goroutine.
func distributionStatus(env *testenv.Env, domain string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, env.API.URL+"/v1.5/appKeys/"+appKey+"/distributions?domain="+domain, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if len(out.Distributions) != 1 {
		return "", fmt.Errorf("%d distributions listed for %s", len(out.Distributions), domain)
	}
	return out.Distributions[0].Status, nil
}
