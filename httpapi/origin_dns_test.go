//go:build !unit

package httpapi_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/dnstest"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// countingOrigin is a plain HTTP origin on one loopback address.
type countingOrigin struct{ gets atomic.Int64 }

func (o *countingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.gets.Add(1)
	_, _ = io.WriteString(w, "ok "+r.URL.Path)
}

// originPair serves two origins on 127.0.0.2 and 127.0.0.3 with the same
// port, as one name with two addresses would.
func originPair(t *testing.T) (a, b *countingOrigin, port string) {
	t.Helper()
	for range 20 {
		la, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 on this machine: %v", err)
		}
		_, port, _ = net.SplitHostPort(la.Addr().String())
		lb, err := net.Listen("tcp", "127.0.0.3:"+port)
		if err != nil {
			_ = la.Close() // try another port pair
			continue
		}
		a, b = &countingOrigin{}, &countingOrigin{}
		sa := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
		sb := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = sa.Serve(la) }()
		go func() { _ = sb.Serve(lb) }()
		t.Cleanup(func() {
			if err := errors.Join(sa.Close(), sb.Close()); err != nil {
				t.Errorf("close origins: %v", err)
			}
		})
		return a, b, port
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return nil, nil, ""
}

// An origin name with two addresses, in DNS the test controls
// (--origin-dns-server): requests through a real edge are balanced over
// both; when the name moves to one address the edge follows within 60 s
// with no change to the distribution; when it moves to the metadata
// address the connector refuses the connection (502) and no origin is
// reached. A name resolving to the metadata address is refused with 10001
// at create.
func TestOriginNameWithSeveralAddresses(t *testing.T) {
	a, b, port := originPair(t)
	dns := dnstest.Start(t)
	dns.Set("www.multi.test", 1, "127.0.0.2", "127.0.0.3")
	dns.Set("meta.multi.test", 1, "169.254.169.254")
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.OriginDNSServer = dns.Addr
		c.OriginAllowLoopback = append(c.OriginAllowLoopback, port)
	}})

	create := func(origin string) (nhnHeader, []service.DistributionView) {
		var out struct {
			Distributions []service.DistributionView `json:"distributions"`
		}
		h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": origin, "port": atoi(port)}},
		}}}, &out)
		return h, out.Distributions
	}
	if h, _ := create("meta.multi.test"); h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, `"meta.multi.test"`) {
		t.Fatalf("origin name on the metadata address: %+v, want 10001 naming it", h)
	}
	h, ds := create("www.multi.test")
	if !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	domain := ds[0].Domain
	waitStatus(t, env, domain, "OPEN")

	n := 0
	get := func() *http.Response {
		t.Helper()
		n++
		resp := env.EdgeGet(t, 0, domain, "/p"+strconv.Itoa(n), nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 8 {
		if resp := get(); resp.StatusCode != 200 {
			t.Fatalf("fetch: %d", resp.StatusCode)
		}
	}
	if a.gets.Load() == 0 || b.gets.Load() == 0 {
		t.Fatalf("not balanced: 127.0.0.2 %d, 127.0.0.3 %d GETs", a.gets.Load(), b.gets.Load())
	}

	dns.Set("www.multi.test", 1, "127.0.0.3")
	changed := time.Now()
	for {
		before := a.gets.Load()
		for range 4 {
			get()
		}
		if a.gets.Load() == before {
			break
		}
		if time.Since(changed) > 60*time.Second {
			t.Fatal("the address change was not followed within 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}

	dns.Set("www.multi.test", 1, "169.254.169.254")
	changed = time.Now()
	for {
		before := b.gets.Load()
		resp := get()
		if resp.StatusCode == http.StatusBadGateway && b.gets.Load() == before {
			if resp.Header.Get("X-Cdnflow-Origin-Error") != "" {
				t.Fatal("the connector's reason reached the client")
			}
			break
		}
		if time.Since(changed) > 60*time.Second {
			t.Fatalf("the move to the metadata address was not refused within 60 s: last status %d", resp.StatusCode)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
