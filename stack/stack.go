// Package stack assembles cdnflow's processes from their parts, once, for
// every user: `cdnflow dev|worker|api`, the integration tests (testenv) and
// the benchmarks (bench/harness). A Stack is, in start order: the demo
// origin and the managed varnishd edges (dev), an embedded Temporal server
// (when no cluster address is given), the Temporal client, the worker and
// the HTTP API. Stop undoes it in reverse, so the API and the worker are
// gone before the Temporal server they talk to.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/deployments"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/netguard"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/inventory"
	cdnworker "github.com/cdnflow/cdnflow/worker"
	"github.com/cdnflow/cdnflow/workflows"
)

// Options choose the parts of a Stack.
type Options struct {
	// Config holds the settings. An empty TemporalAddress starts an
	// embedded Temporal server (devtemporal) on TemporalPort (0: free
	// ports, for tests) with its SQLite file in DataDir.
	Config config.Config
	// Inventory lists the edges; nil: LoadInventory(Config).
	Inventory *inventory.Inventory
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// Dev adds what only `cdnflow dev` runs: one varnishd per managed edge
	// of the inventory and, when Config.DefaultOrigin is a loopback
	// address, the demo origin there.
	Dev bool
	// NoWorker and NoAPI leave those parts out (`cdnflow api`, `cdnflow
	// worker`, tests that run their own worker).
	NoWorker, NoAPI bool
	// APIListener is the API's listener, handed over open so that no other
	// process can take the port in between; nil listens on Config.APIAddr.
	APIListener net.Listener
	// MoreDesired is desired state the worker's edge sync adds to the
	// running distributions' (worker.Deps.MoreDesired).
	MoreDesired activities.DesiredSites
}

// Stack is a running cdnflow.
type Stack struct {
	// Config as running: TemporalAddress names the embedded server when
	// one was started.
	Config    config.Config
	Inventory *inventory.Inventory
	// Temporal is the embedded server; nil with an external cluster.
	Temporal *devtemporal.Server
	Client   client.Client
	// APIAddr is the host:port the API serves on; empty with NoAPI.
	APIAddr string
	// Payloads is the claim-check store (Config.PayloadStoreURL()), opened
	// and probed at start, shared by the worker and the API; its objects
	// are sealed with the payload key ring when there is one.
	Payloads *payload.Sealed
	// PayloadRing is the payload key ring (Config.PayloadRing); nil: none
	// configured, payloads are stored in plain text.
	PayloadRing *codec.Ring

	logger *zap.Logger
	failed chan error // the first part that ended on its own, with its error
	mu     sync.Mutex
	stops  []func() error // undo steps, run in reverse
}

// Start brings the parts up in order. On an error everything started so
// far is stopped again.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	s := &Stack{Config: o.Config, Inventory: o.Inventory, logger: o.Logger, failed: make(chan error, 1)}
	if err := s.start(ctx, o); err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context, o Options) error {
	// Tracing first, so it is flushed last (internal/tracing: on when the
	// OTEL_* environment names an OTLP endpoint).
	flush, err := tracing.Setup(ctx, serviceName(o), s.logger)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	s.onStop(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return flush(ctx)
	})
	if s.Inventory == nil {
		inv, err := LoadInventory(s.Config)
		if err != nil {
			return err
		}
		s.Inventory = inv
	}
	if o.Dev {
		if err := os.MkdirAll(s.Config.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	if o.Dev && s.Config.DefaultOrigin != "" && isLoopback(s.Config.DefaultOrigin) {
		stop, err := startDemoOrigin(s.Config.DefaultOrigin, s.logger)
		if err != nil {
			return err
		}
		s.onStop(stop)
		// The demo origin is the one loopback origin dev admits.
		_, port, _ := net.SplitHostPort(s.Config.DefaultOrigin)
		s.Config.OriginAllowLoopback = append(append([]string(nil), s.Config.OriginAllowLoopback...), port)
	}
	if err := checkLoopbackOrigins(s.Config, s.Inventory); err != nil {
		return err
	}
	if err := s.loadPayloadKey(o.Dev); err != nil {
		return err
	}
	if err := s.openPayloads(ctx); err != nil {
		return err
	}
	if err := s.startEdgesAndTemporal(ctx, o.Dev); err != nil {
		return err
	}
	c, err := Connect(ctx, s.Config, s.logger)
	if err != nil {
		return err
	}
	s.Client = c
	s.onStop(func() error { c.Close(); return nil })
	if !o.NoWorker {
		s.run("worker", func(ctx context.Context) error {
			return runWorker(ctx, cdnworker.Deps{Config: s.Config, Inventory: s.Inventory, Logger: s.logger, Payloads: s.Payloads, MoreDesired: o.MoreDesired}, c)
		})
	}
	if !o.NoAPI {
		return s.startAPI(o.APIListener)
	}
	return nil
}

// serviceName is the OpenTelemetry service.name of the process unless
// OTEL_SERVICE_NAME sets one: cdnflow-api, cdnflow-worker or cdnflow (both).
func serviceName(o Options) string {
	switch {
	case o.NoWorker && !o.NoAPI:
		return "cdnflow-api"
	case o.NoAPI && !o.NoWorker:
		return "cdnflow-worker"
	}
	return "cdnflow"
}

// payloadProbeTimeout bounds the start-up check of the payload store (the
// S3 client retries a refused connection a few times within it).
const payloadProbeTimeout = 20 * time.Second

// openPayloads opens the payload store and probes it: a wrong URL, a
// missing bucket or a store that does not answer stops the start with one
// line naming the URL.
func (s *Stack) openPayloads(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, payloadProbeTimeout)
	defer cancel()
	store, err := payload.OpenAndProbe(ctx, s.Config.PayloadStoreURL())
	if err != nil {
		return err
	}
	s.Payloads = payload.NewSealed(store, nil)
	if s.PayloadRing != nil {
		s.Payloads.Sealer = s.PayloadRing
	}
	s.onStop(store.Close)
	s.logger.Info("payload store", zap.String("url", store.URL()))
	return nil
}

// payloadKeyFile is where `cdnflow dev` keeps the key ring it creates.
const payloadKeyFile = "payload.key"

// loadPayloadKey loads the payload key ring (config.Secrets) and puts its
// codec into the Temporal settings, so every client Connect dials (and
// Config.Temporal.Settings hands on) encrypts. dev without a key creates
// <data-dir>/payload.key (0600) on its first start.
func (s *Stack) loadPayloadKey(dev bool) error {
	if dev && s.Config.PayloadKeyFile == "" && os.Getenv(config.PayloadKeyEnv) == "" {
		path := filepath.Join(s.Config.DataDir, payloadKeyFile)
		created, err := codec.CreateKeyFile(path)
		if err != nil {
			return err
		}
		if created {
			s.logger.Info("payload key created", zap.String("file", path))
		}
		s.Config.PayloadKeyFile = path
	}
	ring, err := s.Config.PayloadRing()
	if err != nil {
		return err
	}
	if ring == nil {
		s.logger.Warn("no payload key (--payload-key-file, $" + config.PayloadKeyEnv + "): prewarm headers, callback URLs and URL lists are stored in plain text")
		return nil
	}
	s.PayloadRing = ring
	s.Config.PayloadCodec = codec.Codec{Ring: ring}
	s.logger.Info("payload encryption", zap.String("activeKey", ring.Active()), zap.Strings("keys", ring.IDs()))
	return nil
}

// checkLoopbackOrigins refuses a loopback origin allow-list naming one of
// cdnflow's own ports: an edge's HTTP, admin or connector port, Temporal's
// or the API's. Those are never origins.
func checkLoopbackOrigins(cfg config.Config, inv *inventory.Inventory) error {
	if len(cfg.OriginAllowLoopback) == 0 {
		return nil
	}
	allow, err := netguard.ParseLoopbackAllow(cfg.OriginAllowLoopback)
	if err != nil {
		return fmt.Errorf("origin-allow-loopback: %w", err)
	}
	own := map[string]string{"Temporal": fmt.Sprint(cfg.TemporalPort), "the API": portOf(cfg.APIAddr)}
	for _, e := range inv.Edges {
		own["edge "+e.ID+" HTTP"] = portOf(e.Address)
		own["edge "+e.ID+" admin"] = portOf(e.AdminAddress)
		own["edge "+e.ID+" connector"] = portOf(e.ConnectorAddress)
	}
	for _, a := range allow {
		for what, p := range own {
			if p == fmt.Sprint(a.Port) {
				return fmt.Errorf("origin-allow-loopback %s is the port of %s, never an origin", a, what)
			}
		}
	}
	return nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startEdgesAndTemporal starts the managed edges (dev) and the embedded
// server in parallel: each takes about a second.
func (s *Stack) startEdgesAndTemporal(ctx context.Context, dev bool) error {
	var edges []*varnishd.Process
	stopConnectors := func() {}
	var edgeErr error
	var wg sync.WaitGroup
	if dev {
		wg.Add(1)
		go func() {
			defer wg.Done()
			edges, stopConnectors, edgeErr = StartManagedEdges(ctx, s.Config, s.Inventory, s.logger)
		}()
	}
	var tempErr error
	if s.Config.TemporalAddress == "" {
		tempErr = s.startTemporal()
	}
	wg.Wait()
	// Pushed after the server: stopped after it.
	s.onStop(func() error { stopEdges(edges, s.logger); stopConnectors(); return nil })
	if s.Temporal != nil {
		srv := s.Temporal
		s.onStop(func() error { srv.Stop(); return nil })
	}
	return errors.Join(edgeErr, tempErr)
}

func (s *Stack) startTemporal() error {
	srv, err := devtemporal.Start(devtemporal.Options{
		DataDir:      s.Config.DataDir,
		IP:           s.Config.TemporalFrontendIP,
		FrontendPort: s.Config.TemporalPort,
		UIPort:       s.Config.TemporalUIPort,
		// The UI shows payloads sealed unless an operator runs `cdnflow
		// codec-server` with the key there; it only reads.
		UICodecEndpoint: s.Config.UICodecEndpoint,
		UIWriteActions:  s.Config.UIWriteActions,
		Namespace:       s.Config.Namespace,
		Logger:          s.logger,
		// New namespaces get them at creation; Connect adds any missing
		// from an older data directory.
		SearchAttributes: workflows.SearchAttributes(),
	})
	if err != nil {
		return err
	}
	s.Temporal = srv
	s.Config.TemporalAddress = srv.FrontendAddr
	s.logger.Info("embedded temporal started", zap.String("frontend", srv.FrontendAddr), zap.String("db", srv.DBFile))
	if srv.UIAddr != "" {
		s.logger.Info("temporal web ui", zap.String("url", "http://"+srv.UIAddr), zap.Bool("writeActions", s.Config.UIWriteActions))
		if s.Config.ConsoleTemporalUI == "" {
			s.Config.ConsoleTemporalUI = "http://" + srv.UIAddr // the console links jobs into the embedded Web UI
		}
		if s.Config.UICodecEndpoint != "" && s.Config.PayloadKeyFile != "" {
			s.logger.Info("the web ui decodes payloads through "+s.Config.UICodecEndpoint+": cdnflow codec-server --payload-key-file "+s.Config.PayloadKeyFile, zap.String("codecEndpoint", s.Config.UICodecEndpoint))
		}
	}
	return nil
}

func (s *Stack) startAPI(ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Config.APIAddr); err != nil {
			return fmt.Errorf("listen %s: %w", s.Config.APIAddr, err)
		}
	}
	s.APIAddr = ln.Addr().String()
	s.run("api", func(ctx context.Context) error {
		return serveAPI(ctx, ln, s.Config, s.Inventory, s.Client, s.Payloads, s.logger)
	})
	return nil
}

// run runs a long-lived part until Stop; a part that ends on its own
// (an error) is reported on Failed.
func (s *Stack) run(name string, part func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := part(ctx)
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
		}
		if ctx.Err() == nil { // ended before Stop asked it to
			select {
			case s.failed <- err:
			default:
			}
		}
		done <- err
	}()
	s.onStop(func() error { cancel(); return <-done })
}

func (s *Stack) onStop(f func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = append(s.stops, f)
}

// Failed delivers the error of the first part (worker or API) that ended
// before Stop; nil when it ended cleanly.
func (s *Stack) Failed() <-chan error { return s.failed }

// Stop stops every part in reverse start order — API, worker, client,
// embedded Temporal, edges, demo origin — and returns the parts' errors.
// Calling it again does nothing.
func (s *Stack) Stop() error {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		errs = append(errs, stops[i]())
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends or a part fails, then stops everything.
func (s *Stack) Run(ctx context.Context) error {
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-s.failed:
	}
	if err := s.Stop(); err != nil {
		return err
	}
	return failure
}

// LoadInventory reads Config.InventoryFile or, when it is empty, the dev
// inventory built into the binary (deployments.DevEdges), whose relative
// secret paths are taken relative to Config.DataDir: the binary runs from
// any directory.
func LoadInventory(cfg config.Config) (*inventory.Inventory, error) {
	if cfg.InventoryFile != "" {
		return inventory.Load(cfg.InventoryFile)
	}
	inv, err := inventory.Parse(deployments.DevEdges)
	if err != nil {
		return nil, fmt.Errorf("built-in dev inventory: %w", err)
	}
	for i, e := range inv.Edges {
		if !filepath.IsAbs(e.SecretFile) {
			inv.Edges[i].SecretFile = filepath.Join(cfg.DataDir, e.SecretFile)
		}
	}
	return inv, nil
}

// NewLogger builds the process logger: level debug|info|warn|error,
// format json or console.
func NewLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var zc zap.Config
	if format == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

// Connect dials Temporal and registers cdnflow's search attributes.
func Connect(ctx context.Context, cfg config.Config, logger *zap.Logger) (client.Client, error) {
	c, err := temporalclient.Dial(ctx, cfg.Temporal.Settings, logger)
	if err != nil {
		return nil, err
	}
	if err := temporalclient.EnsureSearchAttributes(ctx, c, cfg.Namespace, workflows.SearchAttributes()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
