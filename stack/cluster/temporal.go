package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
)

// NumHistoryShards of the cluster's Temporal (fixed once the schema holds
// data).
const NumHistoryShards = 4

// Retention of closed workflows in the registered namespace.
const Retention = 72 * time.Hour

func (c *Cluster) temporalConfigFile() string {
	return filepath.Join(c.opts.Dir, "temporal", "config.yaml")
}
func (c *Cluster) dynamicConfigFile() string {
	return filepath.Join(c.opts.Dir, "temporal", "dynamic.yaml")
}

func (c *Cluster) temporalProc() proc {
	return proc{name: "temporal", argv: []string{filepath.Join(c.opts.BinDir, "temporal-server"),
		"--config-file", c.temporalConfigFile(), "--allow-no-auth", "start"}, ready: c.temporalReady}
}

// temporalReady is ready when the namespace answers through the frontend
// (which needs history and the persistence behind it).
func (c *Cluster) temporalReady(ctx context.Context) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: c.TemporalAddress(), Logger: log.NewStructuredLogger(nil)})
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = nc.Describe(ctx, "temporal-system")
	return err
}

// upTemporal renders the server's config, sets up or updates both schemas
// with temporal-sql-tool, starts the server and registers the namespace.
func (c *Cluster) upTemporal(ctx context.Context) error {
	if err := c.writeTemporalConfig(); err != nil {
		return err
	}
	for _, db := range []struct{ name, schema string }{{pgDB, "postgresql/v12/temporal"}, {pgVisibility, "postgresql/v12/visibility"}} {
		if err := c.setupSchema(ctx, db.name, db.schema); err != nil {
			return err
		}
	}
	if err := c.start(ctx, c.temporalProc()); err != nil {
		return err
	}
	return c.registerNamespace(ctx)
}

// setupSchema creates db and its versioning tables on first use, then
// brings it to the module's newest schema version (a no-op when current).
func (c *Cluster) setupSchema(ctx context.Context, db, schema string) error {
	exists, err := c.psql(ctx, "postgres", fmt.Sprintf("SELECT 1 FROM pg_database WHERE datname = '%s'", db))
	if err != nil {
		return err
	}
	if exists != "1" {
		c.opts.Logf("creating database %s", db)
		if err := c.sqlTool(ctx, db, "create-database"); err != nil {
			return err
		}
		if err := c.sqlTool(ctx, db, "setup-schema", "-v", "0.0"); err != nil {
			return err
		}
	}
	return c.sqlTool(ctx, db, "update-schema", "--schema-name", schema)
}

func (c *Cluster) sqlTool(ctx context.Context, db string, args ...string) error {
	bin := filepath.Join(c.opts.BinDir, "temporal-sql-tool")
	argv := append([]string{"--plugin", "postgres12", "--endpoint", "127.0.0.1", "--port", strconv.Itoa(c.opts.PGPort),
		"--user", pgUser, "--password", pgPassword, "--database", db}, args...)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("temporal-sql-tool %s %s: %w\n%s", db, strings.Join(args, " "), err, lastLines(string(out), 15))
	}
	return nil
}

// registerNamespace registers the namespace unless it exists; the other
// services see it within the namespace cache refresh (1 s, dynamic config).
func (c *Cluster) registerNamespace(ctx context.Context) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: c.TemporalAddress(), Logger: log.NewStructuredLogger(nil)})
	if err != nil {
		return fmt.Errorf("temporal namespace client: %w", err)
	}
	defer nc.Close()
	if _, err := nc.Describe(ctx, c.opts.Namespace); err == nil {
		return nil
	}
	c.opts.Logf("registering namespace %s", c.opts.Namespace)
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: c.opts.Namespace, WorkflowExecutionRetentionPeriod: durationpb.New(Retention),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register namespace %s: %w", c.opts.Namespace, err)
	}
	// Until every service's namespace cache holds it, workers get
	// NamespaceNotFound.
	time.Sleep(2 * time.Second)
	return nil
}

func (c *Cluster) writeTemporalConfig() error {
	if err := os.MkdirAll(filepath.Dir(c.temporalConfigFile()), 0o755); err != nil {
		return fmt.Errorf("temporal config dir: %w", err)
	}
	var b strings.Builder
	if err := configTemplate.Execute(&b, map[string]any{
		"PGAddr": fmt.Sprintf("127.0.0.1:%d", c.opts.PGPort), "User": pgUser, "Password": pgPassword,
		"DB": pgDB, "VisibilityDB": pgVisibility, "Shards": NumHistoryShards, "P": c.opts.TemporalPort,
		"Dynamic": c.dynamicConfigFile(),
	}); err != nil {
		return fmt.Errorf("render temporal config: %w", err)
	}
	if err := os.WriteFile(c.temporalConfigFile(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write temporal config: %w", err)
	}
	return os.WriteFile(c.dynamicConfigFile(), []byte(renderDynamicConfig(DynamicConfig)), 0o644)
}

// DynamicConfig is the server's dynamic config, by key: what `cdnflow dev`
// sets on its embedded server (internal/devtemporal), so the cluster runs
// jobs as dev does. Keys are the server's dynamicconfig keys (a test
// checks each against the module).
var DynamicConfig = map[string]any{
	"history.hostLevelCacheMaxSize":        8096,
	"frontend.namespaceRPS.visibility":     1000,
	"frontend.namespaceRPS":                10000,
	"frontend.rps":                         20000,
	"system.namespaceCacheRefreshInterval": "1s",
	"system.enableActivityEagerExecution":  true,
}

func renderDynamicConfig(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := m[k]
		if s, ok := v.(string); ok {
			v = strconv.Quote(s)
		}
		fmt.Fprintf(&b, "%s:\n  - value: %v\n    constraints: {}\n", k, v)
	}
	return b.String()
}

// configTemplate is the Temporal server's static config: one node, every
// service on 127.0.0.1 from port P (frontend gRPC P, HTTP P+1, history
// P+2, matching P+3, worker P+4; membership P+5..P+8), both stores on
// PostgreSQL with the postgres12 plugin.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{"add": func(a, b int) int { return a + b }}).Parse(`# Rendered by cdnflow cluster up (stack/cluster); edits are overwritten.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: {{.DB}}
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: {{.User}}
        password: "{{.Password}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: {{.VisibilityDB}}
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: {{.User}}
        password: "{{.Password}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
  frontend:
    rpc: {grpcPort: {{.P}}, httpPort: {{add .P 1}}, membershipPort: {{add .P 5}}, bindOnIP: 127.0.0.1}
  history:
    rpc: {grpcPort: {{add .P 2}}, membershipPort: {{add .P 6}}, bindOnIP: 127.0.0.1}
  matching:
    rpc: {grpcPort: {{add .P 3}}, membershipPort: {{add .P 7}}, bindOnIP: 127.0.0.1}
  worker:
    rpc: {grpcPort: {{add .P 4}}, membershipPort: {{add .P 8}}, bindOnIP: 127.0.0.1}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{.P}}"
      httpAddress: "127.0.0.1:{{add .P 1}}"
dcRedirectionPolicy:
  policy: noop
archival:
  history: {state: disabled}
  visibility: {state: disabled}
namespaceDefaults:
  archival:
    history: {state: disabled}
    visibility: {state: disabled}
publicClient:
  hostPort: "127.0.0.1:{{.P}}"
dynamicConfigClient:
  filepath: "{{.Dynamic}}"
  pollInterval: 10s
`))
