// Package edgetest starts real varnishd edges on loopback for tests of any
// package. It is not a _test file so other packages' tests can import it.
package edgetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// RunningEdge is one started edge.
type RunningEdge struct {
	Edge    inventory.Edge
	Process *varnishd.Process
	// Connector is the edge's origin connector (Varnish's only backend),
	// serving on Edge.ConnectorAddress until the test ends.
	Connector *connector.Connector
	// stopConnector stops the connector (once).
	stopConnector func()
	opts          varnishd.Options
}

// StopConnector stops the edge's origin connector, as a crash would: its
// port refuses connections from then on and Varnish's health probe of it
// fails.
func (e *RunningEdge) StopConnector() { e.stopConnector() }

// RequireVarnish fails the test under CI=true and skips it elsewhere when
// varnishd is missing, so a CI run can never pass by skipping real edges.
// Under -short (`make unit`) it always skips: real edges are integration.
func RequireVarnish(t testing.TB) {
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

// startAttempts covers the window in which a port FreeLoopbackAddr found
// is taken by another test before varnishd binds it.
const startAttempts = 3

// StartEdges starts n edges in parallel, each with the VCL cfg(id)
// renders, in t.TempDir(), and stops them when the test ends. Ids are
// TST01-C1, TST02-C1, ...; region us, country united_states.
//
// Each edge fetches through its own origin connector on a free loopback
// port (StartEdgesWith's co, with loopback admitted for the ports of the
// origins cfg(id) names: test origins listen on loopback). The edge's CLI
// secret is made first: a cfg(id) without ControlToken gets the edge's
// (connector.ControlTokenFile), and the connector checks it on admin
// requests unless co names another secret file.
func StartEdges(t testing.TB, n int, cfg func(id string) vcl.Config) []*RunningEdge {
	t.Helper()
	return StartEdgesWith(t, n, cfg, connector.Options{})
}

// StartEdgesWith is StartEdges with connector options (CA bundle, DNS
// server, more loopback ports). co.Listen is ignored.
func StartEdgesWith(t testing.TB, n int, cfg func(id string) vcl.Config, co connector.Options) []*RunningEdge {
	t.Helper()
	RequireVarnish(t)
	dir := t.TempDir()
	edges := make([]*RunningEdge, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("TST%02d-C1", i+1)
		secret := filepath.Join(dir, id+".secret")
		if err := varnishd.EnsureSecret(secret); err != nil {
			t.Fatalf("secret of %s: %v", id, err)
		}
		c := cfg(id)
		if c.ControlToken == "" {
			c.ControlToken = controlToken(t, secret)
		}
		eco := co
		if eco.ControlSecretFile == "" {
			eco.ControlSecretFile = secret
		}
		cn, addr, stop := startConnector(t, id, c, eco)
		c.ConnectorPort = addr.Port
		src, err := vcl.Render(c)
		if err != nil {
			t.Fatalf("render vcl for %s: %v", id, err)
		}
		fillTable(t, cn, id, c)
		e := &RunningEdge{Connector: cn, stopConnector: stop, Edge: inventory.Edge{ConnectorAddress: addr.String()}, opts: varnishd.Options{
			Name:       id,
			WorkDir:    filepath.Join(dir, id),
			SecretFile: secret,
			VCL:        src,
			StorageMB:  32,
			// Tests start many edges at once; keep each small and allow
			// for slow VCL compiles on a busy machine.
			Params:       map[string]string{"thread_pool_min": "10", "thread_pools": "1"},
			ReadyTimeout: 60 * time.Second,
			Logger:       zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named(id),
		}}
		edges[i] = e
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.start()
		}()
	}
	wg.Wait()
	for i, e := range edges {
		if e.Process != nil {
			p := e.Process
			t.Cleanup(func() { _ = p.Stop(context.Background()) })
		}
		if errs[i] != nil {
			t.Fatalf("start edge %s: %v", e.opts.Name, errs[i])
		}
	}
	return edges
}

func (e *RunningEdge) start() error {
	var err error
	for range startAttempts {
		if e.opts.ListenAddr, err = varnishd.FreeLoopbackAddr(); err != nil {
			return err
		}
		if e.opts.AdminAddr, err = varnishd.FreeLoopbackAddr(); err != nil {
			return err
		}
		var p *varnishd.Process
		if p, err = varnishd.Start(context.Background(), e.opts); err == nil {
			e.Process = p
			e.Edge = inventory.Edge{
				ID: e.opts.Name, Region: "us", Country: "united_states", Kind: inventory.KindVarnish,
				Address: e.opts.ListenAddr, AdminAddress: e.opts.AdminAddr, SecretFile: e.opts.SecretFile,
				ConnectorAddress: e.Edge.ConnectorAddress,
			}
			return nil
		}
	}
	return err
}

// controlToken is the control token of the secret file at path.
func controlToken(t testing.TB, path string) string {
	t.Helper()
	tok, err := connector.ControlTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startConnector serves an origin connector for edge id on a free
// loopback port until the test ends or stop is called.
func startConnector(t testing.TB, id string, c vcl.Config, co connector.Options) (cn *connector.Connector, addr *net.TCPAddr, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("connector for %s: %v", id, err)
	}
	co.Listen = ln.Addr().String()
	co.AllowLoopback = append([]string(nil), co.AllowLoopback...)
	origins := c.Sites
	if c.DefaultBackend != nil {
		origins = append(origins, vcl.Site{Origins: []vcl.Backend{*c.DefaultBackend}})
	}
	for _, s := range origins {
		for _, o := range s.Origins {
			if ip := net.ParseIP(o.Host); ip != nil && ip.IsLoopback() {
				co.AllowLoopback = append(co.AllowLoopback, strconv.Itoa(o.Port))
			}
		}
	}
	if co.Logger == nil {
		co.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(id + ".connector")
	}
	cn, err = connector.New(co)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("connector for %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = cn.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; cn.Close() }) }
	t.Cleanup(stop)
	return cn, ln.Addr().(*net.TCPAddr), stop
}

// Restart starts a stopped (or running) edge again on the same addresses
// and work dir; the cache is empty afterwards, as after a real crash.
func (e *RunningEdge) Restart(t testing.TB) {
	t.Helper()
	if e.Process != nil && !e.Process.Exited() {
		_ = e.Process.Stop(context.Background())
	}
	// Its listen addresses may be held a moment longer (the stopped
	// child's sockets, another test process probing for free ports): a
	// refused listen is tried again for up to 5 s.
	var p *varnishd.Process
	var err error
	for try := 0; ; try++ {
		p, err = varnishd.Start(context.Background(), e.opts)
		if err == nil {
			break
		}
		if try >= 25 || !strings.Contains(err.Error(), "could not be listened on") {
			t.Fatalf("restart edge %s: %v", e.Edge.ID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.Process = p
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
}

// Admin opens an authenticated CLI connection, closed when the test ends.
func (e *RunningEdge) Admin(t testing.TB) *varnishadm.Conn {
	t.Helper()
	c, err := varnishadm.DialSecretFile(context.Background(), e.Edge.AdminAddress, e.Edge.SecretFile)
	if err != nil {
		t.Fatalf("admin %s: %v", e.Edge.ID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// LoadVCL renders cfg and makes it the edge's active VCL under name, after
// making cfg's sites the connector's whole site table. A cfg without
// ControlToken gets the edge's.
func (e *RunningEdge) LoadVCL(t testing.TB, name string, cfg vcl.Config) {
	t.Helper()
	if cfg.ControlToken == "" {
		cfg.ControlToken = e.ControlToken(t)
	}
	if cfg.ConnectorPort == 0 {
		// The edge fetches through the connector started beside it.
		_, port, err := net.SplitHostPort(e.Edge.ConnectorAddress)
		if err != nil {
			t.Fatalf("connector address of %s: %v", e.Edge.ID, err)
		}
		if cfg.ConnectorPort, err = strconv.Atoi(port); err != nil {
			t.Fatalf("connector port of %s: %v", e.Edge.ID, err)
		}
	}
	src, err := vcl.Render(cfg)
	if err != nil {
		t.Fatalf("render vcl for %s: %v", e.Edge.ID, err)
	}
	fillTable(t, e.Connector, e.Edge.ID, cfg)
	if err := e.Admin(t).Reload(context.Background(), name, src); err != nil {
		t.Fatalf("load vcl on %s: %v", e.Edge.ID, err)
	}
}

// fillTable makes cfg's sites the whole site table of the edge's
// connector, as the control plane's apply would.
func fillTable(t testing.TB, cn *connector.Connector, id string, cfg vcl.Config) {
	t.Helper()
	entries, err := vcl.Entries(cfg, connector.Generation{Created: 1, Version: 1})
	if err != nil {
		t.Fatalf("site table for %s: %v", id, err)
	}
	if err := cn.Table().Replace(entries); err != nil {
		t.Fatalf("site table for %s: %v", id, err)
	}
}

// ControlToken is the edge's control token (its secret file's
// connector.ControlTokenFile): what control requests must carry.
func (e *RunningEdge) ControlToken(t testing.TB) string {
	t.Helper()
	return controlToken(t, e.Edge.SecretFile)
}
