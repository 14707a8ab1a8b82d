package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"

	"github.com/cdnflow/cdnflow/internal/cli"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack/cluster"
)

const clusterUsage = `cdnflow cluster — a local scale-out cluster, every part its own process

  cdnflow cluster up     [flags]   start what is not running (PostgreSQL, Temporal, S3 store,
                                   Web UI, demo origin, edges + connectors, workers, APIs);
                                   idempotent
  cdnflow cluster down   [--dir]   stop everything (data stays in --dir)
  cdnflow cluster status [--dir]   pid of each process (0: not running)
  cdnflow cluster ui     [flags]   the Temporal Web UI process (started by up)
  cdnflow cluster origin [flags]   the demo origin process (started by up)
`

// runCluster is `cdnflow cluster ...` (stack/cluster).
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		say(stderr, "cdnflow cluster needs a command\n\n"+clusterUsage)
		return &cli.UsageError{Err: errors.New("cluster needs a command")}
	}
	switch args[0] {
	case "up", "status":
		c, err := clusterFromFlags(args[0], args[1:], stderr)
		if err != nil {
			return err
		}
		if args[0] == "status" {
			return printStatus(c, stdout)
		}
		return c.Up(ctx)
	case "down":
		fs := newFlagSet("cdnflow cluster down", stderr)
		dir := fs.String("dir", ".cluster", "cluster directory")
		if _, err := cli.Parse(fs, args[1:], 0); err != nil {
			return err
		}
		return cluster.Down(*dir)
	case "ui":
		return runClusterUI(ctx, args[1:], stderr)
	case "origin":
		return runClusterOrigin(ctx, args[1:], stderr)
	case "-h", "--help", "help":
		say(stdout, clusterUsage)
		return nil
	}
	sayf(stderr, "unknown cluster command %q\n\n%s", args[0], clusterUsage)
	return &cli.UsageError{Err: fmt.Errorf("unknown cluster command %q", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// clusterFromFlags parses the flags of `cluster up|status`.
func clusterFromFlags(cmd string, args []string, stderr io.Writer) (*cluster.Cluster, error) {
	fs := newFlagSet("cdnflow cluster "+cmd, stderr)
	var o cluster.Options
	fs.StringVar(&o.Dir, "dir", ".cluster", "cluster directory: pidfiles, logs, PostgreSQL data, Temporal config, edge work dirs")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory of cdnflow, temporal-server, temporal-sql-tool and versitygw (default: this binary's)")
	fs.StringVar(&o.PostgresBinDir, "pg-bin-dir", "", "directory of initdb/postgres/psql (default: newest /usr/lib/postgresql/*/bin, then $PATH)")
	fs.IntVar(&o.PGPort, "pg-port", 15432, "PostgreSQL port on 127.0.0.1")
	fs.IntVar(&o.TemporalPort, "temporal-port", 7233, "Temporal frontend gRPC port; the server's other services take the next eight ports")
	fs.IntVar(&o.UIPort, "ui-port", 8233, "Temporal Web UI port (-1: no UI)")
	fs.IntVar(&o.ObjectStorePort, "s3-port", 9000, "S3 port of the cluster's payload store (versitygw) on 127.0.0.1")
	fs.StringVar(&o.PayloadURL, "payload-url", "", "an external payload store (a bucket URL, as the workers' --payload-url takes); the cluster then runs no object store")
	apis := fs.String("api-addrs", "127.0.0.1:8080,127.0.0.1:8081", "listen addresses of the API processes, one process each")
	workers := fs.Int("workers", 2, "worker processes; worker i serves /metrics on 127.0.0.1:9090+i")
	edges := fs.String("edges", "", "edge inventory file (default: the dev inventory, secrets under --dir)")
	fs.BoolVar(&o.ExternalEdges, "external-edges", false, "the --edges run elsewhere (bench/fleet, remote edges): start no varnishd or connector for them")
	fs.StringVar(&o.DefaultOrigin, "default-origin", "127.0.0.1:8090", "host:port edges fetch from for hosts without a distribution")
	demo := fs.Bool("demo-origin", true, "run the demo origin on --default-origin")
	allow := fs.String("origin-allow-loopback", "", "comma-separated loopback origins admitted (the demo origin's port is added)")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return nil, err
	}
	o.DemoOrigin = *demo
	o.APIAddrs = splitList(*apis)
	o.OriginAllowLoopback = splitList(*allow)
	for i := 1; i <= *workers; i++ {
		o.WorkerMetricsAddrs = append(o.WorkerMetricsAddrs, "127.0.0.1:"+strconv.Itoa(9090+i))
	}
	if *workers == 0 {
		o.WorkerMetricsAddrs = []string{}
	}
	if *edges != "" {
		inv, err := inventory.Load(*edges)
		if err != nil {
			return nil, err
		}
		o.Edges = inv.Edges
	}
	o.Logf = func(format string, a ...any) { sayf(stderr, "cluster: "+format+"\n", a...) }
	return cluster.New(o)
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printStatus lists each process with its pid, or "not running"; an
// error (exit 1) when any is not running.
func printStatus(c *cluster.Cluster, stdout io.Writer) error {
	st := c.Status()
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	var down []string
	for _, n := range names {
		if st[n] == 0 {
			sayf(stdout, "%-24s not running\n", n)
			down = append(down, n)
			continue
		}
		sayf(stdout, "%-24s %d\n", n, st[n])
	}
	if len(down) > 0 {
		return fmt.Errorf("%d of %d processes not running (%s): `make cluster-up` starts them", len(down), len(names), strings.Join(down, ", "))
	}
	return nil
}

// runClusterUI serves the Temporal Web UI (the ui-server module `cdnflow
// dev` embeds) against --temporal-address until ctx ends.
func runClusterUI(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("cdnflow cluster ui", stderr)
	listen := fs.String("listen", "127.0.0.1:8233", "listen address")
	addr := fs.String("temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	ns := fs.String("namespace", "default", "namespace shown first")
	codecEndpoint := fs.String("codec-endpoint", "http://127.0.0.1:8234", "codec endpoint the UI decodes sealed payloads through (cdnflow codec-server; empty: none)")
	writeActions := fs.Bool("write-actions", false, "let the UI start, signal, cancel, reset and terminate workflows")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("ui --listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("ui --listen port: %w", err)
	}
	ui := uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host: host, Port: port, TemporalGRPCAddress: *addr, EnableUI: true, DefaultNamespace: *ns,
		CORS: uiconfig.CORS{CookieInsecure: true}, HideLogs: true, DisableNewsFetch: true,
		// Read-only by default: jobs go through cdnflow's API, which checks
		// its callers; payloads show through the codec endpoint only.
		DisableWriteActions: !*writeActions, Codec: uiconfig.Codec{Endpoint: *codecEndpoint},
	}))
	errc := make(chan error, 1)
	go func() { errc <- ui.Start() }()
	select {
	case err := <-errc:
		return fmt.Errorf("temporal web ui: %w", err)
	case <-ctx.Done():
		ui.Stop()
		return nil
	}
}

// runClusterOrigin serves the demo origin (internal/origin) until ctx ends.
func runClusterOrigin(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("cdnflow cluster origin", stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "listen address")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo origin: %w", err)
	}
	hs := &http.Server{Handler: &origin.Handler{}, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = hs.Close() }()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demo origin: %w", err)
	}
	return nil
}
