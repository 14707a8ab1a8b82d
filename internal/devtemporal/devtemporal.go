// Package devtemporal runs a real Temporal server in-process, persisted to a
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

	"github.com/cdnflow/cdnflow/internal/freeport"
)

const clusterName = "active"

// Options configures the embedded server.
type Options struct {
	// DataDir holds the SQLite file; created if missing. Empty means an
	// in-memory store (only for throwaway runs).
	DataDir string
	// IP to bind every listener to; default 127.0.0.1.
	IP string
	// FrontendPort is the gRPC port clients dial. The server's other
	// services take the next four ports, all fixed, so start-up never
	// races another process for a port it probed: FrontendPort+1 frontend
	// HTTP, +2 history, +3 matching, +4 worker. 0 picks free ports
	// instead (tests, which run side by side; probed ports can be taken in
	// between, which a test survives by failing, a dev box should not).
	FrontendPort int
	// UIPort serves the Web UI; 0 picks a free one, -1 disables the UI.
	UIPort int
	// UICodecEndpoint is the UI's data encoder: the browser sends payloads
	// to {endpoint}/decode to show them (cdnflow codec-server, which holds
	// the payload key). Empty: payloads show as stored (sealed).
	UICodecEndpoint string
	// UIWriteActions lets the UI start, signal, update, reset, cancel and
	// terminate workflows; off, the UI only reads (the ui-server's
	// disableWriteActions).
	UIWriteActions bool
	Namespace      string
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
	logLevel     zap.AtomicLevel
	logger       *zap.Logger
	FrontendAddr string
	UIAddr       string
	DBFile       string
}

// ports of the server's services, by config name.
type ports map[string]int

var serviceNames = map[string]primitives.ServiceName{
	"frontend": primitives.FrontendService, "history": primitives.HistoryService,
	"matching": primitives.MatchingService, "worker": primitives.WorkerService,
}

// Start sets up the SQLite schema on first use, registers the namespace and
// starts frontend, history, matching and worker services plus the UI.
func Start(opts Options) (*Server, error) {
	opts = withDefaults(opts)
	p, err := servicePorts(opts.IP, opts.FrontendPort)
	if err != nil {
		return nil, err
	}
	sqlConf, dbFile, err := sqlConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{FrontendAddr: net.JoinHostPort(opts.IP, strconv.Itoa(p["frontend"])), DBFile: dbFile, logLevel: zap.NewAtomicLevelAt(opts.LogLevel), logger: opts.Logger}
	if s.server, err = newServer(serverConfig(opts.IP, p, sqlConf), opts.IP, p, s.serverLogger(opts.Logger)); err != nil {
		return nil, err
	}
	if opts.UIPort >= 0 {
		if err := s.newUI(opts); err != nil {
			return nil, err
		}
	}
	if err := s.server.Start(); err != nil {
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

func withDefaults(opts Options) Options {
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
	return opts
}

// servicePorts lays the services out from the frontend port (see
// Options.FrontendPort), or on free ports when it is 0.
func servicePorts(ip string, frontend int) (ports, error) {
	order := []string{"frontend", "frontend-http", "history", "matching", "worker"}
	p := ports{}
	for i, svc := range order {
		if frontend > 0 {
			p[svc] = frontend + i
			continue
		}
		port, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		p[svc] = port
	}
	return p, nil
}

// serverConfig is a single-node cluster on ip with one SQLite store.
func serverConfig(ip string, p ports, sqlConf *config.SQL) *config.Config {
	frontendAddr := net.JoinHostPort(ip, strconv.Itoa(p["frontend"]))
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = ip
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
				HTTPAddress:            net.JoinHostPort(ip, strconv.Itoa(p["frontend-http"])),
				ClusterID:              "cdnflow-dev",
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for svc := range serviceNames {
		var s config.Service
		s.RPC.GRPCPort = p[svc]
		s.RPC.BindOnIP = ip
		if svc == "frontend" {
			s.RPC.HTTPPort = p["frontend-http"]
		}
		conf.Services[svc] = s
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontendAddr
	return conf
}

// dynamicConfig tunes the dev defaults for one user's box.
var dynamicConfig = dynamicconfig.StaticClient{
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
	// cdnflow keeps large payloads in its own claim-check store, never in
	// the SDK's external payload storage; the server's accounting of
	// external payloads walks each new event batch while another request
	// may be encoding the same events (a data race in server v1.32.1 seen
	// under -race), so it is off.
	dynamicconfig.ExternalPayloadsEnabled.Key(): false,
}

func newServer(conf *config.Config, ip string, p ports, serverLog *zap.Logger) (temporal.Server, error) {
	hosts := map[primitives.ServiceName]static.Hosts{}
	for svc, name := range serviceNames {
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(ip, strconv.Itoa(p[svc])))
	}
	logger := tlog.NewZapLogger(serverLog)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig),
	)
	if err != nil {
		return nil, fmt.Errorf("new temporal server: %w", err)
	}
	return srv, nil
}

// serverLogger is the server's own logger: at s.logLevel, which Stop
// raises so that the server's services, stopping one after another, do
// not log a storm of "Failed to poll" and "connection refused" lines about
// each other.
func (s *Server) serverLogger(l *zap.Logger) *zap.Logger {
	return l.Named("temporal").WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return gatedCore{Core: c, level: s.logLevel}
	}))
}

// gatedCore drops entries below level.
type gatedCore struct {
	zapcore.Core
	level zap.AtomicLevel
}

func (c gatedCore) Enabled(l zapcore.Level) bool { return c.level.Enabled(l) && c.Core.Enabled(l) }

func (c gatedCore) With(f []zapcore.Field) zapcore.Core {
	return gatedCore{Core: c.Core.With(f), level: c.level}
}

func (c gatedCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !c.level.Enabled(e.Level) {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (s *Server) newUI(opts Options) error {
	if opts.UIPort == 0 {
		var err error
		if opts.UIPort, err = freePort(opts.IP); err != nil {
			return err
		}
	}
	s.UIAddr = net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
	s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                opts.IP,
		Port:                opts.UIPort,
		TemporalGRPCAddress: s.FrontendAddr,
		EnableUI:            true,
		DefaultNamespace:    opts.Namespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		DisableNewsFetch:    true,
		DisableWriteActions: !opts.UIWriteActions,
		Codec:               uiconfig.Codec{Endpoint: opts.UICodecEndpoint},
	}))
	return nil
}

// Stop shuts the UI and the server down. Clients (the worker, the API)
// should be stopped first. The server's own logs are cut to fatal errors
// while it stops: its services lose each other one by one, which is
// expected at this point and says nothing to the user.
func (s *Server) Stop() {
	s.logLevel.SetLevel(zapcore.DPanicLevel)
	if s.ui != nil {
		s.ui.Stop()
	}
	if err := s.server.Stop(); err != nil {
		s.logger.Warn("stop embedded temporal", zap.Error(err))
	}
}

// sqliteConns is the connection pool of the SQLite file (WAL mode): reads
// run beside the one writer; one connection for every store (history,
// matching, visibility) made status reads and visibility lists wait in
// line with the writes that run jobs, and the worker got a third of the
// workflow tasks per second under the load bench.
const sqliteConns = 8

// sqliteTxLock makes every transaction of the store BEGIN IMMEDIATE: it
// takes SQLite's write lock when it begins, waiting for the writer before
// it up to busy_timeout. The persistence layer's transactions read, then
// write (matching's task queue lease: SELECT the range, then UPDATE it);
// begun DEFERRED, such an upgrade fails at once with SQLITE_BUSY when
// another connection wrote since the read (waiting could deadlock), and an
// idle `cdnflow dev` logged that as an ERROR within a minute.
//
// _txlock is a setting of the driver (modernc.org/sqlite), not a PRAGMA,
// and the plugin passes every connect attribute but SQLite's URI keys on
// as a PRAGMA. It builds the DSN as "file:" + DatabaseName + "?" + the
// encoded attributes, so the setting rides in DatabaseName, ahead of the
// attributes. The first of those, busy_timeout (attributes are sorted),
// then follows a second "?" and is lost, so it is given here too.
// TestSQLiteTransactionsDoNotCollide fails if either setting is lost.
const sqliteTxLock = "?_txlock=immediate&_pragma=busy_timeout%3D" + sqliteBusyTimeout + "&"

// sqliteBusyTimeout (ms) bounds a writer's wait for the one before it.
const sqliteBusyTimeout = "10000"

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
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": sqliteBusyTimeout}
		conf.MaxConns, conf.MaxIdleConns = sqliteConns, sqliteConns
		conf.DatabaseName = dbFile + sqliteTxLock
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
	p, err := freeport.Get(ip)
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return p, nil
}
