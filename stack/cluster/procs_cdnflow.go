package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

func (c *Cluster) cdnflow() string { return filepath.Join(c.opts.BinDir, "cdnflow") }

// serverArgs are the flags every worker and API process shares: the
// cluster's Temporal, the edge inventory, the payload store (S3, never a
// shared directory) and the origin policy; each process also gets a data
// directory of its own (dataDir). Everything else reaches them through
// the environment they inherit from `cluster up` (CDNFLOW_*, and the
// OpenTelemetry variables such as OTEL_EXPORTER_OTLP_ENDPOINT).
func (c *Cluster) serverArgs() []string {
	args := []string{
		"--temporal-address", c.TemporalAddress(),
		"--namespace", c.opts.Namespace,
		"--edges", c.inventoryFile(),
		"--payload-url", c.PayloadURL(),
		"--default-origin", c.opts.DefaultOrigin,
		"--log-format", "json",
	}
	if len(c.opts.OriginAllowLoopback) > 0 {
		args = append(args, "--origin-allow-loopback", strings.Join(c.opts.OriginAllowLoopback, ","))
	}
	return append(args, c.opts.ServerArgs...)
}

func (c *Cluster) workerProc(i int) proc {
	addr := c.opts.WorkerMetricsAddrs[i]
	argv := append([]string{c.cdnflow(), "worker"}, c.serverArgs()...)
	argv = append(argv, "--metrics-addr", addr, "--data-dir", c.dataDir(WorkerName(i)))
	return proc{name: WorkerName(i), argv: argv, envf: c.serverEnv, ready: httpReady("http://"+addr+"/metrics", http.StatusOK)}
}

func (c *Cluster) apiProc(i int) proc {
	addr := c.opts.APIAddrs[i]
	argv := append([]string{c.cdnflow(), "api"}, c.serverArgs()...)
	// The local cluster serves on loopback for tests and demos: no keys.
	argv = append(argv, "--api-addr", addr, "--data-dir", c.dataDir(APIName(i)), "--insecure-no-auth")
	return proc{name: APIName(i), argv: argv, envf: c.serverEnv, ready: httpReady("http://"+addr+"/readyz", http.StatusOK)}
}

// dataDir is a worker's or API's own --data-dir (nothing in it is read by
// another process).
func (c *Cluster) dataDir(name string) string { return filepath.Join(c.opts.Dir, "data", name) }

func (c *Cluster) uiProc() proc {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.UIPort))
	return proc{name: "ui", argv: []string{c.cdnflow(), "cluster", "ui", "--listen", addr,
		"--temporal-address", c.TemporalAddress(), "--namespace", c.opts.Namespace}, ready: httpReady("http://"+addr+"/", http.StatusOK)}
}

func (c *Cluster) originProc() proc {
	return proc{name: "origin", argv: []string{c.cdnflow(), "cluster", "origin", "--listen", c.opts.DefaultOrigin},
		ready: tcpReady(c.opts.DefaultOrigin)}
}

func (c *Cluster) connectorProc(e inventory.Edge) proc {
	// The state file keeps the edge's site table when the connector
	// restarts: a restart then changes nothing visitors get.
	state := filepath.Join(c.dataDir("connector-"+e.ID), "sites.json")
	argv := []string{c.cdnflow(), "connector", "--listen", e.ConnectorAddress, "--log-format", "json",
		"--control-secret-file", e.SecretFile, "--state-file", state,
		// Live traffic: the reader restarts varnishncsa until the edge
		// (started after its connector) has its shared memory log.
		"--traffic-varnish-dir", c.edgeWorkDir(e), "--traffic-edge-id", e.ID}
	if len(c.opts.OriginAllowLoopback) > 0 {
		argv = append(argv, "--origin-allow-loopback", strings.Join(c.opts.OriginAllowLoopback, ","))
	}
	// Tiers: a child edge's misses go to its shield (docs/tiers.md).
	if p, ok := c.inv.ParentOf(e.ID); ok {
		argv = append(argv, "--parent-edge", p.ID+"="+p.Address)
	}
	// The connector starts before its edge and reads the edge's secret
	// (the control token's key) at start.
	return proc{name: "connector-" + e.ID, argv: argv, prepare: func() error {
		if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
			return fmt.Errorf("connector state directory: %w", err)
		}
		return varnishd.EnsureSecret(e.SecretFile)
	},
		ready: tcpReady(e.ConnectorAddress)}
}

// edgeWorkDir is e's varnishd -n directory, absolute (the connector's
// varnishncsa and varnishd name the same shared memory log).
func (c *Cluster) edgeWorkDir(e inventory.Edge) string {
	work := filepath.Join(c.opts.Dir, "edges", e.ID)
	if abs, err := filepath.Abs(work); err == nil {
		return abs
	}
	return work
}

// edgeProc is varnishd in the foreground (-F) with the boot VCL that `cdnflow
// dev` gives its edges: the connector as only backend, the default origin
// for hosts without a distribution. Its work directory and boot VCL are
// written by writeEdgeFiles before it starts.
func (c *Cluster) edgeProc(e inventory.Edge) proc {
	bin, _ := varnishd.Binary()
	work := c.edgeWorkDir(e)
	argv := []string{bin, "-F", "-n", work, "-a", e.Address, "-T", e.AdminAddress, "-S", e.SecretFile,
		"-f", filepath.Join(work, "boot.vcl"), "-s", "malloc,256m", "-i", e.ID, "-p", "thread_pool_max=2000"}
	if os.Geteuid() == 0 {
		// As root varnishd drops to its own users, which cannot read the
		// secret and VCL in the cluster directory.
		argv = append(argv, "-j", "none")
	}
	return proc{name: EdgeName(e.ID), argv: argv, prepare: func() error { return c.writeEdgeFiles(e) },
		ready: func(ctx context.Context) error { return edgeReady(ctx, e) }}
}

// writeEdgeFiles writes the edge's secret (once) and boot VCL.
func (c *Cluster) writeEdgeFiles(e inventory.Edge) error {
	work := filepath.Join(c.opts.Dir, "edges", e.ID)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("edge %s: %w", e.ID, err)
	}
	if err := varnishd.EnsureSecret(e.SecretFile); err != nil {
		return err
	}
	var def *vcl.Backend
	if c.opts.DefaultOrigin != "" {
		host, port, err := net.SplitHostPort(c.opts.DefaultOrigin)
		if err != nil {
			return fmt.Errorf("default origin: %w", err)
		}
		p, _ := strconv.Atoi(port)
		def = &vcl.Backend{Host: host, Port: p}
	}
	token, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		return fmt.Errorf("edge %s: %w", e.ID, err)
	}
	src, err := vcl.Render(vcl.Config{EdgeID: e.ID, ConnectorPort: e.ConnectorPort(), DefaultBackend: def, ControlToken: token})
	if err != nil {
		return fmt.Errorf("edge %s: render vcl: %w", e.ID, err)
	}
	path := filepath.Join(work, "boot.vcl")
	if old, err := os.ReadFile(path); err == nil && string(old) == src {
		return nil
	}
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		return fmt.Errorf("edge %s: boot vcl: %w", e.ID, err)
	}
	return nil
}

// edgeReady: the admin port answers with the cache child running and the
// HTTP port accepts connections.
func edgeReady(ctx context.Context, e inventory.Edge) error {
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }() // a readiness check: its answers are what count
	st, err := conn.Do(ctx, "status")
	if err != nil {
		return err
	}
	if !strings.Contains(st, "running") {
		return fmt.Errorf("edge %s child %s", e.ID, strings.TrimSpace(st))
	}
	return tcpReady(e.Address)(ctx)
}

func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

func httpReady(url string, want int) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
		}
		return nil
	}
}
