// Package testenv starts the real parts for integration tests: an embedded
// Temporal server on a SQLite file, real varnishd edges on loopback, a Go
// origin, the worker and the HTTP API — the same assembly as `cdnflow dev`.
package testenv

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/stack"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// Options shape an Env.
type Options struct {
	// Edges is how many varnishd edges to start (default 2).
	Edges int
	// Configure may change settings before anything starts.
	Configure func(*config.Config)
	// NoWorker leaves the worker off (tests that start their own).
	NoWorker bool
	// Place may change edge i's inventory entry (region, country) before
	// the inventory is built; edges are region us, country united_states
	// otherwise.
	Place func(i int, e *inventory.Edge)
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
	API        *httptest.Server
	Logger     *zap.Logger
}

// Start brings up an Env and registers its teardown with t.Cleanup.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Edges == 0 {
		opts.Edges = 2
	}
	logger := Logger(t, zap.WarnLevel)
	env := &Env{Logger: logger, Origin: &origin.Handler{}}

	originSrv := httptest.NewServer(env.Origin)
	t.Cleanup(originSrv.Close)
	env.OriginAddr = originSrv.Listener.Addr().String()
	host, portStr, _ := net.SplitHostPort(env.OriginAddr)
	port, _ := strconv.Atoi(portStr)
	backend := vcl.Backend{Host: host, Port: port}

	env.Edges = edgetest.StartEdges(t, opts.Edges, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &backend}
	})
	edges := make([]inventory.Edge, len(env.Edges))
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
	env.Inventory = inv

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DefaultOrigin = env.OriginAddr
	cfg.AllowPrivateCallbacks = true
	cfg.PrewarmAttemptTimeout = 5 * time.Second
	// Tests on a busy CI machine must not be refused as overload unless
	// they test exactly that.
	cfg.MaxBacklog = 0
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	srv, err := devtemporal.Start(devtemporal.Options{DataDir: cfg.DataDir, UIPort: -1, Namespace: cfg.Namespace, Logger: logger, SearchAttributes: workflows.SearchAttributes()})
	if err != nil {
		t.Fatalf("start embedded temporal: %v", err)
	}
	t.Cleanup(srv.Stop)
	env.Server = srv
	cfg.TemporalAddress = srv.FrontendAddr
	env.Config = cfg

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stack.Connect(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("connect temporal: %v", err)
	}
	t.Cleanup(c.Close)
	env.Client = c

	if !opts.NoWorker {
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stack.RunWorker(runCtx, cfg, inv, c, logger) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	api := httpapi.New(httpapi.Deps{Temporal: c, Config: cfg, Inventory: inv, Logger: logger})
	env.API = httptest.NewServer(api)
	t.Cleanup(env.API.Close)
	return env
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
