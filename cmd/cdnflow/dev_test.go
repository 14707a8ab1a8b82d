//go:build !unit

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
)

// TestDevCommand runs the real binary the README's first command runs:
// embedded Temporal, Web UI, managed varnishd edges, demo origin, worker and
// API in one process; then SIGTERM stops all of it.
func TestDevCommand(t *testing.T) {
	requireDev(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "cdnflow")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }() // held open only to learn a free port
		return l.Addr().(*net.TCPAddr).Port
	}
	edgeHTTP, edgeAdmin := port(), port()
	// A relative secret path, as in deployments/dev/edges.yaml: the
	// process resolves it against its working directory, not varnishd's.
	inv := fmt.Sprintf(`edges:
  - {id: TST01-C1, region: us, country: united_states, address: "127.0.0.1:%d", adminAddress: "127.0.0.1:%d", secretFile: secrets/edge.secret, managed: true}
`, edgeHTTP, edgeAdmin)
	invFile := filepath.Join(dir, "edges.yaml")
	if err := os.WriteFile(invFile, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", port())
	uiPort := port()
	originAddr := fmt.Sprintf("127.0.0.1:%d", port())
	cmd := exec.Command(bin, "dev",
		"--data-dir", filepath.Join(dir, "data"),
		"--edges", invFile,
		"--api-addr", apiAddr,
		"--temporal-port", fmt.Sprint(freePortBlock(t, 5)),
		"--ui-port", fmt.Sprint(uiPort),
		"--default-origin", originAddr,
		"--log-format", "json",
	)
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dev: %v", err)
	}
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	get := func(url string, host string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Cache"), nil
	}
	eventually.Within(t, 90*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("dev exited early: %v\n%s", err, <-logs)
		default:
		}
		if code, _, err := get("http://"+apiAddr+"/readyz", ""); err != nil || code != 200 {
			return fmt.Errorf("dev not ready: %d %v", code, err)
		}
		return nil
	})
	if code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", uiPort), ""); err != nil || code != 200 {
		t.Fatalf("web ui: %d %v", code, err)
	}
	// The managed edge serves the demo origin, and caches it.
	if code, xc, err := get(fmt.Sprintf("http://127.0.0.1:%d/hello.txt", edgeHTTP), "www.example.com"); err != nil || code != 200 || xc != "MISS" {
		t.Fatalf("edge first GET: %d %s %v", code, xc, err)
	}
	if code, xc, err := get(fmt.Sprintf("http://127.0.0.1:%d/hello.txt", edgeHTTP), "www.example.com"); err != nil || code != 200 || xc != "HIT" {
		t.Fatalf("edge second GET: %d %s %v", code, xc, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("dev exit: %v\n%s", err, <-logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop on SIGTERM")
	}
	// varnishd was reaped with it: its ports are closed.
	for _, p := range []int{edgeHTTP, edgeAdmin} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			_ = c.Close() // a probe: that it connected is the finding
			t.Fatalf("port %d still open after shutdown", p)
		}
	}
}

// requireDev skips under -short (the test builds and runs the binary with
// an embedded Temporal server) and when varnishd is missing (failing
// under CI=true instead).
func requireDev(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary with embedded Temporal and varnishd: skipped under -short")
	}
	if _, err := exec.LookPath("varnishd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("varnishd is not installed (CI=true): run `make deps`")
		}
		t.Skip("varnishd not installed; `make deps` installs it")
	}
}

// freePortBlock finds n consecutive free loopback ports and returns the
// first: the embedded Temporal server takes --temporal-port and the four
// after it.
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	p, err := freeport.Block("127.0.0.1", n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `cdnflow dev` from an empty directory: no deployments/ next to it, so
// the built-in edge inventory is used and the data (SQLite store, edge
// secrets) lands in ./.cdnflow. SIGTERM stops it with exit 0, and the
// stop is quiet: API and worker stop before the embedded server, so no
// "Failed to poll" or "connection refused" warnings follow the signal.
func TestDevFromEmptyDirectory(t *testing.T) {
	requireDev(t)
	bin := buildBinary(t)
	// `cdnflow version` prints the module version `go version -m` reads.
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	mod, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	var modVersion string
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/cdnflow/cdnflow" {
			modVersion = f[2]
		}
	}
	if modVersion == "" || !strings.HasPrefix(string(out), "cdnflow "+modVersion) {
		t.Errorf("version printed %q, module version %q", out, modVersion)
	}

	dir := t.TempDir()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePortBlock(t, 1))
	cmd := exec.Command(bin, "dev",
		"--api-addr", apiAddr,
		"--temporal-port", fmt.Sprint(freePortBlock(t, 5)),
		"--ui-port", "-1",
		"--default-origin", fmt.Sprintf("127.0.0.1:%d", freePortBlock(t, 1)),
	)
	cmd.Dir = dir
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dev: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			t.Logf("dev killed at cleanup: %v", <-exited)
		}
	})
	ready := func() bool {
		resp, err := http.Get("http://" + apiAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !ready() {
		select {
		case err := <-exited:
			t.Fatalf("dev exited early: %v\n%s", err, stderr)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev not ready:\n%s", stderr)
		}
	}
	for _, f := range []string{".cdnflow/temporal.db", ".cdnflow/edges/ATL56-C1.secret"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data not under ./.cdnflow: %v", err)
		}
	}

	before := len(stderr.String())
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("dev exit: %v\n%s", err, stderr)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("dev did not stop on SIGTERM:\n%s", stderr)
	}
	after := stderr.String()[before:]
	// A part stopped before the ones using it shows as refused connections
	// or failed polls. A poll the worker's own stop cancels ("context
	// canceled") is the stop itself, not such an order.
	for _, line := range strings.Split(after, "\n") {
		for _, noise := range []string{"Failed to poll", "connection refused"} {
			if strings.Contains(line, noise) && !strings.Contains(line, "context canceled") {
				t.Errorf("%q logged after the stop signal:\n%s", noise, after)
			}
		}
	}
}
