// Package config holds cdnflow's settings. Every setting has a flag and an
// environment variable (flag wins), so the same binary runs from a laptop
// shell, a systemd unit or a Kubernetes manifest.
package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
)

// Config is the whole of cdnflow's configuration: one group per concept,
// each registered by the commands that use it (RegisterDev, RegisterWorker,
// RegisterAPI, RegisterConnector). The groups are embedded, so a setting
// is read as cfg.Name whatever its group.
type Config struct {
	Temporal
	Log
	Process
	Origins
	API
	Auth
	Jobs
	Worker
	Dev
	Connector
	Secrets
	Codec
	// Tiers: tiered fill (config/tiers.go).
	Tiers
	// Webhooks: signed job events (docs/webhooks.md).
	Webhooks
	// The operator console and live traffic (Console, Traffic).
	Console
	Traffic
	// Shedding: the API's bound on heavy work (config/shedding.go).
	Shedding
}

// Temporal is the Temporal client: where the frontend is and how to reach
// it (dev, worker, api).
type Temporal struct {
	temporalclient.Settings
}

// Log is how a process logs (dev, worker, api, connector).
type Log struct {
	LogLevel  string
	LogFormat string
}

// Process holds what every API and worker process of a deployment shares:
// the edge inventory, the payload store, the default origin (dev, worker,
// api).
type Process struct {
	// DataDir holds dev's SQLite store, claim checks, edge workdirs and the
	// embedded inventory's edge secrets; relative to the working directory.
	DataDir string
	// InventoryFile is the edge inventory; empty: the dev inventory
	// embedded in the binary (deployments/dev/edges.yaml).
	InventoryFile string
	// PayloadURL is the claim-check store: a gocloud.dev/blob bucket URL
	// (internal/payload.ParseURL: file:///dir, s3://bucket?..., gs://bucket)
	// that keeps large payloads (URL lists, per-pair outcomes) outside
	// history. Empty: file://<DataDir>/payloads. Every API and worker
	// process of a deployment names the same bucket.
	PayloadURL string
	// DefaultOrigin serves hosts that match no distribution.
	DefaultOrigin string
}

// Origins is the origin address policy, CA bundle and DNS, shared by the
// API's checks, the worker's probes and each edge's connector (dev,
// worker, api, connector).
type Origins struct {
	// AllowPrivateOrigins admits origins on RFC 1918, fc00::/7 and
	// 100.64.0.0/10 addresses (--allow-private-origins); loopback,
	// link-local, metadata and multicast stay refused (internal/netguard).
	AllowPrivateOrigins bool
	// OriginAllowLoopback lists loopback origins admitted ("PORT" or
	// "127.0.0.1:PORT"); `cdnflow dev` adds its demo origin's port only.
	OriginAllowLoopback []string
	// OriginCAFile is a PEM bundle trusted for https origins besides the
	// system CAs (--origin-ca-file, CDNFLOW_ORIGIN_CA_FILE).
	OriginCAFile string
	// OriginDNSServer (host:port) answers the connectors' and probes' DNS
	// queries; empty: /etc/resolv.conf.
	OriginDNSServer string

	// OriginDNSServeStale is how long past its TTL an origin name's last
	// good addresses are used while the resolver fails (timeout, SERVFAIL,
	// REFUSED), RFC 8767 serve-stale (--origin-dns-serve-stale; default 1 h;
	// negative: never). connector.Options.DNSServeStale.
	OriginDNSServeStale time.Duration
}

// API is the HTTP API: where it listens and who may call it (dev, api).
type API struct {
	APIAddr string
	// APIKeys are accepted in x-api-key on the Prewarm API.
	APIKeys []string
	// AppKeys maps an NHN-style appKey to its SecretKey.
	AppKeys map[string]string
	// ShowSuccessURLs adds successUrl to PrewarmStatus, as the Prewarm
	// solution's ShowSuccessUrls template parameter does.
	ShowSuccessURLs bool
	// CDNBaseDomain is the suffix of generated distribution domains.
	CDNBaseDomain string
}

// Auth is how the API authenticates and accounts for callers beyond the
// keys of API: API tokens and the audit trail (dev, api;
// docs/operations.md "Tokens, scopes and audit").
type Auth struct {
	// InsecureNoAuth lets `cdnflow api` start without --api-keys: the
	// Prewarm API and /v1 then take any caller (logged at start).
	InsecureNoAuth bool
	// TokenCacheTTL is how long an API serves its copy of the token table:
	// a revoked token stops working on every API within it.
	TokenCacheTTL time.Duration
	// AuditQueue bounds the audit records waiting to be written; a full
	// queue drops records (counted in cdnflow_audit_records_total).
	AuditQueue int
	// AuditRetention is how long audit records are kept (whole UTC days;
	// 0 keeps them forever).
	AuditRetention time.Duration
}

// Register binds the API's token and audit settings.
func (a *Auth) Register(fs *flag.FlagSet) {
	boolean(fs, &a.InsecureNoAuth, "insecure-no-auth", "CDNFLOW_INSECURE_NO_AUTH", "let `cdnflow api` start without --api-keys: the Prewarm API and /v1 then accept any caller")
	dur(fs, &a.TokenCacheTTL, "token-cache-ttl", "CDNFLOW_TOKEN_CACHE_TTL", "how long an API serves its copy of the token table (a revoked token works at most this long on other APIs)")
	num(fs, &a.AuditQueue, "audit-queue", "CDNFLOW_AUDIT_QUEUE", "audit records waiting to be written at most; more are dropped and counted")
	dur(fs, &a.AuditRetention, "audit-retention", "CDNFLOW_AUDIT_RETENTION", "how long audit records are kept, in whole days (0: forever)")
}

func (a Auth) validate() error {
	if a.TokenCacheTTL < 0 || a.TokenCacheTTL > time.Minute {
		return fmt.Errorf("token-cache-ttl must be 0 to 1m")
	}
	if a.AuditQueue < 1 || a.AuditQueue > 1_000_000 {
		return fmt.Errorf("audit-queue must be 1 to 1000000")
	}
	if a.AuditRetention != 0 && a.AuditRetention < 24*time.Hour {
		return fmt.Errorf("audit-retention must be 0 (forever) or at least 24h")
	}
	return nil
}

// Jobs is the policy every accepted job gets: the defaults and limits the
// API applies to requests, and the worker to the runs of schedules it
// submits itself (dev, api, worker).
type Jobs struct {
	// MaxBacklog refuses new prewarm and purge jobs while more workflow
	// tasks than this wait in the task queue (0: never).
	MaxBacklog int
	// PrewarmDefaultTimeout is the deadline of a prewarm job that names
	// none.
	PrewarmDefaultTimeout time.Duration
	// Purge limits, as NHN's defaults: paths per purge request (seq) and the
	// per-appKey rate of purge requests.
	PurgeItemBatch     int
	PurgeWildcardBatch int
	PurgeItemInterval  time.Duration
	PurgeAllInterval   time.Duration
	// PurgeDeadline is how long an accepted purge retries an unreachable
	// edge.
	PurgeDeadline time.Duration
	// PurgeCatchUp is how long a purge keeps owing an edge that stayed
	// unreachable past PurgeDeadline a catch-up ban (its distribution's
	// domain and aliases), sent once the edge answers again; 0 disables.
	PurgeCatchUp time.Duration

	// Per-tenant limits (a tenant is an appKey, or for a prewarm of no
	// distribution the caller's key id); docs/prewarm.md "Limits".
	// TenantMaxRunning refuses a tenant's new jobs while it has this many
	// prewarm and purge workflows running (visibility, so across API
	// processes); 0: no limit.
	TenantMaxRunning int
	// TenantBehindRunning: while the workers are behind (MaxBacklog), a
	// tenant with at least this many running jobs is refused; tenants with
	// fewer are still admitted, so one tenant's flood refuses only itself.
	TenantBehindRunning int
}

// Worker holds the worker's tunables: how it talks to the edges and how
// much it does at once (dev, worker).
type Worker struct {
	// MetricsAddr serves the worker's /metrics on a port of its own
	// (worker pods have no API); empty: none (the API serves its own
	// /metrics on its listener).
	MetricsAddr     string
	PrewarmAttempts int
	// PrewarmAttemptTimeout bounds one prewarm GET through an edge (and,
	// pipelined, each answer after the previous one).
	PrewarmAttemptTimeout time.Duration
	// PrewarmConcurrency caps the connections one worker uses at once for
	// prewarm GETs to one edge, shared by its jobs; each carries up to
	// PrewarmPipeline GETs pipelined.
	PrewarmConcurrency int
	// PrewarmWorkerConcurrency caps those connections from one worker to
	// all edges together: past a few hundred, two cores only queue them,
	// and every one in use costs memory.
	PrewarmWorkerConcurrency int
	// PrewarmPipeline is how many prewarm GETs go pipelined on one
	// connection to an edge (RFC 9112 §9.3.2); 1 sends one at a time.
	PrewarmPipeline int
	// EdgePurgeTimeout bounds one PURGE (ITEM, TAG, verified) and, in a
	// pipelined batch of PURGEs, each answer after the previous one.
	EdgePurgeTimeout time.Duration
	// EdgeBanTimeout bounds one BAN (WILDCARD, ALL, catch-up bans).
	EdgeBanTimeout time.Duration
	// EdgeSiteTimeout bounds one call to an edge's site table (list, put,
	// delete of a distribution's site on the connector).
	EdgeSiteTimeout time.Duration
	// EdgeProbeTimeout bounds one cache-only probe of an object.
	EdgeProbeTimeout time.Duration
	// EdgePurgeConcurrency caps concurrent purge exchanges (connections)
	// with one edge from one worker: a BAN, or a pipelined batch of ITEM
	// PURGEs (activities.Purge.PerEdge).
	EdgePurgeConcurrency int
	// EdgeSiteConcurrency bounds the edges one worker's distribution
	// changes work on at once, all changes together (a site table put or
	// delete with its bans, a rollout gate's GET: each holds a
	// connection); 0: no bound (activities.Distribution.SiteConcurrency).
	EdgeSiteConcurrency int
	// PurgeACL lists the addresses (IPs, CIDRs) edges accept control
	// requests (PURGE, BAN, probe, site table) from: where the workers run,
	// nothing wider. Each request also carries the edge's control token
	// (edge/connector.ControlToken). Empty: loopback only.
	PurgeACL []string
	// AllowPrivateCallbacks lets distribution callbacks reach loopback and
	// private addresses (tests and dev only).
	AllowPrivateCallbacks bool
	// HeartbeatTimeout is how soon the work of a lost worker (crash, kill
	// -9, network cut) is retried by another one: long activities heartbeat
	// within it.
	HeartbeatTimeout time.Duration
	// EdgeSyncEvery is the time between two rounds of the edge sync loop
	// (drift check and heal of every edge).
	EdgeSyncEvery time.Duration
	// EdgeSyncMaxDeleteShare bounds the deletions of one sync round on one
	// edge to this share (0 to 1] of the edge's entries of this control
	// plane, at least one (activities.EdgeSync.MaxDeleteShare).
	EdgeSyncMaxDeleteShare float64
	// EdgeSyncAllowMassDelete lifts the sync's deletion valves: the share
	// cap, and keeping every entry while the desired state is empty.
	EdgeSyncAllowMassDelete bool
	// EdgeApplyAttempts bounds the tries of one distribution change on the
	// edges while cdnflow runs, before the change ends in ERROR.
	EdgeApplyAttempts int
	// EdgeErrorRetry is the first wait before a distribution change in
	// ERROR is tried again (doubling up to 10 min).
	EdgeErrorRetry time.Duration
	// RolloutWaves are the cumulative shares (0, 1], increasing, the last
	// 1, of the serving edges a distribution change reaches wave after
	// wave, after a one-edge canary (activities.RolloutFleet).
	RolloutWaves []float64
	// RolloutBake is the wait after each wave but the last before its
	// health gate.
	RolloutBake time.Duration
	// RolloutHealthPath is the path (with its query, if any) the health
	// gate requests through each touched edge for a distribution's hosts.
	RolloutHealthPath string
	// ControlPlaneID names this cdnflow on the edges: the owner of every
	// site table entry its workers put (ControlPlane: empty means the
	// Temporal namespace). 1-64 of [A-Za-z0-9._-].
	ControlPlaneID string
	// FleetSettingsReplace makes this worker's fleet-wide edge settings
	// (purge ACL, default origin, control plane id) the cluster's record
	// instead of refusing to start when they differ from it.
	FleetSettingsReplace bool
}

// Dev is what only `cdnflow dev` runs: the embedded Temporal server and
// its Web UI.
type Dev struct {
	TemporalUIPort     int
	TemporalPort       int
	TemporalFrontendIP string
}

// Connector is `cdnflow connector`.
type Connector struct {
	// ConnectorListen is where `cdnflow connector` listens (--listen).
	ConnectorListen string
	// ConnectorStateFile keeps the connector's site table across restarts
	// (--state-file); "" keeps it in memory: a restarted connector then
	// starts empty and the control plane must put every site back.
	ConnectorStateFile string
	// ConnectorClosedRetention is how long a deleted site's hosts keep
	// answering 404 (--closed-retention; 0: 7 days).
	ConnectorClosedRetention time.Duration
	// ControlSecretFile is the edge's Varnish CLI secret, the file
	// varnishd -S reads (--control-secret-file): the connector then
	// refuses site table requests without the edge's control token
	// (connector.Options.ControlSecretFile). Empty: the edge's VCL is
	// the only check.
	ControlSecretFile string
}

// Secrets is the payload key that encrypts what cdnflow stores in Temporal
// and in the payload store (internal/codec; dev, worker, api,
// codec-server). Every API and worker process of a deployment loads the
// same key ring.
type Secrets struct {
	// PayloadKeyFile is a key ring file (internal/codec.ParseRing: lines
	// "ID:BASE64" of 32-byte AES-256 keys, the first one encrypts, all
	// decrypt), mode 0600. Empty: the ring is read from $CDNFLOW_PAYLOAD_KEY
	// (same text) if set; `cdnflow dev` creates <data-dir>/payload.key on
	// its first start; else payloads are stored in plain text (a warning
	// at start).
	PayloadKeyFile string
}

// Codec is the endpoint that shows sealed payloads in the Temporal Web UI:
// `cdnflow codec-server` (CodecListen, CodecUIOrigins) and the embedded
// UI's data encoder in dev (UICodecEndpoint, UIWriteActions).
type Codec struct {
	// CodecListen is where `cdnflow codec-server` listens: a loopback
	// IP:port.
	CodecListen string
	// CodecUIOrigins are the Web UI origins browsers may call the codec
	// endpoint from.
	CodecUIOrigins []string
	// UICodecEndpoint is the codec endpoint dev's embedded Web UI decodes
	// payloads through (its data encoder); empty: none.
	UICodecEndpoint string
	// UIWriteActions lets dev's Web UI start, signal, update, reset,
	// cancel and terminate workflows; off by default, as jobs are started
	// through cdnflow's API, which checks them.
	UIWriteActions bool
}

// RegisterUI binds dev's Web UI settings.
func (c *Codec) RegisterUI(fs *flag.FlagSet) {
	str(fs, &c.UICodecEndpoint, "ui-codec-endpoint", "CDNFLOW_UI_CODEC_ENDPOINT", "codec endpoint the embedded Web UI decodes payloads through (`cdnflow codec-server`; empty: none, payloads show sealed)")
	boolean(fs, &c.UIWriteActions, "ui-write-actions", "CDNFLOW_UI_WRITE_ACTIONS", "let the embedded Web UI start, signal, cancel, reset and terminate workflows")
}

// RegisterCodecServer binds the settings of `cdnflow codec-server`: its
// listen address and UI origins, the payload key and logging.
func (c *Config) RegisterCodecServer(fs *flag.FlagSet) {
	str(fs, &c.CodecListen, "listen", "CDNFLOW_CODEC_LISTEN", "loopback IP:port of the codec endpoint")
	list(fs, &c.CodecUIOrigins, "ui-origin", "CDNFLOW_CODEC_UI_ORIGINS", "comma-separated Web UI origins browsers may call the codec endpoint from")
	c.Secrets.Register(fs)
	c.Log.Register(fs)
}

// PayloadKeyEnv holds a key ring's text when no key file is named (a
// Kubernetes Secret as an environment variable).
const PayloadKeyEnv = "CDNFLOW_PAYLOAD_KEY"

// Register binds the payload key file.
func (s *Secrets) Register(fs *flag.FlagSet) {
	str(fs, &s.PayloadKeyFile, "payload-key-file", "CDNFLOW_PAYLOAD_KEY_FILE", "key ring file that encrypts Temporal payloads and the payload store (lines ID:BASE64 of 32-byte keys, the first encrypts, all decrypt; mode 0600; or the ring's text in $"+PayloadKeyEnv+")")
}

// PayloadRing loads the key ring: PayloadKeyFile, else $CDNFLOW_PAYLOAD_KEY;
// nil without an error when neither is set.
func (s Secrets) PayloadRing() (*codec.Ring, error) {
	if s.PayloadKeyFile != "" {
		return codec.LoadRing(s.PayloadKeyFile)
	}
	if text, ok := os.LookupEnv(PayloadKeyEnv); ok && strings.TrimSpace(text) != "" {
		r, err := codec.ParseRing([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", PayloadKeyEnv, err)
		}
		return r, nil
	}
	return nil, nil
}

// Default returns the settings used when nothing is given.
func Default() Config {
	return Config{
		Temporal: Temporal{temporalclient.Settings{Namespace: "default", TaskQueue: "cdnflow"}},
		Log:      Log{LogLevel: "info", LogFormat: "console"},
		Process:  Process{DataDir: ".cdnflow", DefaultOrigin: "127.0.0.1:8090"},
		API:      API{APIAddr: ":8080", CDNBaseDomain: "cdn.cdnflow.test"},
		Origins:  Origins{OriginDNSServeStale: connector.DefaultServeStale},
		Auth:     Auth{TokenCacheTTL: 3 * time.Second, AuditQueue: 10000, AuditRetention: 90 * 24 * time.Hour},
		Jobs: Jobs{
			MaxBacklog:            50,
			PrewarmDefaultTimeout: 30 * time.Minute,
			PurgeItemBatch:        200,
			PurgeWildcardBatch:    10,
			PurgeItemInterval:     time.Second,
			PurgeAllInterval:      5 * time.Minute,
			PurgeDeadline:         30 * time.Minute,
			PurgeCatchUp:          7 * 24 * time.Hour,
			TenantMaxRunning:      500,
			TenantBehindRunning:   20,
		},
		Worker: Worker{
			PrewarmAttempts:          3,
			PrewarmAttemptTimeout:    10 * time.Second,
			PrewarmConcurrency:       64,
			PrewarmWorkerConcurrency: 256,
			PrewarmPipeline:          8,
			EdgePurgeTimeout:         10 * time.Second,
			EdgeBanTimeout:           10 * time.Second,
			EdgeSiteTimeout:          30 * time.Second,
			EdgeProbeTimeout:         5 * time.Second,
			EdgePurgeConcurrency:     16,
			EdgeSiteConcurrency:      256,
			HeartbeatTimeout:         30 * time.Second,
			EdgeSyncEvery:            15 * time.Second,
			EdgeSyncMaxDeleteShare:   0.1,
			EdgeApplyAttempts:        10,
			EdgeErrorRetry:           time.Minute,
			RolloutWaves:             []float64{0.1, 0.5, 1},
			RolloutBake:              time.Second,
			RolloutHealthPath:        "/",
		},
		Dev:       Dev{TemporalUIPort: 8233, TemporalPort: 7233, TemporalFrontendIP: "127.0.0.1"},
		Connector: Connector{ConnectorListen: "127.0.0.1:6090"},
		Codec: Codec{
			CodecListen:     "127.0.0.1:8234",
			CodecUIOrigins:  []string{"http://127.0.0.1:8233", "http://localhost:8233"},
			UICodecEndpoint: "http://127.0.0.1:8234",
		},
		// Tiers: a child falls back to the origin while its shield is down.
		Tiers:    Tiers{ParentFallback: true},
		Webhooks: defaultWebhooks(),
		// The API's bound on heavy work (config/shedding.go).
		Shedding: defaultShedding(),
	}
}

// RegisterDev binds the settings of `cdnflow dev`, which runs everything
// in one process: every group but the connector's.
func (c *Config) RegisterDev(fs *flag.FlagSet) {
	c.Temporal.Register(fs)
	c.Log.Register(fs)
	c.Process.Register(fs)
	c.Origins.Register(fs)
	if c.APIAddr == ":8080" {
		c.APIAddr = "127.0.0.1:8080" // dev serves the API on loopback unless --api-addr says otherwise
	}
	c.API.Register(fs)
	c.Auth.Register(fs)
	c.Jobs.Register(fs)
	c.Worker.Register(fs)
	c.Dev.Register(fs)
	c.Secrets.Register(fs)
	c.Codec.RegisterUI(fs)
	// Tiers: managed edges' fallback (their parents are the inventory's).
	c.Tiers.RegisterFallback(fs)
	c.Webhooks.Register(fs)
	c.Console.Register(fs)
	// The API's bound on heavy work (config/shedding.go).
	c.Shedding.Register(fs)
}

// RegisterWorker binds the settings of `cdnflow worker`: the Temporal
// client, the process's shared settings, the origin policy, the job policy
// (for the schedule runs the worker submits) and the worker's tunables.
func (c *Config) RegisterWorker(fs *flag.FlagSet) {
	c.Temporal.Register(fs)
	c.Log.Register(fs)
	c.Process.Register(fs)
	c.Origins.Register(fs)
	c.Jobs.Register(fs)
	c.Worker.Register(fs)
	c.Secrets.Register(fs)
	c.Webhooks.Register(fs)
}

// RegisterAPI binds the settings of `cdnflow api`: the Temporal client,
// the process's shared settings, the origin policy and the API's own. No
// worker tunable: workflow inputs carry only what a request asked for, and
// the workers decide how it is done.
func (c *Config) RegisterAPI(fs *flag.FlagSet) {
	c.Temporal.Register(fs)
	c.Log.Register(fs)
	c.Process.Register(fs)
	c.Origins.Register(fs)
	c.API.Register(fs)
	c.Auth.Register(fs)
	c.Jobs.Register(fs)
	c.Secrets.Register(fs)
	c.Console.Register(fs)
	// The API's bound on heavy work (config/shedding.go).
	c.Shedding.Register(fs)
}

// RegisterConnector binds the settings of `cdnflow connector`: --listen
// (ConnectorListen, default the inventory's default connectorAddress
// 127.0.0.1:6090), --control-secret-file (ControlSecretFile), logging and
// the origin settings.
func (c *Config) RegisterConnector(fs *flag.FlagSet) {
	c.Connector.Register(fs)
	c.Log.Register(fs)
	c.Origins.Register(fs)
	// Tiers: --parent-edge, --parent-fallback.
	c.Tiers.RegisterConnectorTiers(fs)
	c.Traffic.Register(fs)
}

// Register binds the Temporal client settings.
func (t *Temporal) Register(fs *flag.FlagSet) {
	str(fs, &t.TemporalAddress, "temporal-address", "TEMPORAL_ADDRESS", "host:port of an external Temporal frontend (empty in dev: embed one)")
	str(fs, &t.Namespace, "namespace", "TEMPORAL_NAMESPACE", "Temporal namespace")
	str(fs, &t.TaskQueue, "task-queue", "CDNFLOW_TASK_QUEUE", "Temporal task queue of cdnflow's workers")
	str(fs, &t.TLSCertFile, "tls-cert", "TEMPORAL_TLS_CERT", "client certificate for mTLS to Temporal")
	str(fs, &t.TLSKeyFile, "tls-key", "TEMPORAL_TLS_KEY", "client key for mTLS to Temporal")
	str(fs, &t.TLSCAFile, "tls-ca", "TEMPORAL_TLS_CA", "CA bundle that signs the Temporal server certificate")
	str(fs, &t.TLSServerName, "tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "server name to verify on the Temporal certificate")
	str(fs, &t.TemporalAPIKey, "temporal-api-key", "TEMPORAL_API_KEY", "API key for Temporal Cloud (implies TLS)")
}

// Register binds the logging settings.
func (l *Log) Register(fs *flag.FlagSet) {
	str(fs, &l.LogLevel, "log-level", "CDNFLOW_LOG_LEVEL", "debug, info, warn or error")
	str(fs, &l.LogFormat, "log-format", "CDNFLOW_LOG_FORMAT", "console or json")
}

// Register binds the settings every API and worker process shares.
func (p *Process) Register(fs *flag.FlagSet) {
	str(fs, &p.DataDir, "data-dir", "CDNFLOW_DATA_DIR", "directory of the default payload store (<data-dir>/payloads), the built-in inventory's edge secrets and, in dev, the SQLite store and edge workdirs")
	str(fs, &p.InventoryFile, "edges", "CDNFLOW_EDGES", "edge inventory file (YAML or JSON); empty: the dev inventory built into the binary, secrets under --data-dir")
	str(fs, &p.PayloadURL, "payload-url", "CDNFLOW_PAYLOAD_URL", "bucket URL of the payload store (URL lists, per-pair outcomes), shared by every API and worker: file:///DIR, s3://BUCKET?region=R[&endpoint=http://HOST:PORT&use_path_style=true] or gs://BUCKET (default file://<data-dir>/payloads)")
	str(fs, &p.DefaultOrigin, "default-origin", "CDNFLOW_DEFAULT_ORIGIN", "host:port edges fetch from for hosts that match no distribution (dev starts a demo origin there; empty: such hosts get 404)")
}

// Register binds the origin settings shared by the API, the worker and
// `cdnflow connector`: the address policy, the CA bundle and DNS.
func (o *Origins) Register(fs *flag.FlagSet) {
	boolean(fs, &o.AllowPrivateOrigins, "allow-private-origins", "CDNFLOW_ALLOW_PRIVATE_ORIGINS", "let origins be on private addresses (RFC 1918, fc00::/7, 100.64.0.0/10); loopback, link-local and metadata stay refused")
	list(fs, &o.OriginAllowLoopback, "origin-allow-loopback", "CDNFLOW_ORIGIN_ALLOW_LOOPBACK", "comma-separated loopback origins admitted: PORT or 127.0.0.1:PORT (dev: the demo origin)")
	str(fs, &o.OriginCAFile, "origin-ca-file", "CDNFLOW_ORIGIN_CA_FILE", "PEM bundle trusted for https origins besides the system CAs")
	str(fs, &o.OriginDNSServer, "origin-dns-server", "CDNFLOW_ORIGIN_DNS_SERVER", "host:port of the DNS server origin names are resolved with (empty: /etc/resolv.conf)")

	// Serve-stale (docs/operations.md, "Origin DNS serve-stale").
	dur(fs, &o.OriginDNSServeStale, "origin-dns-serve-stale", "CDNFLOW_ORIGIN_DNS_SERVE_STALE", "how long past its TTL an origin name's last good addresses are used while the DNS resolver fails (timeout, SERVFAIL, REFUSED; never after NXDOMAIN); negative: never")
}

// Register binds the HTTP API's settings.
func (a *API) Register(fs *flag.FlagSet) {
	str(fs, &a.APIAddr, "api-addr", "CDNFLOW_API_ADDR", "listen address of the HTTP API")
	list(fs, &a.APIKeys, "api-keys", "CDNFLOW_API_KEYS", "comma-separated keys accepted in x-api-key")
	pairs(fs, &a.AppKeys, "app-keys", "CDNFLOW_APP_KEYS", "comma-separated appKey:secretKey pairs for the /v1.5 API")
	boolean(fs, &a.ShowSuccessURLs, "show-success-urls", "CDNFLOW_SHOW_SUCCESS_URLS", "include successUrl in prewarm status")
	str(fs, &a.CDNBaseDomain, "cdn-domain", "CDNFLOW_CDN_DOMAIN", "base domain of generated distribution domains")
}

// Register binds the job policy.
func (j *Jobs) Register(fs *flag.FlagSet) {
	num(fs, &j.MaxBacklog, "max-backlog", "CDNFLOW_MAX_BACKLOG", "refuse new prewarm/purge jobs (429, 30001) while more workflow tasks than this are queued; 0 disables")
	dur(fs, &j.PrewarmDefaultTimeout, "prewarm-timeout", "CDNFLOW_PREWARM_TIMEOUT", "deadline of a prewarm job that names none (a Go duration: 30m, 1h)")
	num(fs, &j.PurgeItemBatch, "purge-item-batch", "CDNFLOW_PURGE_ITEM_BATCH", "ITEM paths per purge seq (NHN: 200)")
	num(fs, &j.PurgeWildcardBatch, "purge-wildcard-batch", "CDNFLOW_PURGE_WILDCARD_BATCH", "WILDCARD paths per purge seq (NHN: 10)")
	dur(fs, &j.PurgeItemInterval, "purge-item-interval", "CDNFLOW_PURGE_ITEM_INTERVAL", "minimum time between ITEM/WILDCARD/TAG purge requests of one appKey (NHN: 1s)")
	dur(fs, &j.PurgeAllInterval, "purge-all-interval", "CDNFLOW_PURGE_ALL_INTERVAL", "minimum time between ALL purges of one domain (NHN: 5m)")
	dur(fs, &j.PurgeDeadline, "purge-deadline", "CDNFLOW_PURGE_DEADLINE", "how long a purge retries an unreachable edge")
	dur(fs, &j.PurgeCatchUp, "purge-catch-up", "CDNFLOW_PURGE_CATCH_UP", "how long an edge that missed a purge's deadline is owed a catch-up ban of the domain and aliases (0: never)")
	num(fs, &j.TenantMaxRunning, "tenant-max-running", "CDNFLOW_TENANT_MAX_RUNNING", "refuse a tenant's (appKey's) new jobs (429, 30001) while it has this many prewarm/purge workflows running; 0 disables")
	num(fs, &j.TenantBehindRunning, "tenant-behind-running", "CDNFLOW_TENANT_BEHIND_RUNNING", "while the workers are behind (--max-backlog), refuse only tenants with at least this many running jobs")
}

// Register binds the worker's tunables. Durations are Go durations
// (500ms, 10s, 2m).
func (w *Worker) Register(fs *flag.FlagSet) {
	str(fs, &w.MetricsAddr, "metrics-addr", "CDNFLOW_METRICS_ADDR", "listen address of the worker's /metrics (e.g. :9090)")
	num(fs, &w.PrewarmAttempts, "prewarm-attempts", "CDNFLOW_PREWARM_ATTEMPTS", "attempts per URL and edge")
	dur(fs, &w.PrewarmAttemptTimeout, "prewarm-attempt-timeout", "CDNFLOW_PREWARM_ATTEMPT_TIMEOUT", "timeout of one prewarm GET through an edge (pipelined: of each answer after the previous one)")
	num(fs, &w.PrewarmConcurrency, "prewarm-concurrency", "CDNFLOW_PREWARM_CONCURRENCY", "connections for prewarm GETs to one edge from one worker, shared by its jobs")
	num(fs, &w.PrewarmWorkerConcurrency, "prewarm-worker-concurrency", "CDNFLOW_PREWARM_WORKER_CONCURRENCY", "connections for prewarm GETs from one worker to all edges together")
	num(fs, &w.PrewarmPipeline, "prewarm-pipeline", "CDNFLOW_PREWARM_PIPELINE", "prewarm GETs pipelined on one connection to an edge (1: none)")
	dur(fs, &w.EdgePurgeTimeout, "edge-purge-timeout", "CDNFLOW_EDGE_PURGE_TIMEOUT", "timeout of one PURGE on an edge (pipelined: of each answer after the previous one)")
	dur(fs, &w.EdgeBanTimeout, "edge-ban-timeout", "CDNFLOW_EDGE_BAN_TIMEOUT", "timeout of one BAN on an edge (WILDCARD, ALL and catch-up purges)")
	dur(fs, &w.EdgeSiteTimeout, "edge-site-timeout", "CDNFLOW_EDGE_SITE_TIMEOUT", "timeout of one call to an edge's site table (list, put or delete a distribution's site)")
	dur(fs, &w.EdgeProbeTimeout, "edge-probe-timeout", "CDNFLOW_EDGE_PROBE_TIMEOUT", "timeout of one cache-only probe of an object on an edge")
	num(fs, &w.EdgePurgeConcurrency, "edge-purge-concurrency", "CDNFLOW_EDGE_PURGE_CONCURRENCY", "concurrent purge connections per edge from one worker (ITEM PURGEs are pipelined, up to 32 in flight on each; BANs one at a time)")
	num(fs, &w.EdgeSiteConcurrency, "edge-site-concurrency", "CDNFLOW_EDGE_SITE_CONCURRENCY", "edges one worker's distribution changes work on at once, all changes together (site table puts and deletes with their bans, rollout gate GETs; each holds a connection); 0: no bound")
	list(fs, &w.PurgeACL, "purge-acl", "CDNFLOW_PURGE_ACL", "comma-separated IPs/CIDRs edges accept PURGE/BAN and site table requests from, with the edge's control token (the workers' addresses only; default loopback)")
	boolean(fs, &w.AllowPrivateCallbacks, "allow-private-callbacks", "CDNFLOW_ALLOW_PRIVATE_CALLBACKS", "let callbacks reach loopback/private addresses")
	dur(fs, &w.HeartbeatTimeout, "heartbeat-timeout", "CDNFLOW_HEARTBEAT_TIMEOUT", "how soon work of a lost worker is retried elsewhere")
	dur(fs, &w.EdgeSyncEvery, "edge-sync-every", "CDNFLOW_EDGE_SYNC_EVERY", "time between two drift checks of every edge (active VCL and site table)")
	float(fs, &w.EdgeSyncMaxDeleteShare, "edge-sync-max-delete-share", "CDNFLOW_EDGE_SYNC_MAX_DELETE_SHARE", "largest share (0-1] of an edge's entries of this control plane one sync round deletes (at least 1); the rest follow in the next rounds")
	boolean(fs, &w.EdgeSyncAllowMassDelete, "edge-sync-allow-mass-delete", "CDNFLOW_EDGE_SYNC_ALLOW_MASS_DELETE", "let the edge sync delete without its share cap, and delete every entry when no distribution runs")
	dur(fs, &w.EdgeErrorRetry, "edge-error-retry", "CDNFLOW_EDGE_ERROR_RETRY", "first wait before a distribution change in ERROR is tried again (doubling up to 10m)")
	num(fs, &w.EdgeApplyAttempts, "edge-apply-attempts", "CDNFLOW_EDGE_APPLY_ATTEMPTS", "tries of one distribution change on the edges while cdnflow runs, before ERROR")
	floats(fs, &w.RolloutWaves, "rollout-waves", "CDNFLOW_ROLLOUT_WAVES", "cumulative shares of the serving edges a distribution change reaches wave after wave, after a one-edge canary (comma-separated, increasing, the last 1)")
	dur(fs, &w.RolloutBake, "rollout-bake", "CDNFLOW_ROLLOUT_BAKE", "wait after each rollout wave but the last before its health gate")
	str(fs, &w.RolloutHealthPath, "rollout-health-path", "CDNFLOW_ROLLOUT_HEALTH_PATH", "path the rollout health gate requests through each touched edge for a distribution's hosts (a unique cdnflow-gate query is added)")
	str(fs, &w.ControlPlaneID, "control-plane-id", "CDNFLOW_CONTROL_PLANE_ID", "id of this cdnflow on the edges: the owner of the site table entries it writes (1-64 of A-Z a-z 0-9 . _ -; default: the Temporal namespace)")
	boolean(fs, &w.FleetSettingsReplace, "fleet-settings-replace", "CDNFLOW_FLEET_SETTINGS_REPLACE", "make this worker's purge-acl, default-origin and control-plane-id the fleet's record (workers with other values then refuse to start)")
}

// Register binds the settings of dev's embedded Temporal server and UI.
func (d *Dev) Register(fs *flag.FlagSet) {
	num(fs, &d.TemporalPort, "temporal-port", "CDNFLOW_TEMPORAL_PORT", "gRPC port of the embedded Temporal server; its HTTP, history, matching and worker services take the next four ports")
	num(fs, &d.TemporalUIPort, "ui-port", "CDNFLOW_UI_PORT", "port of the embedded Temporal Web UI (-1 disables)")
}

// Register binds the connector's listen address and control secret.
func (c *Connector) Register(fs *flag.FlagSet) {
	if c.ConnectorListen == "" {
		c.ConnectorListen = "127.0.0.1:6090"
	}
	str(fs, &c.ConnectorListen, "listen", "CDNFLOW_CONNECTOR_LISTEN", "loopback IP:port the edge's VCL names as its backend (the inventory's connectorAddress)")
	str(fs, &c.ConnectorStateFile, "state-file", "CDNFLOW_CONNECTOR_STATE_FILE", "file keeping the edge's site table across connector restarts (empty: in memory only)")
	dur(fs, &c.ConnectorClosedRetention, "closed-retention", "CDNFLOW_CONNECTOR_CLOSED_RETENTION", "how long a deleted distribution's hosts keep answering 404 (0: 7 days)")
	str(fs, &c.ControlSecretFile, "control-secret-file", "CDNFLOW_CONTROL_SECRET_FILE", "the edge's Varnish CLI secret (varnishd -S): site table requests must carry the control token derived from it")
}

// EdgeOptions are the edge client options of the worker's tunables: one
// timeout per kind of call.
func (w Worker) EdgeOptions() edge.Options {
	return edge.Options{
		Timeout: w.PrewarmAttemptTimeout, PurgeTimeout: w.EdgePurgeTimeout, BanTimeout: w.EdgeBanTimeout,
		SiteTimeout: w.EdgeSiteTimeout, ProbeTimeout: w.EdgeProbeTimeout,
	}
}

// ConnectorOptions are the origin connector options of these settings
// (edge/connector): the same for each edge's connector (listen given) and
// for the API's and worker's checks and probes (listen empty).
func (c Config) ConnectorOptions(listen string, logger *zap.Logger) connector.Options {
	return connector.Options{
		Listen: listen, AllowPrivate: c.AllowPrivateOrigins, AllowLoopback: c.OriginAllowLoopback,
		CAFile: c.OriginCAFile, DNSServer: c.OriginDNSServer, ControlSecretFile: c.ControlSecretFile, Logger: logger,
		DNSServeStale: c.OriginDNSServeStale,
	}
}

// ControlPlane is the id this cdnflow writes as the owner of its site
// table entries: ControlPlaneID, else the Temporal namespace.
func (c Config) ControlPlane() string {
	if c.ControlPlaneID != "" {
		return c.ControlPlaneID
	}
	return c.Namespace
}

var controlPlanePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// PayloadStoreURL is the payload store's bucket URL: PayloadURL, else the
// file:// URL of <DataDir>/payloads, made absolute.
func (c Config) PayloadStoreURL() string {
	if c.PayloadURL != "" {
		return c.PayloadURL
	}
	return payload.FileURL(filepath.Join(c.DataDir, "payloads"))
}

func (c Config) inventoryName() string {
	if c.InventoryFile == "" {
		return "(built-in dev inventory)"
	}
	return c.InventoryFile
}

// LogFields lists the settings for the start-up log line, secrets masked.
func (c Config) LogFields() []zap.Field {
	keys := make([]string, 0, len(c.AppKeys))
	for k := range c.AppKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return []zap.Field{
		zap.String("temporalAddress", c.TemporalAddress),
		zap.String("namespace", c.Namespace),
		zap.String("taskQueue", c.TaskQueue),
		zap.Bool("tls", c.TLSCertFile != "" || c.TLSCAFile != "" || c.TemporalAPIKey != ""),
		zap.Bool("temporalAPIKey", c.TemporalAPIKey != ""),
		zap.String("dataDir", c.DataDir),
		zap.String("payloadUrl", payload.Redact(c.PayloadStoreURL())),
		zap.String("edges", c.inventoryName()),
		zap.String("apiAddr", c.APIAddr),
		zap.Int("apiKeys", len(c.APIKeys)),
		zap.Strings("appKeys", keys),
		zap.Bool("showSuccessUrls", c.ShowSuccessURLs),
		zap.String("cdnDomain", c.CDNBaseDomain),
		zap.Duration("prewarmTimeout", c.PrewarmDefaultTimeout),
		zap.Int("prewarmAttempts", c.PrewarmAttempts),
	}
}

func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

func str(fs *flag.FlagSet, p *string, name, env, usage string) {
	fs.StringVar(p, name, envOr(env, *p), usage+" ($"+env+")")
}

func num(fs *flag.FlagSet, p *int, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		_ = intSetter(p)(v) // a bad env value keeps the default; Validate reports ranges
	}
	fs.Func(name, usage+" ($"+env+")", intSetter(p))
	fs.Lookup(name).DefValue = strconv.Itoa(*p) // -h shows it
}

func intSetter(p *int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not a whole number: %q", s)
		}
		*p = n
		return nil
	}
}

func boolean(fs *flag.FlagSet, p *bool, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			*p = b
		}
	}
	fs.BoolVar(p, name, *p, usage+" ($"+env+")")
}

func float(fs *flag.FlagSet, p *float64, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			*p = f
		}
	}
	fs.Float64Var(p, name, *p, usage+" ($"+env+")")
}

func floats(fs *flag.FlagSet, p *[]float64, name, env, usage string) {
	set := func(s string) error {
		var out []float64
		for _, part := range strings.Split(s, ",") {
			f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil {
				return fmt.Errorf("not a number: %q", part)
			}
			out = append(out, f)
		}
		*p = out
		return nil
	}
	if v, ok := os.LookupEnv(env); ok {
		_ = set(v) // a bad env value keeps the default; Validate reports ranges
	}
	fs.Func(name, usage+" ($"+env+")", set)
	def := make([]string, len(*p))
	for i, f := range *p {
		def[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	fs.Lookup(name).DefValue = strings.Join(def, ",")
}

func dur(fs *flag.FlagSet, p *time.Duration, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(v); err == nil {
			*p = d
		}
	}
	fs.DurationVar(p, name, *p, usage+" ($"+env+")")
}

func list(fs *flag.FlagSet, p *[]string, name, env, usage string) {
	set := func(s string) error {
		*p = nil
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*p = append(*p, part)
			}
		}
		return nil
	}
	if v, ok := os.LookupEnv(env); ok {
		_ = set(v)
	}
	fs.Func(name, usage+" ($"+env+")", set)
}

func pairs(fs *flag.FlagSet, p *map[string]string, name, env, usage string) {
	set := func(s string) error {
		m := map[string]string{}
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, v, ok := strings.Cut(part, ":")
			if !ok || k == "" || v == "" {
				return fmt.Errorf("want appKey:secretKey, got %q", part)
			}
			m[k] = v
		}
		*p = m
		return nil
	}
	if v, ok := os.LookupEnv(env); ok {
		_ = set(v)
	}
	fs.Func(name, usage+" ($"+env+")", set)
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if c.Namespace == "" {
		return fmt.Errorf("namespace must not be empty")
	}
	if c.TaskQueue == "" {
		return fmt.Errorf("task queue must not be empty")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("tls-cert and tls-key go together")
	}
	if c.PrewarmAttempts < 1 {
		return fmt.Errorf("prewarm-attempts must be at least 1")
	}
	if c.PurgeItemBatch < 1 || c.PurgeWildcardBatch < 1 || c.EdgePurgeConcurrency < 1 {
		return fmt.Errorf("purge batch sizes and edge purge concurrency must be at least 1")
	}
	if c.EdgeSiteConcurrency < 0 || c.EdgeSiteConcurrency > 100_000 {
		return fmt.Errorf("edge-site-concurrency must be 0 to 100000, got %d", c.EdgeSiteConcurrency)
	}
	if c.PrewarmConcurrency < 1 || c.PrewarmWorkerConcurrency < 1 {
		return fmt.Errorf("prewarm-concurrency and prewarm-worker-concurrency must be at least 1")
	}
	if c.PrewarmPipeline < 1 || c.PrewarmPipeline > edge.MaxPipelined {
		return fmt.Errorf("prewarm-pipeline must be 1 to %d", edge.MaxPipelined)
	}
	if c.EdgeSyncEvery < time.Second {
		return fmt.Errorf("edge-sync-every must be at least 1s")
	}
	if !(c.EdgeSyncMaxDeleteShare > 0 && c.EdgeSyncMaxDeleteShare <= 1) {
		return fmt.Errorf("edge-sync-max-delete-share must be above 0 and at most 1")
	}
	if c.EdgeErrorRetry < time.Second {
		return fmt.Errorf("edge-error-retry must be at least 1s")
	}
	if c.EdgeApplyAttempts < 1 {
		return fmt.Errorf("edge-apply-attempts must be at least 1")
	}
	if err := validWaves(c.RolloutWaves); err != nil {
		return err
	}
	if c.RolloutBake < 0 || c.RolloutBake > 10*time.Minute {
		return fmt.Errorf("rollout-bake must be 0 to 10m")
	}
	if !strings.HasPrefix(c.RolloutHealthPath, "/") {
		return fmt.Errorf("rollout-health-path must start with /")
	}
	if c.PrewarmAttemptTimeout <= 0 || c.EdgePurgeTimeout <= 0 || c.EdgeBanTimeout <= 0 || c.EdgeSiteTimeout <= 0 || c.EdgeProbeTimeout <= 0 {
		return fmt.Errorf("prewarm-attempt-timeout and the edge-*-timeout settings must be above 0")
	}
	if err := c.Tiers.Validate(); err != nil {
		return err
	}
	if c.HeartbeatTimeout < time.Second {
		return fmt.Errorf("heartbeat-timeout must be at least 1s")
	}
	if id := c.ControlPlane(); !controlPlanePattern.MatchString(id) {
		what := "control-plane-id"
		if c.ControlPlaneID == "" {
			what = "control-plane-id (default: the namespace)"
		}
		return fmt.Errorf("%s %q must be 1-64 of A-Z a-z 0-9 . _ -", what, id)
	}
	if _, err := payload.ParseURL(c.PayloadStoreURL()); err != nil {
		return err
	}
	if err := c.Webhooks.validate(); err != nil {
		return err
	}
	// The API's bound on heavy work (config/shedding.go).
	if err := c.Shedding.validate(); err != nil {
		return err
	}
	return nil
}

// validWaves checks rollout shares: 1 to 10 of them, each above the one
// before, in (0, 1], the last 1.
func validWaves(w []float64) error {
	if len(w) == 0 || len(w) > 10 || w[len(w)-1] != 1 {
		return fmt.Errorf("rollout-waves must be 1 to 10 shares ending with 1, got %v", w)
	}
	for i, f := range w {
		if !(f > 0 && f <= 1) || (i > 0 && f <= w[i-1]) {
			return fmt.Errorf("rollout-waves must increase within (0, 1], got %v", w)
		}
	}
	return nil
}

// Webhooks is how the worker delivers signed job events to webhook
// subscriptions (dev, worker; docs/webhooks.md). Deliveries follow the
// callbacks' address policy (AllowPrivateCallbacks).
type Webhooks struct {
	// WebhookRetryInitial is the wait before a delivery's second attempt;
	// each next wait doubles, up to WebhookRetryMax.
	WebhookRetryInitial time.Duration
	WebhookRetryMax     time.Duration
	// WebhookRetryWindow is how long after an event a delivery is
	// retried: at least 24 h in production (issue 34); tests shorten it.
	WebhookRetryWindow time.Duration
	// WebhookConcurrency is how many events of one subscription are in
	// flight at once.
	WebhookConcurrency int
}

func defaultWebhooks() Webhooks {
	return Webhooks{WebhookRetryInitial: 5 * time.Second, WebhookRetryMax: time.Hour, WebhookRetryWindow: 25 * time.Hour, WebhookConcurrency: 8}
}

// Register binds the webhook delivery settings.
func (w *Webhooks) Register(fs *flag.FlagSet) {
	dur(fs, &w.WebhookRetryInitial, "webhook-retry-initial", "CDNFLOW_WEBHOOK_RETRY_INITIAL", "wait before a webhook delivery's second attempt (doubling after each failure)")
	dur(fs, &w.WebhookRetryMax, "webhook-retry-max", "CDNFLOW_WEBHOOK_RETRY_MAX", "longest wait between two attempts of a webhook delivery")
	dur(fs, &w.WebhookRetryWindow, "webhook-retry-window", "CDNFLOW_WEBHOOK_RETRY_WINDOW", "how long after an event its webhook delivery is retried (at least 24h in production)")
	num(fs, &w.WebhookConcurrency, "webhook-concurrency", "CDNFLOW_WEBHOOK_CONCURRENCY", "events of one webhook subscription in flight at once")
}

func (w Webhooks) validate() error {
	if w.WebhookRetryInitial <= 0 || w.WebhookRetryMax < w.WebhookRetryInitial || w.WebhookRetryWindow <= 0 || w.WebhookConcurrency < 1 {
		return fmt.Errorf("webhook-retry-initial > 0, webhook-retry-max >= it, webhook-retry-window > 0 and webhook-concurrency >= 1, got %s, %s, %s, %d",
			w.WebhookRetryInitial, w.WebhookRetryMax, w.WebhookRetryWindow, w.WebhookConcurrency)
	}
	return nil
}

// Console is the operator console the API serves at /console (api, dev;
// docs/console.md).
type Console struct {
	// ConsoleTemporalUI is the Temporal Web UI's base URL the console links
	// each job to ({base}/namespaces/{ns}/workflows/{id}); empty: no links
	// (dev fills in its embedded UI).
	ConsoleTemporalUI string
}

// Register binds the console's settings.
func (c *Console) Register(fs *flag.FlagSet) {
	str(fs, &c.ConsoleTemporalUI, "console-temporal-ui", "CDNFLOW_CONSOLE_TEMPORAL_UI", "Temporal Web UI base URL the console links jobs to (e.g. http://temporal-ui:8233; empty: no links)")
}

// Traffic is the edge's live traffic, read by its connector from the
// edge's request log (connector; docs/console.md).
type Traffic struct {
	// TrafficVarnishDir is the edge's varnishd -n directory; empty: no
	// live traffic.
	TrafficVarnishDir string
	// TrafficEdgeID is the edge's inventory id, the metrics' edge label.
	TrafficEdgeID string
}

// Register binds the live traffic settings.
func (t *Traffic) Register(fs *flag.FlagSet) {
	str(fs, &t.TrafficVarnishDir, "traffic-varnish-dir", "CDNFLOW_TRAFFIC_VARNISH_DIR", "the edge's varnishd -n directory: its request log feeds live traffic (varnishncsa; empty: off)")
	str(fs, &t.TrafficEdgeID, "traffic-edge-id", "CDNFLOW_TRAFFIC_EDGE_ID", "the edge's inventory id, the edge label of live traffic")
}

// TrafficOptions are the connector's live traffic options of these
// settings.
func (t Traffic) TrafficOptions() connector.TrafficOptions {
	return connector.TrafficOptions{WorkDir: t.TrafficVarnishDir, Edge: t.TrafficEdgeID}
}
