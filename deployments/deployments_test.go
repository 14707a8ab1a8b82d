// Docker is not runnable on this project's machines, so these tests keep
// the deployment files honest: every command, flag, env name, port and
// image version is checked against the real binary and go.mod.
package deployments

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/inventory"
)

// binaryFlags are the flags of `cdnflow dev` (every server setting) and
// the env names they read, taken from the real flag set.
func binaryFlags(t *testing.T) (flags map[string]bool, envs map[string]bool) {
	flags, envs = commandFlags("dev")
	if len(envs) < 20 {
		t.Fatalf("only %d env names found in flag usage", len(envs))
	}
	return flags, envs
}

// commandFlags are the flags and env names of one server command.
func commandFlags(cmd string) (flags map[string]bool, envs map[string]bool) {
	cfg := config.Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	map[string]func(*flag.FlagSet){"dev": cfg.RegisterDev, "worker": cfg.RegisterWorker, "api": cfg.RegisterAPI}[cmd](fs)
	flags, envs = map[string]bool{}, map[string]bool{}
	envRe := regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
	fs.VisitAll(func(f *flag.Flag) {
		flags[f.Name] = true
		if m := envRe.FindStringSubmatch(f.Usage); m != nil {
			envs[m[1]] = true
		}
	})
	// The key ring's text has no flag (a flag's value shows in ps).
	envs[config.PayloadKeyEnv] = true
	return flags, envs
}

// connectorFlags are the flags and env names of `cdnflow connector`.
func connectorFlags() (flags map[string]bool, envs map[string]bool) {
	cfg := config.Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterConnector(fs)
	flags, envs = map[string]bool{}, map[string]bool{}
	envRe := regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
	fs.VisitAll(func(f *flag.Flag) {
		flags[f.Name] = true
		if m := envRe.FindStringSubmatch(f.Usage); m != nil {
			envs[m[1]] = true
		}
	})
	return flags, envs
}

var commands = map[string]bool{"worker": true, "api": true, "dev": true}

func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	var flags map[string]bool
	if len(args) > 0 && args[0] == "connector" {
		flags, _ = connectorFlags()
	} else if len(args) == 0 || !commands[args[0]] {
		t.Errorf("%s: command %v is not a cdnflow server command", where, args)
		return
	} else {
		flags, _ = commandFlags(args[0])
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
			if !flags[name] {
				t.Errorf("%s: flag %s does not exist", where, a)
			}
		}
	}
}

func checkEnv(t *testing.T, where string, env map[string]string, envs map[string]bool) {
	t.Helper()
	for k := range env {
		if (strings.HasPrefix(k, "CDNFLOW_") || strings.HasPrefix(k, "TEMPORAL_")) && !envs[k] {
			t.Errorf("%s: env %s is not read by cdnflow", where, k)
		}
	}
}

func moduleVersion(t *testing.T, module string) string {
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(module) + ` v([0-9.]+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s not in go.mod", module)
	}
	return string(m[1])
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		NetworkMode string            `yaml:"network_mode"`
	} `yaml:"services"`
}

func TestComposeFile(t *testing.T) {
	_, envs := binaryFlags(t)
	data, err := os.ReadFile("compose/docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose: %v", err)
	}
	for _, s := range []string{"postgresql", "temporal", "temporal-ui", "objectstore", "worker", "api", "api-2", "edge-1", "edge-2"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("service %s missing", s)
		}
	}
	if img := c.Services["temporal"].Image; img != "temporalio/auto-setup:"+moduleVersion(t, "go.temporal.io/server") {
		t.Errorf("temporal image %s does not match the embedded server version", img)
	}
	if img := c.Services["temporal-ui"].Image; img != "temporalio/ui:"+moduleVersion(t, "github.com/temporalio/ui-server/v2") {
		t.Errorf("ui image %s does not match the embedded UI version", img)
	}
	for _, name := range []string{"worker", "api", "api-2"} {
		s := c.Services[name]
		checkArgs(t, "compose "+name, s.Command)
		checkEnv(t, "compose "+name, s.Environment, envs)
		if s.Environment["TEMPORAL_ADDRESS"] != "temporal:7233" {
			t.Errorf("compose %s does not point at the temporal service", name)
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("compose %s mounts missing %s", name, src)
				}
			}
		}
	}
	checkComposePayloads(t, c)
	checkComposePrivate(t, c)
	checkPurgeACL(t, "compose", c.Services["worker"].Environment["CDNFLOW_PURGE_ACL"])
	for _, name := range []string{"worker", "api", "api-2"} {
		env := c.Services[name].Environment
		checkTracing(t, "compose "+name, env)
		u, _ := url.Parse(env[tracing.EnvEndpoint])
		if u == nil || c.Services[u.Hostname()].Environment["COLLECTOR_OTLP_ENABLED"] != "true" {
			t.Errorf("compose %s exports traces to %q, which is not a compose service receiving OTLP", name, env[tracing.EnvEndpoint])
		}
	}
	for name, port := range map[string]string{"api": "8080:8080", "api-2": "8081:8080"} {
		api := c.Services[name]
		if !contains(api.Command, ":8080") || !contains(api.Ports, port) {
			t.Errorf("%s listens on %v but publishes %v", name, api.Command, api.Ports)
		}
	}
	inv, err := inventory.Load("compose/edges.yaml")
	if err != nil {
		t.Fatalf("compose inventory: %v", err)
	}
	for _, e := range inv.Edges {
		host := strings.Split(e.Address, ":")[0]
		if _, ok := c.Services[host]; !ok {
			t.Errorf("inventory edge %s points at %s, which is not a compose service", e.ID, host)
		}
		if !contains(c.Services[host].Command, e.ID) {
			t.Errorf("edge service %s does not run with -i %s", host, e.ID)
		}
		// The edge's connector: a sidecar in the edge's network namespace
		// listening where the inventory says the VCL must send fetches.
		_, cenvs := connectorFlags()
		found := false
		for name, s := range c.Services {
			if s.NetworkMode != "service:"+host {
				continue
			}
			found = true
			checkArgs(t, "compose "+name, s.Command)
			checkEnv(t, "compose "+name, s.Environment, cenvs)
			if len(s.Command) == 0 || s.Command[0] != "connector" || !contains(s.Command, e.ConnectorAddress) {
				t.Errorf("compose %s: %v does not run a connector on %s", name, s.Command, e.ConnectorAddress)
			}
			// It checks the control token of the secret its edge reads.
			edgeSecret := mountSource(c.Services[host].Volumes, argAfter(c.Services[host].Command, "-S"))
			if src := mountSource(s.Volumes, argAfter(s.Command, "--control-secret-file")); src == "" || src != edgeSecret {
				t.Errorf("compose %s: --control-secret-file is %q, want the edge's -S file %q", name, src, edgeSecret)
			}
		}
		if !found {
			t.Errorf("edge %s (%s) has no connector sharing its network namespace", e.ID, host)
		}
		secret := filepath.Join("compose", "secrets", filepath.Base(e.SecretFile))
		if _, err := os.Stat(secret); err != nil {
			t.Errorf("edge %s secret %s missing", e.ID, secret)
		}
	}
}

// checkComposePayloads: worker and API name one S3 payload store, the
// objectstore service, which runs the versitygw version the tests run
// (Makefile VERSITYGW_VERSION) and makes the bucket; nothing is shared
// through a volume.
func checkComposePayloads(t *testing.T, c composeFile) {
	t.Helper()
	raw := c.Services["worker"].Environment["CDNFLOW_PAYLOAD_URL"]
	if raw == "" || c.Services["api"].Environment["CDNFLOW_PAYLOAD_URL"] != raw {
		t.Fatalf("compose worker and api must name one payload store: %q %q", raw, c.Services["api"].Environment["CDNFLOW_PAYLOAD_URL"])
	}
	u, err := payload.ParseURL(raw)
	if err != nil || u.Scheme != "s3" {
		t.Fatalf("compose payload url %q: %v (want s3://)", raw, err)
	}
	endpoint, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil || endpoint.Hostname() != "objectstore" || u.Query().Get("use_path_style") != "true" {
		t.Errorf("compose payload url %q does not point at the objectstore service by path style", raw)
	}
	store := c.Services["objectstore"]
	if want := "versity/versitygw:" + makefileVar(t, "VERSITYGW_VERSION"); store.Image != want {
		t.Errorf("objectstore image %s, want %s (the version the tests run)", store.Image, want)
	}
	boot := strings.Join(store.Entrypoint, " ")
	if !strings.Contains(boot, "/data/"+u.Host) || !strings.Contains(boot, ":"+endpoint.Port()) || !strings.Contains(boot, "posix /data") {
		t.Errorf("objectstore %q does not make bucket %s and listen on %s", boot, u.Host, endpoint.Port())
	}
	for _, name := range []string{"worker", "api"} {
		for _, v := range c.Services[name].Volumes {
			if strings.Contains(v, "payloads") {
				t.Errorf("compose %s mounts %s: payloads go through the object store", name, v)
			}
		}
	}
}

// checkTracing: the process exports its traces by OTLP (the standard
// OTEL_* variables as internal/tracing reads them: on, over HTTP).
func checkTracing(t *testing.T, where string, env map[string]string) {
	t.Helper()
	on, err := tracing.Enabled(func(k string) string { return env[k] })
	if err != nil || !on {
		t.Errorf("%s: traces not exported (%v): set %s (OTLP over HTTP)", where, err, tracing.EnvEndpoint)
	}
}

func makefileVar(t *testing.T, name string) string {
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` :?= *(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s not set in the Makefile", name)
	}
	return string(m[1])
}

type k8sDoc struct {
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Data       map[string]string     `yaml:"data"`
	StringData map[string]string     `yaml:"stringData"`
	Spec       struct {
		Type  string `yaml:"type"`
		Ports []struct {
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			NodePort   int    `yaml:"nodePort"`
			Name       string `yaml:"name"`
		} `yaml:"ports"`
		Template struct {
			Spec struct {
				Containers []struct {
					Name  string   `yaml:"name"`
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Env   []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
					Ports []struct {
						ContainerPort int `yaml:"containerPort"`
					} `yaml:"ports"`
					ReadinessProbe *struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe *struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
				} `yaml:"containers"`
				Volumes []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName  string `yaml:"secretName"`
						DefaultMode int    `yaml:"defaultMode"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestKubernetesManifests(t *testing.T) {
	_, envs := binaryFlags(t)
	data, err := os.ReadFile("k8s/cdnflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	kinds := map[string]int{}
	keyFile := ""
	for {
		var d k8sDoc
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("manifest: %v", err)
		}
		kinds[d.Kind]++
		checkK8sPrivate(t, d, &keyFile)
		if d.Kind == "ConfigMap" {
			env := map[string]string{}
			for k, v := range d.Data {
				if k != "edges.yaml" {
					env[k] = v
				}
			}
			checkEnv(t, "configmap", env, envs)
			// Pods share no disk: the payload store is a bucket.
			if u, err := payload.ParseURL(env["CDNFLOW_PAYLOAD_URL"]); err != nil || u.Scheme == "file" {
				t.Errorf("configmap CDNFLOW_PAYLOAD_URL %q: %v (want a bucket every pod reaches)", env["CDNFLOW_PAYLOAD_URL"], err)
			}
			if _, err := inventory.Parse([]byte(d.Data["edges.yaml"])); err != nil {
				t.Errorf("configmap inventory: %v", err)
			}
			checkTracing(t, "configmap", env)
			checkPurgeACL(t, "configmap", env["CDNFLOW_PURGE_ACL"])
		}
		connectors, varnishes := 0, 0
		for _, c := range d.Spec.Template.Spec.Containers {
			if !strings.Contains(c.Image, "cdnflow") {
				if strings.HasPrefix(c.Image, "varnish:") {
					varnishes++
				}
				continue
			}
			checkArgs(t, d.Metadata.Name, c.Args)
			if c.Args[0] == "connector" {
				connectors++
				if argAfter(c.Args, "--control-secret-file") == "" {
					t.Errorf("%s: connector %v has no --control-secret-file", d.Metadata.Name, c.Args)
				}
				if !contains(c.Args, inventory.DefaultConnectorAddress) {
					t.Errorf("%s: connector %v does not listen on the default connectorAddress %s", d.Metadata.Name, c.Args, inventory.DefaultConnectorAddress)
				}
			}
			if c.Args[0] == "api" {
				if !contains(c.Args, ":8080") || len(c.Ports) == 0 || c.Ports[0].ContainerPort != 8080 {
					t.Errorf("api container port and --api-addr disagree: %v %v", c.Args, c.Ports)
				}
				ready, live := probeRoutes(t)
				if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != ready || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != live {
					t.Errorf("api probes must use the router's readiness route %s and liveness route %s: %+v %+v", ready, live, c.ReadinessProbe, c.LivenessProbe)
				}
			}
		}
		// Every Pod with a Varnish edge has its connector beside it.
		if varnishes != connectors && varnishes > 0 {
			t.Errorf("%s: %d varnish containers, %d connectors", d.Metadata.Name, varnishes, connectors)
		}
	}
	for _, k := range []string{"ConfigMap", "Secret", "Deployment", "Service", "StatefulSet"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the manifests", k)
		}
	}
	if kinds["Deployment"] != 3 {
		t.Errorf("want worker, api and temporal-ui deployments, got %d", kinds["Deployment"])
	}
	if keyFile == "" {
		t.Error("configmap names no CDNFLOW_PAYLOAD_KEY_FILE: payloads would be stored in plain text")
	}
}

func TestDockerfileMatchesGoMod(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile("../go.mod")
	goVer := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(mod)
	if goVer == nil || !strings.Contains(string(data), "FROM golang:"+string(goVer[1])) {
		t.Errorf("Dockerfile's Go image does not match go.mod's go %s", goVer[1])
	}
	if !strings.Contains(string(data), "./cmd/cdnflow") || !strings.Contains(string(data), `ENTRYPOINT ["/usr/local/bin/cdnflow"]`) {
		t.Error("Dockerfile does not build and run cmd/cdnflow")
	}
}

// probeRoutes reads the API router's readiness and liveness paths: the GET
// routes served by its readyz and healthz handlers.
func probeRoutes(t *testing.T) (ready, live string) {
	t.Helper()
	for _, r := range httpapi.New(httpapi.Deps{}).Echo.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		switch {
		case strings.HasSuffix(r.Name, ".readyz-fm"):
			ready = r.Path
		case strings.HasSuffix(r.Name, ".healthz-fm"):
			live = r.Path
		}
	}
	if ready == "" || live == "" {
		t.Fatalf("the router has no readyz (%q) or healthz (%q) GET route", ready, live)
	}
	return ready, live
}

// argAfter is the argument following flag in args ("" when none).
func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mountSource is the host side of the volume mounted at path ("" none).
func mountSource(volumes []string, path string) string {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == path {
			return parts[0]
		}
	}
	return ""
}

// checkPurgeACL: the example purge ACL names the control plane's
// addresses, not a whole private range (a proxy or ingress inside it
// would send its visitors' requests from an admitted address).
func checkPurgeACL(t *testing.T, where, acl string) {
	t.Helper()
	if acl == "" {
		t.Errorf("%s: no CDNFLOW_PURGE_ACL", where)
	}
	for _, a := range strings.Split(acl, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(a))
		if err != nil {
			if _, err := netip.ParseAddr(strings.TrimSpace(a)); err != nil {
				t.Errorf("%s: purge ACL entry %q: %v", where, a, err)
			}
			continue
		}
		if p.Addr().Is4() && p.Bits() < 24 {
			t.Errorf("%s: purge ACL entry %s is wider than /24: name the workers' addresses", where, a)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The built-in dev inventory is the file, parses, and lists only edges
// that `cdnflow dev` starts itself, with secrets relative to the data dir.
func TestBuiltInDevInventory(t *testing.T) {
	file, err := os.ReadFile("dev/edges.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, DevEdges) {
		t.Fatal("DevEdges differs from dev/edges.yaml")
	}
	inv, err := inventory.Parse(DevEdges)
	if err != nil {
		t.Fatalf("built-in inventory: %v", err)
	}
	for _, e := range inv.Edges {
		if !e.Managed || filepath.IsAbs(e.SecretFile) || strings.HasPrefix(e.SecretFile, ".cdnflow") {
			t.Errorf("edge %s: managed %v, secret %s (want managed, relative to the data dir)", e.ID, e.Managed, e.SecretFile)
		}
	}
}

// privatePorts are Temporal's frontend (7233) and Web UI (8233, and 8080
// in the UI image) ports: never published beyond the host's loopback, as
// neither authenticates its callers here.
var privatePorts = map[string]bool{"7233": true, "8233": true}

// checkComposePrivate: Temporal's frontend and the Web UI are published on
// 127.0.0.1 only, the UI is read-only, and workers and APIs load the
// payload key.
func checkComposePrivate(t *testing.T, c composeFile) {
	t.Helper()
	for name, s := range c.Services {
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			container := parts[len(parts)-1]
			host := parts[0]
			private := privatePorts[container] || (len(parts) > 1 && privatePorts[parts[len(parts)-2]]) ||
				name == "temporal" || name == "temporal-ui"
			if private && (len(parts) != 3 || host != "127.0.0.1") {
				t.Errorf("compose %s publishes %q: Temporal's frontend and UI bind 127.0.0.1 only", name, p)
			}
		}
	}
	if ui := c.Services["temporal-ui"].Environment; ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] != "true" || ui["TEMPORAL_CODEC_ENDPOINT"] == "" {
		t.Errorf("compose temporal-ui: write actions must be off and payloads shown through a codec endpoint: %v", ui)
	}
	for _, name := range []string{"worker", "api", "api-2"} {
		env := c.Services[name].Environment
		if env["CDNFLOW_PAYLOAD_KEY"] == "" && env["CDNFLOW_PAYLOAD_KEY_FILE"] == "" {
			t.Errorf("compose %s loads no payload key: payloads would be stored in plain text", name)
		}
	}
}

// checkK8sPrivate: no Service exposes Temporal's frontend or the Web UI
// outside the cluster (LoadBalancer, NodePort, a nodePort); the UI is
// read-only; the payload key is a Secret mounted owner-only.
func checkK8sPrivate(t *testing.T, d k8sDoc, keyFile *string) {
	t.Helper()
	switch d.Kind {
	case "Service":
		sensitive := strings.Contains(d.Metadata.Name, "temporal")
		for _, p := range d.Spec.Ports {
			sensitive = sensitive || privatePorts[fmt.Sprint(p.Port)] || privatePorts[fmt.Sprint(p.TargetPort)]
		}
		for _, p := range d.Spec.Ports {
			if sensitive && p.NodePort != 0 {
				t.Errorf("service %s: nodePort %d exposes Temporal", d.Metadata.Name, p.NodePort)
			}
		}
		if sensitive && d.Spec.Type != "" && d.Spec.Type != "ClusterIP" {
			t.Errorf("service %s is %s: Temporal's frontend and UI stay ClusterIP", d.Metadata.Name, d.Spec.Type)
		}
	case "ConfigMap":
		*keyFile = d.Data["CDNFLOW_PAYLOAD_KEY_FILE"]
	case "Deployment":
		checkK8sContainers(t, d, *keyFile)
	}
}

func checkK8sContainers(t *testing.T, d k8sDoc, keyFile string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	for _, c := range pod.Containers {
		if strings.HasPrefix(c.Image, "temporalio/ui:") {
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if env["TEMPORAL_DISABLE_WRITE_ACTIONS"] != "true" || env["TEMPORAL_CODEC_ENDPOINT"] == "" {
				t.Errorf("%s: the Web UI must be read-only and decode through a codec endpoint: %v", d.Metadata.Name, env)
			}
		}
		if !strings.Contains(c.Image, "cdnflow") || len(c.Args) == 0 || (c.Args[0] != "worker" && c.Args[0] != "api") {
			continue
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			if keyFile == "" || !strings.HasPrefix(keyFile, m.MountPath+"/") {
				continue
			}
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.Secret != nil && v.Secret.DefaultMode&0o007 == 0 && v.Secret.DefaultMode != 0 {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Errorf("%s: the payload key %q is not mounted from a Secret with an owner-only defaultMode", d.Metadata.Name, keyFile)
		}
	}
}
