package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	cdnworker "github.com/cdnflow/cdnflow/worker"
	"github.com/cdnflow/cdnflow/workflows"
)

// RunWorker runs the Temporal worker until ctx ends, then stops it
// (waiting for activities up to WorkerStopTimeout). payloads is the
// claim-check store (Stack.Payloads).
//
// It first checks the worker's fleet-wide edge settings against the
// namespace's record (worker.CheckFleetSettings): a worker whose purge
// ACL, default origin or control plane id differ from the other workers'
// does not start (a *worker.FleetSettingsError), and a running one stops
// with that error once another worker replaced the record
// (worker.WatchFleetSettings, every 4 sync periods).
func RunWorker(ctx context.Context, cfg config.Config, inv *inventory.Inventory, c client.Client, payloads payload.Store, logger *zap.Logger) error {
	return runWorker(ctx, cdnworker.Deps{Config: cfg, Inventory: inv, Logger: logger, Payloads: payloads}, c)
}

// runWorker is RunWorker with the worker's dependencies whole
// (Options.MoreDesired included).
func runWorker(ctx context.Context, d cdnworker.Deps, c client.Client) error {
	cfg, logger := d.Config, d.Logger
	if err := cdnworker.CheckFleetSettings(ctx, c, cfg); err != nil {
		return err
	}
	d.Logger = logger.Named("worker")
	w, err := cdnworker.New(c, d)
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
		defer func() {
			if err := ms.Close(); err != nil {
				logger.Warn("close metrics listener", zap.Error(err))
			}
		}()
	}
	logger.Info("worker started", zap.String("taskQueue", cfg.TaskQueue))
	go keepEdgeSync(ctx, c, cfg, logger)
	// Host claims: once per start, the aliases running distributions
	// applied get the claim they miss (worker.ClaimAppliedHosts).
	go claimAppliedHosts(ctx, c, cfg, logger)
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	fleet := make(chan error, 1)
	go func() { fleet <- cdnworker.WatchFleetSettings(watch, c, cfg, 4*cfg.EdgeSyncEvery, logger) }()
	select {
	case <-ctx.Done():
	case err = <-fleet:
		logger.Error("fleet settings changed: stopping the worker", zap.Error(err))
	}
	w.Stop() // waits for activities up to WorkerStopTimeout
	logger.Info("worker stopped")
	return err
}

// claimAppliedHosts runs worker.ClaimAppliedHosts once and logs what it
// did; a failed scan is logged (the next start tries again).
func claimAppliedHosts(ctx context.Context, c client.Client, cfg config.Config, logger *zap.Logger) {
	pass, err := cdnworker.ClaimAppliedHosts(ctx, c, cfg.TaskQueue, logger)
	if err != nil && ctx.Err() == nil {
		logger.Warn("host claim pass", zap.Error(err))
		return
	}
	logger.Info("host claim pass done", zap.Int("distributions", pass.Distributions), zap.Int("held", pass.Held),
		zap.Int("claimed", pass.Claimed), zap.Int("taken", pass.Taken), zap.Int("failed", pass.Failed))
}

// keepEdgeSync starts the namespace's EdgeSyncWorkflow unless it runs, at
// start and then every 4 sync periods: a loop that was terminated comes
// back (it rebuilds its state from the distributions). Every worker tries;
// the first one wins.
func keepEdgeSync(ctx context.Context, c client.Client, cfg config.Config, logger *zap.Logger) {
	tick := time.NewTicker(4 * cfg.EdgeSyncEvery)
	defer tick.Stop()
	for {
		startEdgeSync(ctx, c, cfg, logger)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func startEdgeSync(ctx context.Context, c client.Client, cfg config.Config, logger *zap.Logger) {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.EdgeSyncWorkflowID, TaskQueue: cfg.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.EdgeSyncWorkflow, workflows.EdgeSyncInput{Every: cfg.EdgeSyncEvery})
	if err != nil && ctx.Err() == nil {
		logger.Warn("start edge sync", zap.Error(err))
	}
}

// serveAPI serves the HTTP API on ln until ctx ends, then drains requests
// (up to 15 s).
func serveAPI(ctx context.Context, ln net.Listener, cfg config.Config, inv *inventory.Inventory, c client.Client, payloads payload.Store, logger *zap.Logger) error {
	srv := httpapi.New(httpapi.Deps{Temporal: c, Config: cfg, Inventory: inv, Logger: logger.Named("api"), Payloads: payloads})
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("api listening", zap.String("addr", ln.Addr().String()))
	if len(cfg.APIKeys) == 0 {
		logger.Warn("NO AUTHENTICATION: no API keys configured, /prewarm and /v1 routes accept any caller as admin (set CDNFLOW_API_KEYS)")
	}
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Drain ends the release event streams, then drains the rest, and
	// writes the queued audit records even when the drain timed out.
	if err := srv.Drain(shutdownCtx, hs); err != nil {
		return fmt.Errorf("drain api: %w", err)
	}
	logger.Info("api stopped")
	return nil
}

// StartManagedEdges starts one varnishd per managed inventory edge, each
// with its origin connector (in-process, listening on the edge's
// connectorAddress before the VCL naming it is rendered). stop ends the
// connectors (after the edges are stopped).
func StartManagedEdges(ctx context.Context, cfg config.Config, inv *inventory.Inventory, logger *zap.Logger) (procs []*varnishd.Process, stop func(), err error) {
	stop = func() {}
	var idx []int
	for i, e := range inv.Edges {
		if e.Managed {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, stop, nil
	}
	if _, err := exec.LookPath("varnishd"); err != nil {
		return nil, stop, varnishd.ErrNotInstalled
	}
	tables, stop, err := startConnectors(cfg, inv, idx, logger)
	if err != nil {
		return nil, func() {}, err
	}
	managed := make([]inventory.Edge, len(idx))
	for j, i := range idx {
		managed[j] = inv.Edges[i]
	}
	procs, err = startVarnishes(ctx, cfg, managed, tables, logger)
	if err != nil {
		stop()
		return nil, func() {}, err
	}
	return procs, stop, nil
}

// startConnectors serves one origin connector per edge inv.Edges[i], i in
// idx, on its connectorAddress, with the origin settings of cfg and its
// site table in <DataDir>/connectors/<edge id>.json; it returns each
// edge's table as loaded, by edge id. A port 0 (a managed edge without
// connectorAddress) becomes the free port chosen, written back into inv
// before any VCL or worker uses it.
func startConnectors(cfg config.Config, inv *inventory.Inventory, idx []int, logger *zap.Logger) (map[string][]connector.Site, func(), error) {
	tables := map[string][]connector.Site{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	for _, i := range idx {
		e := &inv.Edges[i]
		ln, err := net.Listen("tcp", e.ConnectorAddress)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("edge %s: connector: listen %s: %w", e.ID, e.ConnectorAddress, err)
		}
		e.ConnectorAddress = ln.Addr().String()
		// The connector checks admin requests for the edge's control
		// token, derived from the CLI secret varnishd is started with.
		if err := varnishd.EnsureSecret(e.SecretFile); err != nil {
			_ = ln.Close()
			stop()
			return nil, nil, fmt.Errorf("edge %s: %w", e.ID, err)
		}
		co := cfg.ConnectorOptions(e.ConnectorAddress, logger.Named("connector").With(zap.String("edgeId", e.ID)))
		co.ControlSecretFile = e.SecretFile
		co.StateFile = filepath.Join(cfg.DataDir, "connectors", e.ID+".json") // the site table outlives a restart of dev
		// Tiers: a child's misses go to its shield (docs/tiers.md).
		if p, ok := inv.ParentOf(e.ID); ok {
			co.Parent = &connector.Parent{ID: p.ID, Address: p.Address, Fallback: cfg.ParentFallback}
		}
		co.ParentConnections = cfg.ParentConnections
		co.Traffic = connector.TrafficOptions{WorkDir: edgeWorkDir(cfg, e.ID), Edge: e.ID} // live traffic from the edge's request log
		c, err := connector.New(co)
		if err != nil {
			_ = ln.Close()
			stop()
			return nil, nil, fmt.Errorf("edge %s: %w", e.ID, err)
		}
		tables[e.ID] = c.Table().State().Sites
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if err := c.Serve(ctx, ln); err != nil {
				logger.Error("connector", zap.String("edgeId", inv.Edges[i].ID), zap.Error(err))
			}
		}()
	}
	return tables, stop, nil
}

// startVarnishes starts one varnishd per edge, in parallel, each booted
// with the VCL of its connector's table (tables, by edge id).
func startVarnishes(ctx context.Context, cfg config.Config, managed []inventory.Edge, tables map[string][]connector.Site, logger *zap.Logger) ([]*varnishd.Process, error) {
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
			// The secret exists: startConnectors made it.
			token, err := connector.ControlTokenFile(e.SecretFile)
			if err != nil {
				errs[i] = fmt.Errorf("edge %s: %w", e.ID, err)
				return
			}
			// The VCL of the table the connector loaded: what the edge
			// sync renders for it, so a restarted edge is as desired.
			src, err := vcl.Render(vcl.WithTable(vcl.Config{EdgeID: e.ID, ConnectorPort: e.ConnectorPort(), DefaultBackend: def, PurgeACL: cfg.PurgeACL, ControlToken: token}, tables[e.ID]))
			if err != nil {
				errs[i] = fmt.Errorf("edge %s: render vcl: %w", e.ID, err)
				return
			}
			workDir := edgeWorkDir(cfg, e.ID)
			procs[i], errs[i] = varnishd.Start(ctx, varnishd.Options{
				Name:       e.ID,
				WorkDir:    workDir,
				ListenAddr: e.Address,
				AdminAddr:  e.AdminAddress,
				SecretFile: e.SecretFile,
				VCL:        src,
				// The name the edge sync gives this source: a fresh edge
				// is as desired, not drift.
				VCLName: varnishadm.ManagedName(src),
				// A VCL compile on a busy machine can outlast the default.
				ReadyTimeout: time.Minute,
				Logger:       logger.Named("varnishd").With(zap.String("edgeId", e.ID)),
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

// startDemoOrigin serves origin.Handler on addr until the returned stop.
func startDemoOrigin(addr string, logger *zap.Logger) (func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo origin: listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: &origin.Handler{}, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	logger.Info("demo origin listening", zap.String("addr", addr))
	return hs.Close, nil
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

// edgeWorkDir is the varnishd -n directory of managed edge id: the
// connector's request log reader reads it, varnishd runs in it.
func edgeWorkDir(cfg config.Config, id string) string {
	dir := filepath.Join(cfg.DataDir, "edges", id)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
