package config

import (
	"flag"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
)

func parse(t *testing.T, env map[string]string, args ...string) Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	c := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterDev(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

// The payload store comes from --payload-url or $CDNFLOW_PAYLOAD_URL (the
// flag wins), else <data-dir>/payloads, always as an absolute file:// URL.
func TestPayloadStoreURL(t *testing.T) {
	dir := t.TempDir()
	const s3 = "s3://b?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true"
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", nil, []string{"--data-dir", dir}, "file://" + filepath.Join(dir, "payloads")},
		{"flag", nil, []string{"--payload-url", s3}, s3},
		{"env", map[string]string{"CDNFLOW_PAYLOAD_URL": "gs://g"}, nil, "gs://g"},
		{"flag over env", map[string]string{"CDNFLOW_PAYLOAD_URL": "gs://g"}, []string{"--payload-url", s3}, s3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := parse(t, c.env, c.args...)
			if got := cfg.PayloadStoreURL(); got != c.want {
				t.Fatalf("PayloadStoreURL = %s, want %s", got, c.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	if got := parse(t, nil, "--data-dir", "rel").PayloadStoreURL(); !strings.HasPrefix(got, "file:///") || !strings.HasSuffix(got, "/rel/payloads") {
		t.Fatalf("relative data dir gives %s, want an absolute file URL", got)
	}
}

func TestValidateRefusesBadPayloadURL(t *testing.T) {
	for args, want := range map[[2]string]string{
		{"--payload-url", "ftp://x"}:      `payload-url "ftp://x": scheme "ftp"`,
		{"--payload-url", "s3://b?x=%zz"}: "invalid URL escape",
		{"--payload-url", "s3://"}:        "no bucket name",
	} {
		err := parse(t, nil, args[0], args[1]).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: Validate = %v, want %q", args, err, want)
		}
	}
}

// flagNames are the flags register binds.
func flagNames(register func(*flag.FlagSet)) map[string]bool {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	register(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// Each command binds its groups: the worker no API flag, the API no
// worker tunable, both the job policy, dev all of them (a flag registered twice would panic).
func TestRegisterPerCommand(t *testing.T) {
	c := Default()
	dev, worker, api, conn := flagNames(c.RegisterDev), flagNames(c.RegisterWorker), flagNames(c.RegisterAPI), flagNames(c.RegisterConnector)
	for _, name := range []string{"api-keys", "app-keys", "api-addr", "show-success-urls", "ui-port", "temporal-port"} {
		if worker[name] {
			t.Errorf("worker has --%s", name)
		}
	}
	// The job policy: the API applies it to requests, the worker to the
	// schedule runs it submits, so both read it.
	for _, name := range []string{"max-backlog", "prewarm-timeout", "purge-item-batch", "purge-wildcard-batch", "purge-item-interval", "purge-all-interval", "purge-deadline", "purge-catch-up"} {
		if !worker[name] || !api[name] {
			t.Errorf("--%s: worker %v, api %v; want both", name, worker[name], api[name])
		}
	}
	for _, name := range []string{"heartbeat-timeout", "prewarm-attempts", "prewarm-attempt-timeout", "prewarm-concurrency", "prewarm-pipeline", "edge-purge-timeout", "edge-site-timeout", "purge-acl", "ui-port"} {
		if api[name] {
			t.Errorf("api has --%s", name)
		}
	}
	for name := range worker {
		if !dev[name] {
			t.Errorf("dev lacks worker flag --%s", name)
		}
	}
	for name := range api {
		if !dev[name] {
			t.Errorf("dev lacks api flag --%s", name)
		}
	}
	for _, name := range []string{"listen", "log-level", "origin-ca-file"} {
		if !conn[name] {
			t.Errorf("connector lacks --%s", name)
		}
	}
	if conn["temporal-address"] || conn["api-keys"] || conn["heartbeat-timeout"] {
		t.Errorf("connector flags %v", conn)
	}
}

// Every flag of every group falls back to its environment variable, and
// the flag wins over it.
func TestEnvFallbackPerGroup(t *testing.T) {
	env := map[string]string{
		"TEMPORAL_ADDRESS":           "t:7233",
		"CDNFLOW_LOG_LEVEL":          "debug",
		"CDNFLOW_EDGES":              "/e.yaml",
		"CDNFLOW_ORIGIN_CA_FILE":     "/ca.pem",
		"CDNFLOW_API_KEYS":           "k1,k2",
		"CDNFLOW_MAX_BACKLOG":        "7",
		"CDNFLOW_HEARTBEAT_TIMEOUT":  "5s",
		"CDNFLOW_PREWARM_ATTEMPTS":   "4",
		"CDNFLOW_EDGE_PURGE_TIMEOUT": "3s",
		"CDNFLOW_EDGE_BAN_TIMEOUT":   "4s",
		"CDNFLOW_EDGE_SITE_TIMEOUT":  "45s",
		"CDNFLOW_EDGE_PROBE_TIMEOUT": "2s",
		"CDNFLOW_UI_PORT":            "-1",
		"CDNFLOW_CONNECTOR_LISTEN":   "127.0.0.1:7000",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	parseWith := func(register func(*Config, *flag.FlagSet), args ...string) Config {
		c := Default()
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		register(&c, fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c
	}
	dev := parseWith((*Config).RegisterDev)
	if dev.TemporalAddress != "t:7233" || dev.LogLevel != "debug" || dev.InventoryFile != "/e.yaml" || dev.OriginCAFile != "/ca.pem" ||
		len(dev.APIKeys) != 2 || dev.MaxBacklog != 7 || dev.HeartbeatTimeout != 5*time.Second || dev.PrewarmAttempts != 4 || dev.TemporalUIPort != -1 {
		t.Fatalf("dev from env: %+v", dev)
	}
	want := edge.Options{Timeout: 10 * time.Second, PurgeTimeout: 3 * time.Second, BanTimeout: 4 * time.Second, SiteTimeout: 45 * time.Second, ProbeTimeout: 2 * time.Second}
	if got := parseWith((*Config).RegisterWorker).EdgeOptions(); got != want {
		t.Fatalf("worker edge options from env: %+v, want %+v", got, want)
	}
	worker := parseWith((*Config).RegisterWorker, "--heartbeat-timeout", "9s", "--edge-site-timeout", "1m")
	if worker.HeartbeatTimeout != 9*time.Second || worker.EdgeSiteTimeout != time.Minute || worker.PrewarmAttempts != 4 {
		t.Fatalf("worker flags over env: %+v", worker.Worker)
	}
	// The API reads no worker tunable, from flags or the environment: a
	// worker's settings reach the workflows through the worker alone.
	api := parseWith((*Config).RegisterAPI, "--max-backlog", "3")
	if api.MaxBacklog != 3 || len(api.APIKeys) != 2 {
		t.Fatalf("api: %+v", api)
	}
	if !reflect.DeepEqual(api.Worker, Default().Worker) {
		t.Fatalf("api took worker settings from the environment: %+v", api.Worker)
	}
	if conn := parseWith((*Config).RegisterConnector); conn.ConnectorListen != "127.0.0.1:7000" || conn.LogLevel != "debug" || conn.OriginCAFile != "/ca.pem" {
		t.Fatalf("connector from env: %+v", conn)
	}
	if err := dev.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Default()
	bad.EdgeSiteTimeout = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "edge-*-timeout") {
		t.Fatalf("Validate with a zero edge timeout: %v", err)
	}
}

// The control plane id is --control-plane-id, else the namespace; either
// must be 1-64 of [A-Za-z0-9._-].
func TestControlPlaneID(t *testing.T) {
	if got := parse(t, nil, "--namespace", "prod-eu").ControlPlane(); got != "prod-eu" {
		t.Fatalf("default control plane = %q, want the namespace", got)
	}
	c := parse(t, map[string]string{"CDNFLOW_CONTROL_PLANE_ID": "env.id"}, "--control-plane-id", "cp_1.eu-west")
	if got := c.ControlPlane(); got != "cp_1.eu-west" {
		t.Fatalf("control plane = %q, want the flag's", got)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"has space", "slash/no", strings.Repeat("a", 65)} {
		err := parse(t, nil, "--control-plane-id", bad).Validate()
		if err == nil || !strings.Contains(err.Error(), "control-plane-id") {
			t.Errorf("--control-plane-id %q: Validate = %v, want a refusal naming the flag", bad, err)
		}
	}
	if !parse(t, nil, "--fleet-settings-replace").FleetSettingsReplace {
		t.Fatal("--fleet-settings-replace not bound")
	}
}

// Rollout knobs: defaults, the flag over the env, and the shapes Validate
// refuses.
func TestRolloutKnobs(t *testing.T) {
	c := parse(t, nil)
	if !slices.Equal(c.RolloutWaves, []float64{0.1, 0.5, 1}) || c.RolloutBake != time.Second || c.RolloutHealthPath != "/" {
		t.Fatalf("defaults: %v %v %q", c.RolloutWaves, c.RolloutBake, c.RolloutHealthPath)
	}
	c = parse(t, map[string]string{"CDNFLOW_ROLLOUT_WAVES": "0.5,1"}, "--rollout-waves", "0.05, 0.25,1", "--rollout-bake", "0", "--rollout-health-path", "/healthz?x=1")
	if !slices.Equal(c.RolloutWaves, []float64{0.05, 0.25, 1}) || c.RolloutBake != 0 || c.RolloutHealthPath != "/healthz?x=1" {
		t.Fatalf("flags: %v %v %q", c.RolloutWaves, c.RolloutBake, c.RolloutHealthPath)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := parse(t, map[string]string{"CDNFLOW_ROLLOUT_WAVES": "0.5,1"}).RolloutWaves; !slices.Equal(got, []float64{0.5, 1}) {
		t.Fatalf("env waves: %v", got)
	}
	for _, args := range [][]string{
		{"--rollout-waves", "0.5"}, {"--rollout-waves", "0.5,0.2,1"}, {"--rollout-waves", "0,1"}, {"--rollout-waves", "1,1"},
		{"--rollout-bake", "-1s"}, {"--rollout-health-path", "healthz"},
	} {
		if err := parse(t, nil, args...).Validate(); err == nil || !strings.Contains(err.Error(), "rollout-") {
			t.Errorf("%v: Validate = %v, want a refusal naming the flag", args, err)
		}
	}
}
