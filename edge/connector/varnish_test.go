package connector

import (
	"github.com/cdnflow/cdnflow/internal/dnstest"

	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cdnflow/cdnflow/edge/varnishd"
)

// edgeVCL is what the renderer is to emit, written by hand: the connector
// is the only backend; client copies of the internal headers are dropped
// in vcl_recv; vcl_backend_fetch names the site's origins and, for
// REQUEST_HOST_HEADER sites, the Host to send.
const edgeVCL = `vcl 4.1;

backend cdnflow_connector {
    .host = "127.0.0.1";
    .port = "%d";
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

sub vcl_recv {
    unset req.http.X-Cdnflow-Origins;
    unset req.http.X-Cdnflow-Origin-Host;
    if (req.http.host != "www.site.test" && req.http.host != "bad.site.test") {
        return (synth(404, "unknown host"));
    }
    set req.backend_hint = cdnflow_connector;
}

sub vcl_backend_fetch {
    unset bereq.http.X-Cdnflow-Origins;
    unset bereq.http.X-Cdnflow-Origin-Host;
    if (bereq.http.host == "www.site.test") {
        set bereq.http.X-Cdnflow-Origins = "https://tls.cdnflow.test:%d";
        set bereq.http.X-Cdnflow-Origin-Host = bereq.http.host;
    } elsif (bereq.http.host == "bad.site.test") {
        set bereq.http.X-Cdnflow-Origins = "https://expired.cdnflow.test:%d";
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
`

// requireVarnish is edgetest.RequireVarnish, which this package cannot
// import (edgetest starts connectors): skip under -short, fail under
// CI=true and skip elsewhere when varnishd is missing.
func requireVarnish(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs varnishd: skipped under -short")
	}
	if _, err := varnishd.Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: these tests need real edges)", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// An https origin whose name has two addresses, served through a real
// varnishd whose only backend is the connector: cached by Varnish, fetched
// over verified TLS with the origin's SNI, balanced over both addresses;
// a client cannot pick the origin; a bad certificate comes back as a 502
// with its reason.
func TestServedThroughVarnish(t *testing.T) {
	requireVarnish(t)
	dns := dnstest.Start(t)
	ca := newCA(t, "cdnflow test CA")
	now := time.Now()
	cert := ca.leaf(t, []string{"tls.cdnflow.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	a, b := originPair(t, &cert)
	dns.Set("tls.cdnflow.test", 30, "127.0.0.2", "127.0.0.3")
	expired := startOrigin(t, "expired", "127.0.0.2", 0, ptr(ca.leaf(t, []string{"expired.cdnflow.test"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))))
	dns.Set("expired.cdnflow.test", 30, "127.0.0.2")
	internal := startOrigin(t, "internal", "127.0.0.1", 0, nil)

	_, base := newConnector(t, Options{DNSServer: dns.Addr, CAFile: ca.File(t), AllowLoopback: []string{port(a), port(expired)}})
	_, cport, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	connectorPort, err := strconv.Atoi(cport)
	if err != nil {
		t.Fatal(err)
	}

	var edge *varnishd.Process
	dir := t.TempDir()
	for range 3 {
		var listen, admin string
		if listen, err = varnishd.FreeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		if admin, err = varnishd.FreeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		edge, err = varnishd.Start(context.Background(), varnishd.Options{
			Name: "CNX01-C1", WorkDir: filepath.Join(dir, "work"), ListenAddr: listen, AdminAddr: admin,
			SecretFile: filepath.Join(dir, "secret"), StorageMB: 16, ReadyTimeout: 60 * time.Second,
			VCL:    fmt.Sprintf(edgeVCL, connectorPort, a.Addr.Port(), expired.Addr.Port()),
			Params: map[string]string{"thread_pool_min": "10", "thread_pools": "1"},
			Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("varnishd"),
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start varnishd: %v", err)
	}
	t.Cleanup(func() { _ = edge.Stop(context.Background()) })

	fetch := func(host, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+edge.Options().ListenAddr+path, nil)
		req.Host = host
		// A client naming an internal origin itself is ignored.
		req.Header.Set(HeaderOrigins, "http://"+internal.Addr.String())
		req.Header.Set(HeaderOriginHost, "evil.test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s: %v", host, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	resp, body := fetch("www.site.test", "/app.js")
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "MISS" || !strings.HasSuffix(body, " path /app.js") {
		t.Fatalf("first fetch: %d %s %q %q", resp.StatusCode, resp.Header.Get("X-Cache"), body, resp.Header.Get(HeaderError))
	}
	if resp, _ := fetch("www.site.test", "/app.js"); resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("second fetch: %d %s", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	for i := range 6 {
		if resp, body := fetch("www.site.test", fmt.Sprintf("/asset-%d.css", i)); resp.StatusCode != 200 {
			t.Fatalf("asset %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if a.requests.Load() == 0 || b.requests.Load() == 0 || a.requests.Load()+b.requests.Load() != 7 {
		t.Fatalf("origin requests: 127.0.0.2 %d, 127.0.0.3 %d; want 7 misses over both", a.requests.Load(), b.requests.Load())
	}
	host, sni, hdr := a.seen()
	if sni != "tls.cdnflow.test" || host != "www.site.test" || hdr.Get(HeaderOrigins) != "" {
		t.Fatalf("origin saw SNI %q Host %q internal header %q", sni, host, hdr.Get(HeaderOrigins))
	}
	if n := internal.conns.Load(); n != 0 {
		t.Fatalf("the client-named internal origin got %d connections", n)
	}

	resp, _ = fetch("bad.site.test", "/x")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderError), "x509: certificate has expired") {
		t.Fatalf("expired origin through varnish: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
	}
}
