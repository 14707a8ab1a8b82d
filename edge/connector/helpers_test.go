package connector

import (
	"context"
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
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// testCA is a certificate authority made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// File writes the CA's PEM where a connector's CAFile can read it.
func (ca *testCA) File(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(p, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var serial atomic.Int64

// leaf issues a server certificate for names, valid from notBefore to
// notAfter.
func (ca *testCA) leaf(t *testing.T, names []string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// origin is a real HTTP(S) server on one loopback address that counts
// requests and connections and records what it saw.
type origin struct {
	Name     string // tells the servers apart in bodies
	Addr     netip.AddrPort
	requests atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	lastHost string
	lastSNI  string
	lastHdr  http.Header
	srv      *http.Server
}

// startOrigin serves on ip:port (port 0: any); cert nil means plain HTTP.
func startOrigin(t *testing.T, name, ip string, port int, cert *tls.Certificate) *origin {
	t.Helper()
	o, err := listenOrigin(t, name, ip, port, cert)
	if err != nil {
		t.Fatalf("origin %s listen: %v", name, err)
	}
	return o
}

// listenOrigin is startOrigin returning a listen error (a port clash).
func listenOrigin(t *testing.T, name, ip string, port int, cert *tls.Certificate) (*origin, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	o := &origin{Name: name, Addr: netip.MustParseAddrPort(ln.Addr().String())}
	o.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o.requests.Add(1)
			o.mu.Lock()
			o.lastHost, o.lastHdr = r.Host, r.Header.Clone()
			if r.TLS != nil {
				o.lastSNI = r.TLS.ServerName
			}
			o.mu.Unlock()
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("X-Origin", name)
			w.Header().Set("X-Cdnflow-Origin-Error", "forged by the origin")
			_, _ = io.WriteString(w, "served by "+name+" path "+r.URL.RequestURI())
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.conns.Add(1)
			}
		},
		ErrorLog: nil,
	}
	if cert != nil {
		o.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		ln = tls.NewListener(ln, o.srv.TLSConfig)
	}
	go func() { _ = o.srv.Serve(ln) }()
	t.Cleanup(func() { _ = o.srv.Close() })
	return o, nil
}

func (o *origin) seen() (host, sni string, hdr http.Header) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastHost, o.lastSNI, o.lastHdr
}

// originPair starts two origins on 127.0.0.2:P and 127.0.0.3:P (the same
// port, as two addresses of one name are), retrying on a port clash.
func originPair(t *testing.T, cert *tls.Certificate) (*origin, *origin) {
	t.Helper()
	for range 20 {
		a := startOrigin(t, "A", "127.0.0.2", 0, cert)
		b, err := listenOrigin(t, "B", "127.0.0.3", int(a.Addr.Port()), cert)
		if err != nil {
			_ = a.srv.Close()
			continue
		}
		return a, b
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return nil, nil
}

// newConnector serves a connector on a loopback port for the test.
func newConnector(t *testing.T, o Options) (*Connector, string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := contextWithCancel()
	go func() { done <- c.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return c, "http://" + ln.Addr().String()
}

// get sends one request to the connector with the internal headers.
func get(t *testing.T, base, origins, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if origins != "" {
		req.Header.Set(HeaderOrigins, origins)
	}
	if host != "" {
		req.Header.Set(HeaderOriginHost, host)
	}
	req.Header.Set("X-Cdnflow-Secret", "must not reach the origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// skewClock is time.Now moved forward by Advance: given to the resolver
// (withClock), it lets a test pass a record TTL or a serve-stale bound
// without waiting it out, while the resolver's timers keep running in
// real time.
type skewClock struct{ skew atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.skew.Load())) }

// Advance moves the clock forward by d.
func (c *skewClock) Advance(d time.Duration) { c.skew.Add(int64(d)) }

// withClock gives o's resolver clk as its clock.
func withClock(o Options, clk *skewClock) Options {
	o.testResolver = func(r *resolver) { r.now = clk.Now }
	return o
}
