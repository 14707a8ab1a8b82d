// Command cdnflow is the CDN cache-control plane: `dev` runs everything in
// one process; `worker` and `api` run against an external Temporal cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/internal/stack"
	"github.com/cdnflow/cdnflow/starter"
)

const usage = `cdnflow — CDN cache-control plane on Temporal

Usage:
  cdnflow dev      [flags]   embedded Temporal + Web UI + local Varnish edges + worker + API
  cdnflow worker   [flags]   Temporal worker against --temporal-address
  cdnflow api      [flags]   HTTP API against --temporal-address
  cdnflow connector [flags]  origin connector beside one Varnish edge (its only backend)
  cdnflow cluster up|down|status   local scale-out cluster: PostgreSQL, Temporal server, Web UI,
                             edges, 2 workers, 2 APIs, each its own process (make cluster-up)
  cdnflow prewarm  [flags]   start a prewarm through the API (--wait follows it; exit 0/2/3/4)
  cdnflow purge    [flags]   start an NHN purge through the API (--wait follows every seq)
  cdnflow status   ID        prewarm status (--wait, --json)
  cdnflow schedule create|list|get|pause|unpause|trigger|delete   recurring prewarm/purge
  cdnflow version           module version of this binary
  cdnflow <cmd> -h           flags of a command (each also read from its $ENV)

Exit codes of prewarm/purge/status: 0 success, 1 error, 2 finished with failures,
3 timeout, 4 job failed.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "dev", "worker", "api":
		err = runServer(ctx, cmd, args)
	case "connector":
		err = runConnector(ctx, args)
	case "cluster":
		err = runCluster(ctx, args)
	case "prewarm":
		os.Exit(starter.Prewarm(ctx, starter.StdIO(), args))
	case "purge":
		os.Exit(starter.Purge(ctx, starter.StdIO(), args))
	case "status":
		os.Exit(starter.Status(ctx, starter.StdIO(), args))
	case "schedule":
		os.Exit(starter.Schedule(ctx, starter.StdIO(), args))
	case "version", "--version":
		fmt.Println("cdnflow", version())
		return
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, varnishd.ErrNotInstalled) {
			fmt.Fprintln(os.Stderr, "cdnflow:", varnishd.ErrNotInstalled.Error())
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "cdnflow:", err)
		os.Exit(1)
	}
}

func runServer(ctx context.Context, cmd string, args []string) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("cdnflow "+cmd, flag.ContinueOnError)
	cfg.Register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cmd != "dev" && cfg.TemporalAddress == "" {
		return fmt.Errorf("%s needs --temporal-address or $TEMPORAL_ADDRESS (or use `cdnflow dev`)", cmd)
	}
	logger, err := stack.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	logger.Info("cdnflow starting", append([]zap.Field{zap.String("command", cmd)}, cfg.LogFields()...)...)
	st, err := stack.Start(ctx, stack.Options{Config: cfg, Logger: logger, Dev: cmd == "dev", NoWorker: cmd == "api", NoAPI: cmd == "worker"})
	if err != nil {
		return err
	}
	return st.Run(ctx)
}

// version is the module version the binary was built from: a tag such as
// v1.2.3 for `go install ...@v1.2.3`, "(devel)" for a build in the
// checkout, then the VCS revision when the build recorded one.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build info)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += " (modified)"
		}
	}
	return v
}
