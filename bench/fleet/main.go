// Command fleet runs a simulated edge fleet in its own process: -edges Go
// stand-in edges (bench/harness.StartFleet: HTTP, PURGE, BAN, the
// probe, the site table's admin protocol behind the control token, the
// Varnish CLI, each stand-in with its own table and cache), shaped by
// -latency, -loss and -restart-every/-restart-share. It writes their edge
// inventory to -inventory, prints how to point `cdnflow dev` or the local
// cluster at it, and serves until SIGINT or SIGTERM; then it prints what
// the fleet answered and its own CPU time, stops the stand-ins and exits
// 0. Run apart from cdnflow, the worker's CPU is measured apart from the
// stand-ins', and each process holds one end of every connection.
//
//	go run ./bench/fleet -edges 1000 -inventory /tmp/fleet.json
//	cdnflow dev --edges /tmp/fleet.json --data-dir /tmp/fleet-dev --api-addr 127.0.0.1:18080 ...
//	make cluster-up CLUSTER_FLAGS='--edges /tmp/fleet.json --external-edges'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// run parses args, starts the fleet, writes its inventory and serves
// until ctx ends.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	var o Options
	fs.IntVar(&o.Edges, "edges", 1000, "stand-in edges to start (two listening sockets each)")
	fs.StringVar(&o.Dir, "dir", filepath.Join(os.TempDir(), "cdnflow-fleet"), "directory of the stand-ins' secret file (the inventory's secretFile)")
	fs.StringVar(&o.Prefix, "prefix", "SIM", "edge id prefix: <prefix>001-C1, <prefix>002-C1, ...")
	inv := fs.String("inventory", filepath.Join(os.TempDir(), "cdnflow-fleet.json"), "edge inventory file written (JSON; cdnflow --edges / CDNFLOW_EDGES)")
	fs.DurationVar(&o.Fleet.Latency, "latency", 0, "added before every HTTP answer of a stand-in (a far edge's round trip)")
	fs.Float64Var(&o.Fleet.Loss, "loss", 0, "share (0..1) of HTTP requests whose connection is dropped unanswered")
	fs.DurationVar(&o.Fleet.RestartEvery, "restart-every", 0, "every this long, restart -restart-share of the stand-ins with an empty table and cache (0: never)")
	fs.Float64Var(&o.Fleet.RestartShare, "restart-share", 0.01, "share (0..1) of the stand-ins restarted each -restart-every (at least one)")
	fs.IntVar(&o.Simulated, "simulated", 0, "simulated distributions (dNNNNN.fleet.test) in every stand-in's starting table")
	fs.StringVar(&o.SimulatedOwner, "simulated-owner", "fleetsim", "control plane owning the -simulated entries (cdnflow's own id would have its first sync round delete them)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.Fleet.Loss < 0 || o.Fleet.Loss > 1 || o.Fleet.RestartShare < 0 || o.Fleet.RestartShare > 1 {
		return fmt.Errorf("-loss and -restart-share are shares from 0 to 1")
	}
	f, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.WriteInventory(*inv); err != nil {
		return err
	}
	path, _ := filepath.Abs(*inv)
	printHowTo(out, o, path)
	<-ctx.Done()
	printCounts(out, f.StandIns)
	return nil
}

func printHowTo(out io.Writer, o Options, path string) {
	_, _ = fmt.Fprintf(out, "fleet: %d stand-in edges (latency %s, loss %.3f, restart %.3f every %s, %d simulated distributions), pid %d\n",
		o.Edges, o.Fleet.Latency, o.Fleet.Loss, o.Fleet.RestartShare, o.Fleet.RestartEvery, o.Simulated, os.Getpid())
	_, _ = fmt.Fprintf(out, "inventory: %s\n", path)
	_, _ = fmt.Fprintf(out, "  cdnflow dev:   cdnflow dev --edges %s   (or CDNFLOW_EDGES=%s; give it ports other than the defaults)\n", path, path)
	_, _ = fmt.Fprintf(out, "  local cluster: make cluster-up CLUSTER_FLAGS='--edges %s --external-edges'\n", path)
	_, _ = fmt.Fprintln(out, "serving until SIGINT or SIGTERM")
}

// printCounts prints the requests the fleet answered, by kind, and this
// process's CPU time.
func printCounts(out io.Writer, fleet []*harness.StandIn) {
	kinds := []string{"admin-digest", "admin-entries", "admin-change", "purge", "ban", "probe", "get"}
	_, _ = fmt.Fprint(out, "fleet answered:")
	for _, k := range kinds {
		var n int64
		for _, s := range fleet {
			n += s.Count(k)
		}
		_, _ = fmt.Fprintf(out, " %s %d", k, n)
	}
	_, _ = fmt.Fprintf(out, "; fleet process CPU %s\n", harness.ProcessCPU().Round(time.Millisecond))
}
