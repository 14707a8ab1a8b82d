//go:build cluster

// The cluster kill tests (make test-cluster): the local cluster of this
// package — PostgreSQL, the Temporal server, the Web UI, three varnishd
// edges with their connectors, two `cdnflow worker` and two `cdnflow api`
// processes — runs a 6,000-pair prewarm and a 1,000-path purge while one
// part at a time is killed or restarted. Each fault ends with exact counts.
package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/freeport"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/s3test"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack/cluster"
)

const (
	appKey    = "cluster-app"
	appSecret = "cluster-secret"
	// heartbeat is how soon a killed worker's activities run elsewhere.
	heartbeat = 2 * time.Second
	edgeCount = 3
	jobURLs   = 2000 // × 3 edges = 6,000 pairs
	purgeN    = 1000 // 5 seqs of 200 ITEM paths
)

// countingOrigin is the origin of every edge: the project's test origin,
// counting requests per path prefix (a fault scenario's prewarm job).
type countingOrigin struct {
	origin.Handler
	mu     sync.Mutex
	counts map[string]*atomic.Int64
}

func (o *countingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /slow/<ms>/<scenario>/w/<i>.js: count per scenario.
	parts := strings.SplitN(r.URL.Path, "/", 6)
	if len(parts) == 6 && parts[1] == "slow" && parts[4] == "w" {
		o.counter(parts[3]).Add(1)
	}
	o.Handler.ServeHTTP(w, r)
}

func (o *countingOrigin) counter(scenario string) *atomic.Int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts[scenario] == nil {
		o.counts[scenario] = &atomic.Int64{}
	}
	return o.counts[scenario]
}

// env is the running cluster of this test binary.
type env struct {
	c          *cluster.Cluster
	origin     *countingOrigin
	originHost string
	originPort int
}

var shared *env

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run builds the binaries (unless CDNFLOW_CLUSTER_BIN_DIR names them),
// brings the cluster up in a fresh directory, runs the tests and takes it
// down. CDNFLOW_CLUSTER_KEEP=1 keeps the directory (logs) afterwards.
func run(m *testing.M) (code int, err error) {
	dir, err := os.MkdirTemp("", "cdnflow-cluster-")
	if err != nil {
		return 0, err
	}
	// PostgreSQL runs as the postgres user: it must reach its data dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	binDir := os.Getenv("CDNFLOW_CLUSTER_BIN_DIR")
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
		if err := buildBinaries(binDir); err != nil {
			return 0, err
		}
	}
	e, err := startCluster(dir, binDir)
	defer func() {
		if err := cluster.Down(filepath.Join(dir, "cluster")); err != nil {
			fmt.Fprintln(os.Stderr, "cluster down:", err)
		}
		// Down leaves nothing running.
		if e != nil && e.c != nil {
			for name, pid := range e.c.Status() {
				if pid != 0 {
					fmt.Fprintf(os.Stderr, "cluster down left %s running (pid %d)\n", name, pid)
					code = 1
				}
			}
		}
		if os.Getenv("CDNFLOW_CLUSTER_KEEP") == "" {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "cluster directory kept:", dir)
		}
	}()
	if err != nil {
		return 0, err
	}
	shared = e
	return m.Run(), nil
}

func buildBinaries(binDir string) error {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("module root: %w", err)
	}
	for out, pkg := range map[string]string{"cdnflow": "./cmd/cdnflow", "temporal-server": "go.temporal.io/server/cmd/server",
		"temporal-sql-tool": "go.temporal.io/server/cmd/tools/sql"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
		cmd.Dir = strings.TrimSpace(string(root))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	// The object store: the binary `make tools` builds (bin/versitygw).
	vgw, err := s3test.Binary()
	if err != nil {
		return err
	}
	return os.Symlink(vgw, filepath.Join(binDir, "versitygw"))
}

func startCluster(dir, binDir string) (*env, error) {
	e := &env{origin: &countingOrigin{counts: map[string]*atomic.Int64{}}}
	srv := httptest.NewServer(e.origin)
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.originHost = host
	e.originPort, _ = strconv.Atoi(portStr)
	ports, err := freePorts(5 + 3*edgeCount + 2 + 2)
	if err != nil {
		return nil, err
	}
	next := func() string { p := ports[0]; ports = ports[1:]; return "127.0.0.1:" + strconv.Itoa(p) }
	var edges []inventory.Edge
	for i := 1; i <= edgeCount; i++ {
		id := fmt.Sprintf("CLU%02d-C1", i)
		edges = append(edges, inventory.Edge{ID: id, Region: "us", Country: "united_states", Address: next(), AdminAddress: next(),
			ConnectorAddress: next(), SecretFile: id + ".secret", Kind: inventory.KindVarnish})
	}
	temporalPort, err := freeRange(9)
	if err != nil {
		return nil, err
	}
	pg, _ := strconv.Atoi(strings.TrimPrefix(next(), "127.0.0.1:"))
	ui, _ := strconv.Atoi(strings.TrimPrefix(next(), "127.0.0.1:"))
	s3, _ := strconv.Atoi(strings.TrimPrefix(next(), "127.0.0.1:"))
	c, err := cluster.New(cluster.Options{
		Dir: filepath.Join(dir, "cluster"), BinDir: binDir, PGPort: pg, TemporalPort: temporalPort, UIPort: ui, ObjectStorePort: s3,
		APIAddrs: []string{next(), next()}, WorkerMetricsAddrs: []string{next(), next()}, Edges: edges,
		DefaultOrigin: srv.Listener.Addr().String(), OriginAllowLoopback: []string{portStr},
		ServerArgs: []string{"--log-level", "info"},
		ServerEnv: []string{"CDNFLOW_APP_KEYS=" + appKey + ":" + appSecret, "CDNFLOW_HEARTBEAT_TIMEOUT=" + heartbeat.String(),
			// A few fetches at a time per chunk keep the job running long
			// enough for every fault to land in the middle of it.
			"CDNFLOW_PREWARM_CONCURRENCY=4", "CDNFLOW_PREWARM_PIPELINE=1", "CDNFLOW_PURGE_ITEM_INTERVAL=0s",
			// Pairs of the edge held during a fault outlast it: 6 GETs of
			// at most 10 s, 200 ms doubling to 5 s between them.
			"CDNFLOW_PREWARM_ATTEMPTS=6", "CDNFLOW_MAX_BACKLOG=0"},
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) },
	})
	if err != nil {
		return nil, err
	}
	e.c = c
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Up(ctx); err != nil {
		return e, err
	}
	fmt.Fprintf(os.Stderr, "cluster up in %s\n", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// freePorts returns n ports that were free a moment ago, outside the
// ephemeral range.
func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := freeport.Get("127.0.0.1")
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// freeRange finds n consecutive free ports below 32768 (Temporal keeps
// membership ports in a smallint).
func freeRange(n int) (int, error) {
	return freeport.Block("127.0.0.1", n)
}

func (e *env) client(t *testing.T) *apiClient {
	return &apiClient{t: t, bases: e.c.APIURLs(), appKey: appKey, secret: appSecret, deadline: 3 * time.Minute,
		http: &http.Client{Timeout: 30 * time.Second}}
}

// requireAllRunning fails unless every process of the cluster runs: no
// part died of another's fault.
func (e *env) requireAllRunning(t *testing.T) {
	t.Helper()
	for name, pid := range e.c.Status() {
		if pid == 0 {
			t.Errorf("%s is not running (log %s):\n%s", name, e.c.LogFile(name), tailFile(e.c.LogFile(name), 30))
		}
	}
}

func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	domainOnce sync.Once
	domain     string
)

func (e *env) domain(t *testing.T) string {
	domainOnce.Do(func() { domain = e.client(t).createDistribution(e.originHost, e.originPort) })
	if domain == "" {
		t.Fatal("no distribution")
	}
	return domain
}

// restart stops name with sig, waits down, starts it again and waits until
// it is ready.
func (e *env) restart(t *testing.T, name string, sig syscall.Signal, down time.Duration) {
	t.Helper()
	if !e.c.Running(name) {
		t.Fatalf("%s is not running before its restart", name)
	}
	if err := e.c.Stop(name, sig, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(down)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.c.Start(ctx, name); err != nil {
		t.Fatalf("restart %s: %v", name, err)
	}
}

// Up on a running cluster starts nothing: every process keeps its pid.
func TestUpIsIdempotent(t *testing.T) {
	before := shared.c.Status()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := shared.c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	after := shared.c.Status()
	for name, pid := range before {
		if pid == 0 || after[name] != pid {
			t.Errorf("%s: pid %d before the second up, %d after", name, pid, after[name])
		}
	}
	if len(before) != 2+1+1+2*edgeCount+2+2 {
		t.Errorf("%d processes, want PostgreSQL, Temporal, the object store, UI, %d edges and connectors, 2 workers, 2 APIs: %v", len(before), edgeCount, before)
	}
}

func TestWorkerKilled(t *testing.T) {
	shared.faultRun(t, "worker", func(t *testing.T, a *apiClient) {
		for i := 0; i < 2; i++ {
			name := cluster.WorkerName(i)
			shared.restart(t, name, syscall.SIGKILL, 500*time.Millisecond)
			t.Logf("%s killed and restarted", name)
			time.Sleep(2 * time.Second)
		}
	})
}

func TestAPIKilled(t *testing.T) {
	shared.faultRun(t, "api", func(t *testing.T, a *apiClient) {
		if err := shared.c.Kill(cluster.APIName(0)); err != nil {
			t.Fatal(err)
		}
		before := a.failovers.Load()
		// Polls while it is down go to the other API.
		st := a.status(a.lastJob)
		if a.failovers.Load() == before {
			t.Fatalf("status with api-1 dead was not answered by api-2: %+v", st)
		}
		t.Logf("api-1 killed; api-2 answers (%d/%d done)", st.Completed, st.Total)
		time.Sleep(3 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := shared.c.Start(ctx, cluster.APIName(0)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTemporalRestarted(t *testing.T) {
	shared.faultRun(t, "temporal", func(t *testing.T, a *apiClient) {
		shared.restart(t, "temporal", syscall.SIGKILL, 2*time.Second)
	})
}

func TestPostgresRestarted(t *testing.T) {
	shared.faultRun(t, "postgres", func(t *testing.T, a *apiClient) {
		// Immediate shutdown: no checkpoint, crash recovery at start.
		shared.restartRefusing(t, a, "postgres", syscall.SIGQUIT, true)
	})
}

// The object store (versitygw) is SIGKILLed mid-job and restarted on the
// same data: the prewarm's outcome writes are retried until it answers,
// nothing is lost or counted twice; a new prewarm sent while it is down
// is refused (its URL list cannot be stored), a purge needs no store.
func TestObjectStoreRestarted(t *testing.T) {
	shared.faultRun(t, cluster.ObjectStoreName, func(t *testing.T, a *apiClient) {
		shared.restartRefusing(t, a, cluster.ObjectStoreName, syscall.SIGKILL, false)
	})
}

// restartRefusing stops name, checks that a new prewarm (and, with
// purgeToo, a new purge) sent to an API meanwhile is refused with the
// API's own "unavailable" answer — 503 ServiceUnavailable with a
// Retry-After, NHN resultCode 50001 — then starts name again; faultRun
// then checks that the jobs running across the outage lost nothing.
func (e *env) restartRefusing(t *testing.T, a *apiClient, name string, sig syscall.Signal, purgeToo bool) {
	t.Helper()
	if err := e.c.Stop(name, sig, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	base := e.c.APIURLs()[0]
	probe := &http.Client{Timeout: 90 * time.Second}
	start := time.Now()
	body := fmt.Sprintf(`{"url_list":["http://%s/refused/%s.js"],"cf_domain":%q,"target_type":"pop","region":["%s"]}`,
		e.domain(t), name, e.domain(t), e.c.Inventory().IDs()[0])
	resp, err := probe.Post(base+"/prewarm", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("prewarm with %s down: %v", name, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(data), `"ServiceUnavailable"`) {
		t.Errorf("prewarm with %s down = %d (Retry-After %q) %s; want 503 ServiceUnavailable with a Retry-After", name, resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
	t.Logf("prewarm with %s down refused in %s", name, time.Since(start).Round(time.Millisecond))
	if purgeToo {
		start = time.Now()
		req, _ := http.NewRequest("POST", base+"/v1.5/appKeys/"+appKey+"/purges",
			strings.NewReader(fmt.Sprintf(`{"domain":%q,"purgeType":"ITEM","purgeList":"/refused/%s.css"}`, e.domain(t), name)))
		req.Header.Set("Authorization", appSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := probe.Do(req)
		if err != nil {
			t.Fatalf("purge with %s down: %v", name, err)
		}
		var h nhnHeader
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(data, &h); err != nil || h.Header.IsSuccessful || h.Header.ResultCode != 50001 {
			t.Errorf("purge with %s down = %d %s; want NHN resultCode 50001", name, resp.StatusCode, data)
		}
		t.Logf("purge with %s down refused in %s", name, time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.c.Start(ctx, name); err != nil {
		t.Fatalf("restart %s: %v", name, err)
	}
}
