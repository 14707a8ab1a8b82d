// Package devserver runs a real Temporal server in-process, persisted to a
// SQLite file, plus the Temporal Web UI. It is what `cdnflow dev` and the
// integration tests use; production points the same worker and API at an
// external cluster instead.
package devtemporal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const clusterName = "active"

// Options configures the embedded server.
type Options struct {
	// DataDir holds the SQLite file; created if missing. Empty means an
	// in-memory store (only for throwaway runs).
	DataDir string
	// IP to bind every listener to; default 127.0.0.1.
	IP string
	// FrontendPort is the gRPC port clients dial; 0 picks a free one.
	FrontendPort int
	// UIPort serves the Web UI; 0 picks a free one, -1 disables the UI.
	UIPort    int
	Namespace string
	// SearchAttributes are registered with the namespace when it is
	// created, so the first workflow start can already use them.
	SearchAttributes map[string]enumspb.IndexedValueType
	Logger           *zap.Logger
	// LogLevel for the server's own (chatty) logs; default warn.
	LogLevel zapcore.Level
}

// Server is a running embedded Temporal server.
type Server struct {
	server       temporal.Server
	ui           *uiserver.Server
	FrontendAddr string
	UIAddr       string
	DBFile       string
}

// Start sets up the SQLite schema on first use, registers the namespace and
// starts frontend, history, matching and worker services plus the UI.
func Start(opts Options) (*Server, error) {
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = zapcore.WarnLevel
	}
	var err error
	if opts.FrontendPort == 0 {
		if opts.FrontendPort, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	ports := map[string]int{"frontend": opts.FrontendPort}
	for _, svc := range []string{"history", "matching", "worker", "frontend-http"} {
		if ports[svc], err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}

	sqlConf, dbFile, err := sqlConfig(opts)
	if err != nil {
		return nil, err
	}
	frontendAddr := net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort))
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.IP
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontendAddr,
				HTTPAddress:            net.JoinHostPort(opts.IP, strconv.Itoa(ports["frontend-http"])),
				ClusterID:              "cdnflow-dev",
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, svc := range []string{"frontend", "history", "matching", "worker"} {
		var s config.Service
		s.RPC.GRPCPort = ports[svc]
		s.RPC.BindOnIP = opts.IP
		if svc == "frontend" {
			s.RPC.HTTPPort = ports["frontend-http"]
		}
		conf.Services[svc] = s
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontendAddr

	hosts := map[primitives.ServiceName]static.Hosts{}
	for svc, name := range map[string]primitives.ServiceName{
		"frontend": primitives.FrontendService, "history": primitives.HistoryService,
		"matching": primitives.MatchingService, "worker": primitives.WorkerService,
	} {
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(opts.IP, strconv.Itoa(ports[svc])))
	}

	serverLog := opts.Logger.Named("temporal").WithOptions(zap.IncreaseLevel(opts.LogLevel))
	logger := tlog.NewZapLogger(serverLog)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 1000,
		// Status pages and purge listings read visibility often; the dev
		// defaults throttle that harder than a single-user box needs.
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key(): 10000,
		dynamicconfig.FrontendRPS.Key():                        20000,
		// Search attributes added later (an upgrade adds one) reach every
		// service at the next namespace refresh; keep that short.
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): time.Second,
		// A workflow's activities go straight back to the worker that
		// scheduled them, skipping a matching round trip: purges fan out
		// to every edge and that latency is most of a small purge.
		dynamicconfig.EnableActivityEagerExecution.Key(): true,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("new temporal server: %w", err)
	}
	s := &Server{server: srv, FrontendAddr: frontendAddr, DBFile: dbFile}
	if opts.UIPort >= 0 {
		if opts.UIPort == 0 {
			if opts.UIPort, err = freePort(opts.IP); err != nil {
				return nil, err
			}
		}
		s.UIAddr = net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                opts.IP,
			Port:                opts.UIPort,
			TemporalGRPCAddress: frontendAddr,
			EnableUI:            true,
			DefaultNamespace:    opts.Namespace,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
		}))
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	if s.ui != nil {
		ui := s.ui
		go func() {
			// Start blocks until Stop; an error here means the port was taken.
			if err := ui.Start(); err != nil && !errors.Is(err, net.ErrClosed) {
				opts.Logger.Error("temporal web ui stopped", zap.Error(err))
			}
		}()
	}
	return s, nil
}

// Stop shuts the UI and the server down.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if err := s.server.Stop(); err != nil {
		_ = err // the server logs its own shutdown errors
	}
}

func sqlConfig(opts Options) (*config.SQL, string, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	dbFile := ""
	if opts.DataDir == "" {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = fmt.Sprintf("cdnflow-%d", time.Now().UnixNano())
	} else {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("create data dir: %w", err)
		}
		abs, err := filepath.Abs(filepath.Join(opts.DataDir, "temporal.db"))
		if err != nil {
			return nil, "", fmt.Errorf("data dir path: %w", err)
		}
		dbFile = abs
		// WAL keeps readers (visibility queries) from blocking the writer.
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": "10000"}
		conf.DatabaseName = dbFile
		if _, err := os.Stat(dbFile); errors.Is(err, os.ErrNotExist) {
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, "", fmt.Errorf("set up sqlite schema: %w", err)
			}
		}
	}
	if opts.DataDir == "" {
		if err := sqliteschema.SetupSchema(conf); err != nil {
			return nil, "", fmt.Errorf("set up sqlite schema: %w", err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, "", fmt.Errorf("namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, "", fmt.Errorf("create namespace %s: %w", opts.Namespace, err)
	}
	return conf, dbFile, nil
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
