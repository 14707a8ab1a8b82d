// Command cdnflow is the CDN cache-control plane: `dev` runs everything in
// one process; `worker` and `api` run against an external Temporal cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/internal/cli"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/starter"
)

const usage = `cdnflow — CDN cache-control plane on Temporal

Usage:
  cdnflow dev      [flags]   embedded Temporal + Web UI + local Varnish edges + worker + API
  cdnflow worker   [flags]   Temporal worker against --temporal-address
  cdnflow api      [flags]   HTTP API against --temporal-address
  cdnflow connector [flags]  origin connector beside one Varnish edge (its only backend)
  cdnflow codec-server [flags]  codec endpoint on loopback that decrypts payloads for the Temporal
                             Web UI (its data encoder); needs --payload-key-file
  cdnflow cluster up|down|status   local scale-out cluster: PostgreSQL, Temporal server, Web UI,
                             edges, 2 workers, 2 APIs, each its own process (make cluster-up)
  cdnflow prewarm  [flags]   start a prewarm through the API (--wait follows it; exit 0/2/3/4)
  cdnflow purge    [flags]   start an NHN purge through the API (--wait follows every seq)
  cdnflow status   ID        prewarm status (--wait, --json)
  cdnflow release  [flags]   purge → prewarm → verify as one job, followed with a progress bar (exit 0/2/3/4)
  cdnflow schedule create|list|get|pause|unpause|trigger|delete   recurring prewarm/purge
  cdnflow distribution history|diff|rollback|plan   a distribution's versions (rollback --wait; exit 0/3/4)
  cdnflow token create|list|revoke   scoped API tokens (admin --api-key; the secret is shown once)
  cdnflow version           module version of this binary
  cdnflow <cmd> -h           flags of a command (each also read from its $ENV)

Exit codes of prewarm/purge/status: 0 success, 1 error, 2 finished with failures,
3 timeout, 4 job failed. Every command: 2 when its command line does not parse
(unknown flag, bad value, extra argument), 0 after -h.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command line (args without the program name); it
// returns the exit code. A command line that does not parse prints the
// error and the command's usage to stderr and exits cli.ExitUsage (2);
// -h/--help prints the usage and exits 0.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		say(stderr, usage)
		return cli.ExitUsage
	}
	cmd, args := args[0], args[1:]
	sio := starter.StdIO()
	sio.Out, sio.Err = stdout, stderr
	var err error
	switch cmd {
	case "dev", "worker", "api":
		err = runServer(ctx, cmd, args, stderr)
	case "connector":
		err = runConnector(ctx, args, stderr)
	case "codec-server":
		err = runCodecServer(ctx, args, stderr)
	case "cluster":
		err = runCluster(ctx, args, stdout, stderr)
	case "prewarm":
		return starter.Prewarm(ctx, sio, args)
	case "purge":
		return starter.Purge(ctx, sio, args)
	case "status":
		return starter.Status(ctx, sio, args)
	case "schedule":
		return starter.Schedule(ctx, sio, args)
	case "distribution":
		return starter.Distribution(ctx, sio, args)
	case "token":
		return starter.Token(ctx, sio, args)
	// Releases (starter/release.go).
	case "release":
		return starter.Release(ctx, sio, args)
	case "version", "--version":
		if len(args) > 0 {
			sayf(stderr, "cdnflow version takes no arguments, got %q\n", args[0])
			return cli.ExitUsage
		}
		sayln(stdout, "cdnflow", version())
		return 0
	case "-h", "--help", "help":
		say(stdout, usage)
		return 0
	default:
		sayf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return cli.ExitUsage
	}
	if code, ok := cli.ExitCode(err); ok {
		return code
	}
	if err != nil {
		if errors.Is(err, varnishd.ErrNotInstalled) {
			sayln(stderr, "cdnflow:", varnishd.ErrNotInstalled.Error())
			return 1
		}
		sayln(stderr, "cdnflow:", err)
		return 1
	}
	return 0
}

// serverFlags is the flag set of `cdnflow dev|worker|api`: each command
// registers the setting groups it uses (config.RegisterDev, ...), so
// `worker -h` lists no API flags and `api -h` no worker tunables.
func serverFlags(cmd string, cfg *config.Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cdnflow "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "dev":
		cfg.RegisterDev(fs)
	case "worker":
		cfg.RegisterWorker(fs)
	case "api":
		cfg.RegisterAPI(fs)
	default:
		panic("serverFlags: not a server command: " + cmd)
	}
	return fs
}

func runServer(ctx context.Context, cmd string, args []string, stderr io.Writer) error {
	cfg := config.Default()
	fs := serverFlags(cmd, &cfg, stderr)
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cmd != "dev" && cfg.TemporalAddress == "" {
		return fmt.Errorf("%s needs --temporal-address or $TEMPORAL_ADDRESS (or use `cdnflow dev`)", cmd)
	}
	if err := checkAPIAuth(cmd, cfg); err != nil {
		return err
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

// checkAPIAuth refuses `cdnflow api` without --api-keys: its Prewarm API
// and /v1 routes would take any caller as admin over every appKey. Only
// --insecure-no-auth starts it so (stack logs a warning in capitals).
// `cdnflow dev` stays open but serves on loopback by default.
func checkAPIAuth(cmd string, cfg config.Config) error {
	if cmd != "api" || len(cfg.APIKeys) > 0 || cfg.InsecureNoAuth {
		return nil
	}
	return errors.New("api: no --api-keys ($CDNFLOW_API_KEYS): the Prewarm API and /v1 would accept any caller; " +
		"configure keys (then create scoped tokens with `cdnflow token create`), or pass --insecure-no-auth to run without authentication on purpose")
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
