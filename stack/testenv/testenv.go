// Package testenv starts the real parts for integration tests: an embedded
// Temporal server on a SQLite file, real varnishd edges on loopback, a Go
// origin, the worker and the HTTP API — assembled by stack, as
// `cdnflow dev` is.
package testenv

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/testlog"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack"
)

// Options shape an Env.
type Options struct {
	// Edges is how many varnishd edges to start (default 2); none start
	// when Configure sets InventoryFile (edges served elsewhere, such as
	// bench/fleet's stand-ins).
	Edges int
	// Configure may change settings before anything starts.
	Configure func(*config.Config)
	// NoWorker leaves the worker off (tests that start their own).
	NoWorker bool
	// Place may change edge i's inventory entry (region, country) before
	// the inventory is built; edges are region us, country united_states
	// otherwise.
	Place func(i int, e *inventory.Edge)
	// Shield, when set, makes edge 0 the shield of every other edge
	// (docs/tiers.md); Place runs after it.
	Shield *Shield
}

// Shield shapes a two-tier Env: edge 0 is the parent of the others, whose
// connectors fetch their misses from its HTTP listener directly (so a
// stopped shield refuses them, which is what fallback needs), while
// cdnflow reaches it at its inventory address through a fault proxy
// (edgetest.StartFaultProxy) that holds each burst of its PURGE and BAN
// requests PurgeDelay (edgetest.DelayControl): the window in which a
// child purged before its shield confirmed would refill from the
// shield's old copy.
type Shield struct {
	PurgeDelay time.Duration
}

// Env is a running cdnflow with everything it talks to.
type Env struct {
	Config    config.Config
	Inventory *inventory.Inventory
	Edges     []*edgetest.RunningEdge
	Origin    *origin.Handler
	// OriginAddr is host:port of the origin every edge fetches from.
	OriginAddr string
	Server     *devtemporal.Server
	Client     client.Client
	API        API
	Logger     *zap.Logger
	// Payloads is the stack's claim-check store (Config.PayloadStoreURL()).
	Payloads *payload.Sealed
}

// API is where the Env's HTTP API serves.
type API struct {
	// URL is http://127.0.0.1:port, without a trailing slash.
	URL string
}

// Start brings up an Env through stack.Start (the assembler of `cdnflow
// dev`) with edges from edgetest and an origin on a test server, and
// registers its teardown with t.Cleanup. It skips under -short: it needs
// varnishd and runs a Temporal server.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (embedded Temporal, varnishd): skipped under -short")
	}
	if opts.Edges == 0 {
		opts.Edges = 2
	}
	logger := testlog.Logger(t, zap.WarnLevel)
	env := &Env{Logger: logger, Origin: &origin.Handler{}}

	originSrv := httptest.NewServer(env.Origin)
	t.Cleanup(originSrv.Close)
	env.OriginAddr = originSrv.Listener.Addr().String()
	host, portStr, _ := net.SplitHostPort(env.OriginAddr)
	port, _ := strconv.Atoi(portStr)
	backend := vcl.Backend{Host: host, Port: port}

	cfg := settings(t, env.OriginAddr, opts.Configure)
	// An inventory file set by Configure names edges running elsewhere (a
	// fleet simulator's, bench/fleet): no varnishd starts, and stack.Start
	// loads the file as `cdnflow dev --edges FILE` does.
	var inv *inventory.Inventory
	if cfg.InventoryFile == "" {
		inv = env.startEdges(t, opts, cfg, backend)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{Config: cfg, Inventory: inv, Logger: logger, NoWorker: opts.NoWorker})
	for try := 1; err != nil && try < 3 && strings.Contains(err.Error(), "address already in use"); try++ {
		// Tests give the embedded server port 0, so it probes free ports,
		// and another test can take one between the probe and the bind
		// (cdnflow dev uses fixed ports and never races). Probe again.
		t.Logf("start stack: %v; retrying with other ports", err)
		st, err = stack.Start(ctx, stack.Options{Config: cfg, Inventory: inv, Logger: logger, NoWorker: opts.NoWorker})
	}
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
	})
	env.Config, env.Inventory, env.Server, env.Client = st.Config, st.Inventory, st.Temporal, st.Client
	env.API = API{URL: "http://" + st.APIAddr}
	env.Payloads = st.Payloads
	return env
}

// startEdges starts opts.Edges varnishd edges, each with its connector
// (cfg's origin settings, as `cdnflow dev` runs them), places them
// (opts.Place, opts.Shield) and answers their inventory.
func (env *Env) startEdges(t testing.TB, opts Options, cfg config.Config, backend vcl.Backend) *inventory.Inventory {
	// Each edge's connector with the Env's origin settings, as `cdnflow
	// dev` runs them.
	env.Edges = edgetest.StartEdgesWith(t, opts.Edges, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &backend}
	}, cfg.ConnectorOptions("", nil))
	edges := make([]inventory.Edge, len(env.Edges))
	shieldAddr := placeShield(t, env.Edges, opts.Shield)
	for i, e := range env.Edges {
		if opts.Place != nil {
			opts.Place(i, &e.Edge)
		}
		edges[i] = e.Edge
	}
	inv, err := inventory.New(edges)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	// Tiers: an edge Place gave a parent fetches its misses from it.
	for i, e := range env.Edges {
		if p, ok := inv.ParentOf(edges[i].ID); ok {
			addr := p.Address
			if p.ID == env.Edges[0].Edge.ID && shieldAddr != "" {
				addr = shieldAddr // around the shield's fault proxy
			}
			e.Connector.SetParent(&connector.Parent{ID: p.ID, Address: addr, Fallback: cfg.ParentFallback})
		}
	}
	return inv
}

// settings are the Env's settings: data in t.TempDir(), free loopback ports,
// the test origin as default origin, then opts.Configure's changes.
func settings(t testing.TB, originAddr string, configure func(*config.Config)) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	// Payloads sealed as in production (internal/codec): every test runs
	// its jobs with encryption on.
	cfg.PayloadKeyFile = filepath.Join(cfg.DataDir, "payload.key")
	if _, err := codec.CreateKeyFile(cfg.PayloadKeyFile); err != nil {
		t.Fatal(err)
	}
	// Tests send bursts on a box running -race, where a job start holds
	// its slot for a second at times: that is not the overload the
	// shedding is for, so a burst waits for its slots rather than be
	// refused (the slots' behaviour: service/shed_test.go).
	cfg.HeavyWait = 5 * time.Second
	cfg.APIAddr = "127.0.0.1:0"
	cfg.TemporalPort = 0    // free ports: tests run side by side
	cfg.TemporalUIPort = -1 // no Web UI
	cfg.DefaultOrigin = originAddr
	// The test origin listens on loopback: the one loopback origin admitted.
	_, port, _ := net.SplitHostPort(originAddr)
	cfg.OriginAllowLoopback = []string{port}
	cfg.AllowPrivateCallbacks = true
	cfg.PrewarmAttemptTimeout = 5 * time.Second
	cfg.EdgePurgeTimeout, cfg.EdgeBanTimeout, cfg.EdgeSiteTimeout, cfg.EdgeProbeTimeout = 5*time.Second, 5*time.Second, 5*time.Second, 5*time.Second
	// Tests on a busy CI machine must not be refused as overload unless
	// they test exactly that.
	cfg.MaxBacklog = 0
	// Changes to an unreachable edge end in ERROR within seconds; drift
	// is found within seconds.
	cfg.EdgeApplyAttempts = 4
	cfg.EdgeSyncEvery = 3 * time.Second
	if configure != nil {
		configure(&cfg)
	}
	return cfg
}

// EdgeGet fetches path with Host through edge i (test helper for checks
// like "now a HIT").
func (env *Env) EdgeGet(t testing.TB, i int, host, path string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+env.Edges[i].Edge.Address+path, nil)
	if err != nil {
		t.Fatalf("edge request: %v", err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s through %s: %v", path, env.Edges[i].Edge.ID, err)
	}
	return resp
}

// placeShield applies sh to edges' inventory entries (Options.Shield): edge
// 0 behind its fault proxy, the others its children. It answers edge 0's
// own HTTP address, "" when sh is nil.
func placeShield(t testing.TB, edges []*edgetest.RunningEdge, sh *Shield) string {
	if sh == nil || len(edges) == 0 {
		return ""
	}
	shield := &edges[0].Edge
	addr := shield.Address
	proxy := edgetest.StartFaultProxy(t, addr)
	proxy.SetMode(edgetest.DelayControl(sh.PurgeDelay))
	shield.Address = proxy.Addr()
	for _, e := range edges[1:] {
		e.Edge.Parent = shield.ID
	}
	return addr
}
