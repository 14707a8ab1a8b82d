package main

import (
	"context"
	"flag"
	"io"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/cli"
	"github.com/cdnflow/cdnflow/stack"
)

// runConnector is `cdnflow connector`: the origin connector beside one
// Varnish edge (edge/connector), its only backend. Flags
// (config.RegisterConnector): --listen (the edge's inventory
// connectorAddress, a loopback IP:port), --state-file (the site table
// kept across restarts), --closed-retention, --control-secret-file (the
// edge's varnishd -S file: admin requests must carry the control token
// derived from it) and the origin settings shared with the API and worker
// (--allow-private-origins, --origin-allow-loopback, --origin-ca-file,
// --origin-dns-server); each also read from its $ENV.
func runConnector(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("cdnflow connector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterConnector(fs)
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	if err := cfg.Tiers.Validate(); err != nil {
		return err
	}
	logger, err := stack.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	logger.Info("connector starting", zap.String("listen", cfg.ConnectorListen), zap.Bool("allowPrivateOrigins", cfg.AllowPrivateOrigins),
		zap.Strings("originAllowLoopback", cfg.OriginAllowLoopback), zap.String("originCAFile", cfg.OriginCAFile),
		zap.String("stateFile", cfg.ConnectorStateFile), zap.String("controlSecretFile", cfg.ControlSecretFile),
		zap.String("parentEdge", cfg.ParentEdge), zap.Bool("parentFallback", cfg.ParentFallback), zap.Int("parentConnections", cfg.ParentConnections))
	if cfg.ConnectorStateFile == "" {
		logger.Warn("no --state-file: the site table is lost when the connector restarts")
	}
	if cfg.ControlSecretFile == "" {
		logger.Warn("no --control-secret-file: site table requests are checked by the edge's VCL only")
	}
	o := cfg.ConnectorOptions(cfg.ConnectorListen, logger.Named("connector"))
	o.StateFile, o.ClosedRetention = cfg.ConnectorStateFile, cfg.ConnectorClosedRetention
	// Tiers: the parent edge (shield) misses go to.
	if o.Parent, err = cfg.Tiers.Parent(); err != nil {
		return err
	}
	o.ParentConnections = cfg.ParentConnections
	o.Traffic = cfg.TrafficOptions() // live traffic from the edge's request log (--traffic-varnish-dir)
	if err := connector.Run(ctx, o); err != nil {
		return err
	}
	logger.Info("connector stopped")
	return nil
}
