// Package cluster runs cdnflow's scale-out shape on one machine, every part
// its own process, as production runs it: PostgreSQL (Debian's package,
// a private data directory), the Temporal server built from the pinned
// go.temporal.io/server (schema set up by its temporal-sql-tool,
// visibility on PostgreSQL), the Temporal Web UI, one varnishd per edge
// with its origin connector, several `cdnflow worker` and `cdnflow api`
// processes, the S3 payload store (versitygw, objectstore.go), and
// optionally the demo origin. `cdnflow cluster up|down`
// (make cluster-up / cluster-down) and the cluster kill tests drive it.
//
// Every process runs in its own session, outliving the command that
// started it; its pid is in <Dir>/run/<name>.pid and its output in
// <Dir>/logs/<name>.log. Up starts what is not running (idempotent);
// Down stops everything in reverse order.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cdnflow/cdnflow/deployments"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/inventory"
)

// Options shape a local cluster. Zero fields take the defaults of
// Defaults (the public ports of `cdnflow dev`, so the README's quick start
// works against the cluster unchanged).
type Options struct {
	// Dir holds pidfiles, logs, PostgreSQL's data, the Temporal config,
	// edge work directories and secrets (default .cluster).
	Dir string
	// BinDir holds cdnflow, temporal-server, temporal-sql-tool and versitygw
	// (default: the directory of the running executable).
	BinDir string
	// PostgresBinDir holds initdb, postgres, pg_isready and psql; empty:
	// the newest /usr/lib/postgresql/*/bin, else $PATH.
	PostgresBinDir string
	// PGPort is PostgreSQL's TCP port on 127.0.0.1 (default 15432).
	PGPort int
	// TemporalPort is the frontend's gRPC port; the server's HTTP,
	// history, matching and worker services take the next four ports and
	// their membership (ringpop) ports the four after (default 7233). At
	// most 32759: Temporal's PostgreSQL schema stores membership ports
	// as smallint.
	TemporalPort int
	// UIPort serves the Temporal Web UI (default 8233; -1: no UI).
	UIPort int
	// APIAddrs are the listen addresses of the `cdnflow api` processes,
	// one process each (default 127.0.0.1:8080 and 127.0.0.1:8081).
	APIAddrs []string
	// WorkerMetricsAddrs are the --metrics-addr of the `cdnflow worker`
	// processes, one process each; a worker is ready when its /metrics
	// answers (default 127.0.0.1:9091 and 127.0.0.1:9092).
	WorkerMetricsAddrs []string
	// Edges are the Varnish edges; nil: the dev inventory
	// (deployments/dev/edges.yaml) with secrets under Dir.
	Edges []inventory.Edge
	// ExternalEdges: the Edges run elsewhere (a fleet simulator,
	// bench/fleet, or edges on other hosts); the cluster starts no
	// varnishd or connector for them and only hands their inventory to
	// the workers and APIs.
	ExternalEdges bool
	// DefaultOrigin serves hosts no distribution matches (default
	// 127.0.0.1:8090); DemoOrigin starts `cdnflow cluster origin` there.
	DefaultOrigin string
	DemoOrigin    bool
	// OriginAllowLoopback lists loopback origins the connectors, workers
	// and APIs admit (the demo origin's port is added when DemoOrigin).
	OriginAllowLoopback []string
	// ObjectStorePort is the S3 port of the cluster's object store
	// (versitygw) on 127.0.0.1 (default 9000).
	ObjectStorePort int
	// PayloadURL names an external payload store (a bucket URL as
	// --payload-url takes); the cluster then runs no object store of its
	// own and the workers and APIs inherit the caller's credentials.
	PayloadURL string
	// Namespace registered in Temporal (default "default").
	Namespace string
	// ServerArgs are extra flags of every worker and API process: only
	// flags both commands take (--log-level, --payload-url ...). Both
	// also inherit the environment, so CDNFLOW_* variables set for
	// `cdnflow cluster up` reach them.
	ServerArgs []string
	// ServerEnv are extra NAME=value variables of every worker and API
	// process, after the environment of the first up: settings only one
	// of the commands takes (the API's app keys, the workers' tunables
	// such as CDNFLOW_HEARTBEAT_TIMEOUT; each ignores the other's).
	ServerEnv []string
	// PGSettings are extra `postgres -c name=value` settings.
	PGSettings map[string]string
	// ReadyTimeout bounds the wait for one process (default 2 minutes).
	ReadyTimeout time.Duration
	// Logf reports progress (default: nothing).
	Logf func(format string, args ...any)
}

// Cluster is a local cluster's layout; its processes may or may not run.
type Cluster struct {
	opts Options
	inv  *inventory.Inventory
}

// New fills in the defaults and checks the layout; it starts nothing.
func New(o Options) (*Cluster, error) {
	o = withDefaults(o)
	if o.TemporalPort+8 > 32767 {
		return nil, fmt.Errorf("temporal port %d: the server's membership ports (up to port+8) must stay below 32768 (a smallint in Temporal's PostgreSQL schema)", o.TemporalPort)
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	o.Dir = abs
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return nil, fmt.Errorf("bin dir: %w", err)
	}
	edges := o.Edges
	if o.ExternalEdges && edges == nil {
		return nil, errors.New("external edges need their inventory (--edges FILE)")
	}
	if edges == nil {
		dev, err := inventory.Parse(deployments.DevEdges)
		if err != nil {
			return nil, fmt.Errorf("dev inventory: %w", err)
		}
		edges = dev.Edges
	}
	edges = append([]inventory.Edge(nil), edges...)
	for i := range edges {
		if !filepath.IsAbs(edges[i].SecretFile) {
			edges[i].SecretFile = filepath.Join(o.Dir, "edges", edges[i].ID+".secret")
		}
		// The cluster starts them, not the workers: not `managed`.
		edges[i].Managed = false
	}
	inv, err := inventory.New(edges)
	if err != nil {
		return nil, fmt.Errorf("cluster edges: %w", err)
	}
	if o.DemoOrigin {
		_, port, err := net.SplitHostPort(o.DefaultOrigin)
		if err != nil {
			return nil, fmt.Errorf("default origin %q: %w", o.DefaultOrigin, err)
		}
		o.OriginAllowLoopback = append(append([]string(nil), o.OriginAllowLoopback...), port)
	}
	return &Cluster{opts: o, inv: inv}, nil
}

func withDefaults(o Options) Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Dir, ".cluster")
	if o.BinDir == "" {
		if exe, err := os.Executable(); err == nil {
			o.BinDir = filepath.Dir(exe)
		}
	}
	def(&o.DefaultOrigin, "127.0.0.1:8090")
	def(&o.Namespace, "default")
	if o.PGPort == 0 {
		o.PGPort = 15432
	}
	if o.TemporalPort == 0 {
		o.TemporalPort = 7233
	}
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if o.ObjectStorePort == 0 {
		o.ObjectStorePort = 9000
	}
	if o.APIAddrs == nil {
		o.APIAddrs = []string{"127.0.0.1:8080", "127.0.0.1:8081"}
	}
	if o.WorkerMetricsAddrs == nil {
		o.WorkerMetricsAddrs = []string{"127.0.0.1:9091", "127.0.0.1:9092"}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Options returns the settings with defaults filled in.
func (c *Cluster) Options() Options { return c.opts }

// Inventory is the cluster's edge inventory (absolute secret paths), as
// the workers and APIs read it from <Dir>/edges.json.
func (c *Cluster) Inventory() *inventory.Inventory { return c.inv }

// TemporalAddress is the frontend's host:port.
func (c *Cluster) TemporalAddress() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.TemporalPort))
}

// APIURLs are the base URLs of the API processes (http://host:port).
func (c *Cluster) APIURLs() []string {
	out := make([]string, len(c.opts.APIAddrs))
	for i, a := range c.opts.APIAddrs {
		out[i] = "http://" + a
	}
	return out
}

// UIURL is the Web UI's URL; empty without a UI.
func (c *Cluster) UIURL() string {
	if c.opts.UIPort < 0 {
		return ""
	}
	return "http://127.0.0.1:" + strconv.Itoa(c.opts.UIPort)
}

// Up starts every process that is not running, in dependency order, and
// waits for each to be ready: PostgreSQL (initialised on first use), the
// schema, Temporal, the namespace, the object store and its bucket, the
// UI, the demo origin, the edges with their connectors, the workers, the
// APIs.
func (c *Cluster) Up(ctx context.Context) error {
	if err := c.preflight(); err != nil {
		return err
	}
	if err := c.prepareDir(); err != nil {
		return err
	}
	if err := c.upPostgres(ctx); err != nil {
		return err
	}
	if err := c.upTemporal(ctx); err != nil {
		return err
	}
	for _, p := range c.procs() {
		if p.name == "postgres" || p.name == "temporal" {
			continue
		}
		if err := c.start(ctx, p); err != nil {
			return err
		}
	}
	c.opts.Logf("cluster up: Temporal %s, UI %s, APIs %s", c.TemporalAddress(), c.UIURL(), strings.Join(c.APIURLs(), " "))
	return nil
}

// preflight checks every program the cluster runs is there before
// anything starts.
func (c *Cluster) preflight() error {
	bins := []string{"cdnflow", "temporal-server", "temporal-sql-tool"}
	if c.ownObjectStore() {
		bins = append(bins, versitygwBin)
	}
	for _, name := range bins {
		if _, err := os.Stat(filepath.Join(c.opts.BinDir, name)); err != nil {
			return fmt.Errorf("%s not found in %s: build the cluster's binaries with `make cluster-bins` (or give --bin-dir)", name, c.opts.BinDir)
		}
	}
	for _, name := range []string{"initdb", "postgres", "pg_isready", "psql"} {
		p, err := c.pgBin(name)
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w", p, ErrPostgresNotInstalled)
		}
	}
	if _, err := varnishd.Binary(); err != nil && len(c.inv.Edges) > 0 && !c.opts.ExternalEdges {
		return err
	}
	return nil
}

func (c *Cluster) prepareDir() error {
	for _, d := range []string{"", "run", "logs", "edges", "data"} {
		if err := os.MkdirAll(filepath.Join(c.opts.Dir, d), 0o755); err != nil {
			return fmt.Errorf("cluster dir: %w", err)
		}
	}
	// PostgreSQL runs as its own user and must reach its data directory.
	if err := os.Chmod(c.opts.Dir, 0o755); err != nil {
		return fmt.Errorf("cluster dir: %w", err)
	}
	if err := c.keepEnv(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c.inv, "", "  ")
	if err != nil {
		return fmt.Errorf("cluster inventory: %w", err)
	}
	if err := os.WriteFile(c.inventoryFile(), data, 0o644); err != nil {
		return fmt.Errorf("cluster inventory: %w", err)
	}
	return nil
}

func (c *Cluster) inventoryFile() string { return filepath.Join(c.opts.Dir, "edges.json") }

// Down stops every process of the cluster directory in reverse start
// order (APIs, workers, edges, connectors, origin, UI, object store,
// Temporal, PostgreSQL). Data stays; a later Up resumes it.
func Down(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
	if err != nil {
		return fmt.Errorf("cluster pidfiles: %w", err)
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".pid"))
	}
	sort.SliceStable(names, func(i, j int) bool { return stopRank(names[i]) < stopRank(names[j]) })
	c := &Cluster{opts: Options{Dir: dir}}
	var errs []error
	for _, n := range names {
		sig, wait := syscall.SIGTERM, 20*time.Second
		if n == "postgres" {
			sig = syscall.SIGINT // fast shutdown: ends open sessions
		}
		errs = append(errs, c.signal(n, sig, wait))
	}
	return errors.Join(errs...)
}

// stopRank orders Down: clients before what they talk to.
func stopRank(name string) int {
	for i, prefix := range []string{"api-", "worker-", "edge-", "connector-", "origin", "ui", ObjectStoreName, "temporal", "postgres"} {
		if strings.HasPrefix(name, prefix) {
			return i
		}
	}
	return -1
}

// Status lists the cluster's processes by name with their pid (0: not
// running).
func (c *Cluster) Status() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs() {
		out[p.name] = c.pid(p.name)
	}
	return out
}

// Kill sends SIGKILL to the named process (kill -9: no drain, no clean
// close) and waits until it is gone.
func (c *Cluster) Kill(name string) error {
	if c.pid(name) == 0 {
		return fmt.Errorf("%s is not running", name)
	}
	return c.signal(name, syscall.SIGKILL, 10*time.Second)
}

// Pause stops the named process and its session (SIGSTOP): it keeps its
// sockets but answers nothing until Resume — a hung part, as opposed to
// a dead one.
func (c *Cluster) Pause(name string) error { return c.sessionSignal(name, syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (c *Cluster) Resume(name string) error { return c.sessionSignal(name, syscall.SIGCONT) }

func (c *Cluster) sessionSignal(name string, sig syscall.Signal) error {
	pid := c.pid(name)
	if pid == 0 {
		return fmt.Errorf("%s is not running", name)
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %s (%d): %w", name, pid, err)
	}
	return nil
}

// Stop ends the named process with sig, SIGKILL after wait.
func (c *Cluster) Stop(name string, sig syscall.Signal, wait time.Duration) error {
	return c.signal(name, sig, wait)
}

// Start starts the named process again (when it is not running) and
// waits until it is ready.
func (c *Cluster) Start(ctx context.Context, name string) error {
	for _, p := range c.procs() {
		if p.name == name {
			return c.start(ctx, p)
		}
	}
	return fmt.Errorf("no process %q in the cluster", name)
}

// Running tells whether the named process runs.
func (c *Cluster) Running(name string) bool { return c.pid(name) != 0 }

// procs lists the processes in start order.
func (c *Cluster) procs() []proc {
	ps := []proc{c.postgresProc(), c.temporalProc()}
	if c.ownObjectStore() {
		ps = append(ps, c.objectStoreProc())
	}
	if c.opts.UIPort >= 0 {
		ps = append(ps, c.uiProc())
	}
	if c.opts.DemoOrigin {
		ps = append(ps, c.originProc())
	}
	for _, e := range c.inv.Edges {
		if !c.opts.ExternalEdges {
			ps = append(ps, c.connectorProc(e), c.edgeProc(e))
		}
	}
	for i := range c.opts.WorkerMetricsAddrs {
		ps = append(ps, c.workerProc(i))
	}
	for i := range c.opts.APIAddrs {
		ps = append(ps, c.apiProc(i))
	}
	return ps
}

// WorkerName and APIName are the process names of worker i and API i
// (0-based), as Kill and Start take them.
func WorkerName(i int) string { return fmt.Sprintf("worker-%d", i+1) }

// EdgeName is the process name of the varnishd of edge id.
func EdgeName(id string) string { return "edge-" + id }

// APIName is the process name of API i (0-based).
func APIName(i int) string { return fmt.Sprintf("api-%d", i+1) }
