// Package app assembles cdnflow's processes from its parts: `worker` and
// `api` against any Temporal cluster, and `dev`, which adds an embedded
// Temporal server, the Web UI, local Varnish edges and a demo origin. The
// worker and API code paths are the same in every mode.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
	"github.com/cdnflow/cdnflow/inventory"
	cdnworker "github.com/cdnflow/cdnflow/worker"
	"github.com/cdnflow/cdnflow/workflows"
)

// NewLogger builds the process logger.
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
	c, err := temporalclient.Dial(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := temporalclient.EnsureSearchAttributes(ctx, c, cfg.Namespace, workflows.SearchAttributes()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// RunWorker runs the Temporal worker until ctx ends.
func RunWorker(ctx context.Context, cfg config.Config, inv *inventory.Inventory, c client.Client, logger *zap.Logger) error {
	w, err := cdnworker.New(c, cdnworker.Deps{Config: cfg, Inventory: inv, Logger: logger.Named("worker")})
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if cfg.MetricsAddr != "" {
		ms := &http.Server{Addr: cfg.MetricsAddr, Handler: metrics.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics listener", zap.Error(err))
			}
		}()
		defer ms.Close()
	}
	logger.Info("worker started", zap.String("taskQueue", cfg.TaskQueue))
	resyncEdges(ctx, c, inv, logger)
	<-ctx.Done()
	w.Stop() // waits for activities up to WorkerStopTimeout
	logger.Info("worker stopped")
	return nil
}

// resyncEdges asks every edge's reconciler to reload the distributions it
// knows: an edge that restarted (managed edges restart with `cdnflow dev`)
// comes back with only its base VCL. Edges without a reconciler have no
// distributions yet.
func resyncEdges(ctx context.Context, c client.Client, inv *inventory.Inventory, logger *zap.Logger) {
	for _, e := range inv.Edges {
		err := c.SignalWorkflow(ctx, workflows.ReconcilerWorkflowID(e.ID), "", workflows.SignalResyncEdge, nil)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			logger.Warn("resync edge", zap.String("edgeId", e.ID), zap.Error(err))
		}
	}
}

// RunAPI serves the HTTP API until ctx ends, then drains requests.
func RunAPI(ctx context.Context, cfg config.Config, inv *inventory.Inventory, c client.Client, logger *zap.Logger) error {
	srv := httpapi.New(httpapi.Deps{Temporal: c, Config: cfg, Inventory: inv, Logger: logger.Named("api")})
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.APIAddr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("api listening", zap.String("addr", ln.Addr().String()))
	if len(cfg.APIKeys) == 0 {
		logger.Warn("no API keys configured: /prewarm and /v1 routes accept any caller (set CDNFLOW_API_KEYS)")
	}
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("drain api: %w", err)
	}
	logger.Info("api stopped")
	return nil
}

// RunDev runs everything in one process: embedded Temporal (unless
// cfg.TemporalAddress names a cluster), Web UI, managed Varnish edges, the
// demo origin, the worker and the API.
func RunDev(ctx context.Context, cfg config.Config, logger *zap.Logger) error {
	inv, err := inventory.Load(cfg.InventoryFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if cfg.DefaultOrigin != "" && isLoopback(cfg.DefaultOrigin) {
		stop, err := startDemoOrigin(cfg.DefaultOrigin, logger)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Edges and Temporal start in parallel: each takes about a second.
	var edges []*varnishd.Process
	var edgeErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		edges, edgeErr = StartManagedEdges(ctx, cfg, inv, logger)
	}()
	var srv *devtemporal.Server
	if cfg.TemporalAddress == "" {
		srv, err = devtemporal.Start(devtemporal.Options{
			DataDir:      cfg.DataDir,
			IP:           "127.0.0.1",
			FrontendPort: cfg.TemporalPort,
			UIPort:       cfg.TemporalUIPort,
			Namespace:    cfg.Namespace,
			Logger:       logger,
			// New namespaces get them at creation; Connect adds any
			// missing from an older data directory.
			SearchAttributes: workflows.SearchAttributes(),
		})
		if err != nil {
			wg.Wait()
			stopEdges(edges, logger)
			return err
		}
		defer srv.Stop()
		cfg.TemporalAddress = srv.FrontendAddr
		logger.Info("embedded temporal started", zap.String("frontend", srv.FrontendAddr), zap.String("db", srv.DBFile))
		if srv.UIAddr != "" {
			logger.Info("temporal web ui", zap.String("url", "http://"+srv.UIAddr))
		}
	}
	wg.Wait()
	defer stopEdges(edges, logger)
	if edgeErr != nil {
		return edgeErr
	}

	c, err := Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	return RunWorkerAndAPI(ctx, cfg, inv, c, logger)
}

// RunWorkerAndAPI runs both until ctx ends or one fails.
func RunWorkerAndAPI(ctx context.Context, cfg config.Config, inv *inventory.Inventory, c client.Client, logger *zap.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- RunWorker(ctx, cfg, inv, c, logger) }()
	go func() { errs <- RunAPI(ctx, cfg, inv, c, logger) }()
	first := <-errs
	cancel()
	second := <-errs
	return errors.Join(first, second)
}

// StartManagedEdges starts one varnishd per managed inventory edge.
func StartManagedEdges(ctx context.Context, cfg config.Config, inv *inventory.Inventory, logger *zap.Logger) ([]*varnishd.Process, error) {
	var managed []inventory.Edge
	for _, e := range inv.Edges {
		if e.Managed {
			managed = append(managed, e)
		}
	}
	if len(managed) == 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("varnishd"); err != nil {
		return nil, varnishd.ErrNotInstalled
	}
	var def *vcl.Backend
	if cfg.DefaultOrigin != "" {
		b, err := backendOf(cfg.DefaultOrigin)
		if err != nil {
			return nil, fmt.Errorf("default origin: %w", err)
		}
		def = &b
	}
	procs := make([]*varnishd.Process, len(managed))
	errs := make([]error, len(managed))
	var wg sync.WaitGroup
	for i, e := range managed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src, err := vcl.Render(vcl.Config{EdgeID: e.ID, DefaultBackend: def, PurgeACL: cfg.PurgeACL})
			if err != nil {
				errs[i] = fmt.Errorf("edge %s: render vcl: %w", e.ID, err)
				return
			}
			workDir, err := filepath.Abs(filepath.Join(cfg.DataDir, "edges", e.ID))
			if err != nil {
				errs[i] = err
				return
			}
			procs[i], errs[i] = varnishd.Start(ctx, varnishd.Options{
				Name:       e.ID,
				WorkDir:    workDir,
				ListenAddr: e.Address,
				AdminAddr:  e.AdminAddress,
				SecretFile: e.SecretFile,
				VCL:        src,
				Logger:     logger.Named("varnishd").With(zap.String("edgeId", e.ID)),
			})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("edge %s: %w", e.ID, errs[i])
			}
		}()
	}
	wg.Wait()
	var started []*varnishd.Process
	for _, p := range procs {
		if p != nil {
			started = append(started, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		stopEdges(started, logger)
		return nil, err
	}
	for _, e := range managed {
		logger.Info("edge started", zap.String("edgeId", e.ID), zap.String("http", e.Address), zap.String("admin", e.AdminAddress))
	}
	return started, nil
}

func stopEdges(procs []*varnishd.Process, logger *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range procs {
		if err := p.Stop(ctx); err != nil {
			logger.Warn("stop varnishd", zap.Error(err))
		}
	}
}

func startDemoOrigin(addr string, logger *zap.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo origin: listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: &origin.Handler{}, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	logger.Info("demo origin listening", zap.String("addr", addr))
	return func() { _ = hs.Close() }, nil
}

func backendOf(addr string) (vcl.Backend, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return vcl.Backend{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return vcl.Backend{}, fmt.Errorf("port of %s: %w", addr, err)
	}
	return vcl.Backend{Host: host, Port: p}, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
