//go:build !unit

package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// testCA is a certificate authority made by the test: its PEM file is what
// CDNFLOW_ORIGIN_CA_FILE / --origin-ca-file name.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cdnflow origin test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

var serial atomic.Int64

// leaf issues a server certificate for names valid in [from, to].
func (ca *testCA) leaf(t *testing.T, names []string, from, to time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsOrigin is an HTTPS origin on loopback that records what it saw.
type tlsOrigin struct {
	port     string
	requests atomic.Int64
	mu       sync.Mutex
	sni      string
	host     string
}

func startTLSOrigin(t *testing.T, cert tls.Certificate) *tlsOrigin {
	t.Helper()
	o := &tlsOrigin{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			o.requests.Add(1)
		}
		o.mu.Lock()
		o.sni, o.host = r.TLS.ServerName, r.Host
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = io.WriteString(w, "tls origin "+r.URL.Path)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, o.port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return o
}

func (o *tlsOrigin) seen() (sni, host string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sni, o.host
}

// originEnv is a testenv whose connectors (and API checks and probes)
// trust ca and admit the given loopback origin ports.
func originEnv(t *testing.T, ca *testCA, ports ...string) *testenv.Env {
	return testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.OriginCAFile = ca.file
		c.OriginAllowLoopback = append(c.OriginAllowLoopback, ports...)
	}})
}

func httpsDistribution(origin, httpsPort string) map[string]any {
	return map[string]any{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": origin, "httpsPort": atoi(httpsPort)}},
	}
}

// An httpsPort origin whose certificate comes from the CA named by
// --origin-ca-file is served through every real varnishd edge (MISS, then
// HIT), over TLS with the origin's name as SNI. Created in the same request,
// distributions whose origin's certificate has expired, names another host
// or comes from an unknown CA, and one whose origin name does not resolve,
// go to ERROR with the reason while the good one goes OPEN.
func TestHTTPSOriginServedAndBadCertificatesError(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	good := startTLSOrigin(t, ca.leaf(t, []string{"localhost"}, now.Add(-time.Hour), now.Add(time.Hour)))
	expired := startTLSOrigin(t, ca.leaf(t, []string{"localhost"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	wrongName := startTLSOrigin(t, ca.leaf(t, []string{"other.cdnflow.test"}, now.Add(-time.Hour), now.Add(time.Hour)))
	unknownCA := startTLSOrigin(t, newTestCA(t).leaf(t, []string{"localhost"}, now.Add(-time.Hour), now.Add(time.Hour)))
	env := originEnv(t, ca, good.port, expired.port, wrongName.port, unknownCA.port)

	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	body := map[string]any{"distributions": []map[string]any{
		httpsDistribution("localhost", good.port),
		httpsDistribution("localhost", expired.port),
		httpsDistribution("localhost", wrongName.port),
		httpsDistribution("localhost", unknownCA.port),
		httpsDistribution("no-such-origin.invalid", "443"),
	}}
	if h := nhn(t, env, "POST", "/distributions", secret, body, &created); !h.IsSuccessful || len(created.Distributions) != 5 {
		t.Fatalf("create: %+v %+v", h, created)
	}
	ok := created.Distributions[0].Domain
	waitStatus(t, env, ok, "OPEN")
	for i, want := range []string{
		"https://localhost:" + expired.port + " (127.0.0.1:" + expired.port + "): x509: certificate has expired",
		"https://localhost:" + wrongName.port + " (127.0.0.1:" + wrongName.port + "): x509: certificate is valid for other.cdnflow.test, not localhost",
		"https://localhost:" + unknownCA.port + " (127.0.0.1:" + unknownCA.port + "): x509: certificate signed by unknown authority",
		"https://no-such-origin.invalid:443: ",
	} {
		d := waitStatus(t, env, created.Distributions[i+1].Domain, "ERROR")
		if !strings.Contains(d.LastError, want) {
			t.Errorf("distribution %d: lastError %q, want the origin and %q", i+1, d.LastError, want)
		}
	}
	for i := range env.Edges {
		path := "/asset-" + itoa(i) + ".js"
		for _, want := range []string{"MISS", "HIT"} {
			resp := env.EdgeGet(t, i, ok, path, nil)
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != want || string(data) != "tls origin "+path {
				t.Fatalf("edge %d %s: %d %s %q, want 200 %s", i, path, resp.StatusCode, resp.Header.Get("X-Cache"), data, want)
			}
			if resp.Header.Get("X-Cdnflow-Origin-Error") != "" {
				t.Fatalf("edge %d leaks the connector's error header", i)
			}
		}
	}
	if n := good.requests.Load(); n != int64(len(env.Edges)) {
		t.Fatalf("origin GETs %d, want one MISS per edge (%d)", n, len(env.Edges))
	}
	// ORIGIN_HOSTNAME (the default without aliases): SNI and Host are the
	// origin's own name.
	if sni, host := good.seen(); sni != "localhost" || host != "localhost:"+good.port {
		t.Fatalf("origin saw SNI %q Host %q", sni, host)
	}
	if n := expired.requests.Load() + wrongName.requests.Load() + unknownCA.requests.Load(); n != 0 {
		t.Fatalf("origins with bad certificates answered %d GETs", n)
	}
}

// Internal targets — cloud metadata, Temporal's port, an edge's admin
// port, an unspecified address — are refused with 10001 naming the origin
// at create, PUT and PATCH; the distribution keeps its good origin.
func TestInternalOriginsRefused(t *testing.T) {
	ca := newTestCA(t)
	env := originEnv(t, ca)
	d := createDistribution(t, env, "")
	_, adminPort, _ := net.SplitHostPort(env.Edges[0].Edge.AdminAddress)
	targets := []struct{ host, port string }{
		{"169.254.169.254", "80"}, {"127.0.0.1", "7233"}, {"127.0.0.1", adminPort}, {"0.0.0.0", "80"}, {"localhost", adminPort},
	}
	for _, tg := range targets {
		origins := []map[string]any{{"origin": tg.host, "port": atoi(tg.port), "originPath": ""}}
		create := map[string]any{"distributions": []map[string]any{{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST", "origins": origins,
		}}}
		put := map[string]any{"domain": d.Domain, "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST", "origins": origins}
		patch := map[string]any{"domain": d.Domain, "origins": origins}
		for _, c := range []struct {
			method string
			body   any
		}{{"POST", create}, {"PUT", put}, {"PATCH", patch}} {
			h := nhn(t, env, c.method, "/distributions", secret, c.body, nil)
			if h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, `"`+tg.host+`"`) || !strings.Contains(h.ResultMessage, "refused") {
				t.Errorf("%s origin %s:%s: %+v, want 10001 naming the origin", c.method, tg.host, tg.port, h)
			}
		}
	}
	if st := waitStatus(t, env, d.Domain, "OPEN"); len(st.Origins) != 1 || st.Origins[0].Origin == "169.254.169.254" {
		t.Fatalf("distribution changed: %+v", st.Origins)
	}
}
