// Package varnishd starts and stops local Varnish edges as child processes,
// for `cdnflow dev` and the integration tests.
package varnishd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/varnishadm"
)

// ErrNotInstalled means there is no varnishd binary.
var ErrNotInstalled = errors.New(`varnishd not found: install it with "sudo apt-get install -y varnish varnish-modules"`)

// Defaults for Options fields left zero.
const (
	DefaultStorageMB    = 256
	DefaultReadyTimeout = 10 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// outputCap bounds the varnishd output kept for error messages.
	outputCap = 64 << 10
)

// EdgeParams are the varnishd parameters every cdnflow edge runs with
// (Start applies them; Options.Params override one by name), set so the
// origin answers cdnflow promises to serve fit: 16 KiB of origin response
// headers (long Surrogate-Key lists) with room to spare. Varnish 7.1's
// defaults (varnishd(1) "Run-time parameters") would answer 503 beyond 8
// KiB in one header line or 32 KiB in all. The connector refuses, with its
// cause, an answer beyond connector.MaxOriginHeaderLine or
// connector.MaxOriginHeaderBytes, both below these (docs/operations.md,
// "Edge limits").
//
//   - http_resp_hdr_len 32k: one origin header line (default 8k);
//   - http_resp_size 64k: the origin's status line and headers (default
//     32k), read into workspace_backend;
//   - workspace_backend 512k: the response headers, plus the xkey header
//     vcl_backend_response derives from Surrogate-Key (each key prefixed
//     with the client host: 16 KiB of keys under a 48-byte host make
//     150 KiB), plus VCL's own strings (default 96k);
//   - http_req_hdr_len 16k and http_req_size 64k: a visitor's header
//     line (long Cookie or Referer) and all its headers (defaults 8k,
//     32k);
//   - workspace_client 256k: the visitor's request and the delivered
//     object's headers (default 96k);
//   - pcre2_match_limit 1000000: the steps one regex match may take
//     (default 10000). Varnish 7.1 fails a request whose match runs out
//     (503 "VCL failed"); referrer patterns the API admits
//     (vcl.CheckReferrerPattern) against a Referer of up to
//     vcl.MaxReferrerLen bytes stay below it
//     (edge/vcl TestReferrerRulesNeverAnswer503 fails at the default).
var EdgeParams = map[string]string{
	"http_resp_hdr_len": "32k",
	"http_resp_size":    "64k",
	"workspace_backend": "512k",
	"http_req_hdr_len":  "16k",
	"http_req_size":     "64k",
	"workspace_client":  "256k",
	"pcre2_match_limit": "1000000",
}

// Options describe one edge process.
type Options struct {
	// Name is the edge id; varnishd reports it as server.identity (-i).
	Name string
	// WorkDir is varnishd's -n directory; created if missing and made
	// absolute. The initial VCL is written there too.
	WorkDir    string
	ListenAddr string
	AdminAddr  string
	// SecretFile is the CLI secret (-S); created with random content and
	// mode 0600 if absent.
	SecretFile string
	// VCL is the initial configuration source.
	VCL string
	// VCLName names the initial VCL; empty: varnishd's "boot". cdnflow
	// passes varnishadm.ManagedName(VCL), the name its edge sync gives
	// the same source, so a fresh edge is not taken for drift.
	VCLName string
	// StorageMB sizes the malloc storage (default DefaultStorageMB).
	StorageMB int
	// Params are extra -p name=value runtime parameters, on top of (and
	// overriding by name) EdgeParams.
	Params map[string]string
	// ReadyTimeout bounds the wait for the admin and HTTP ports
	// (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	Logger       *zap.Logger
}

// Process is a running varnishd.
type Process struct {
	opts Options
	pid  int
	done chan struct{}
	err  error // set before done is closed
	out  *outputLog
}

// Binary returns the varnishd path or ErrNotInstalled. Debian installs it
// in /usr/sbin, which is not on every user's PATH.
func Binary() (string, error) {
	if p, err := exec.LookPath("varnishd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/varnishd", "/usr/local/sbin/varnishd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Start launches varnishd in the foreground (-F) as a child process and
// waits until its admin port answers ping with the cache child running and
// its HTTP port accepts connections. On failure the process is stopped and
// the error includes what varnishd printed.
func Start(ctx context.Context, o Options) (*Process, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.StorageMB <= 0 {
		o.StorageMB = DefaultStorageMB
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.ListenAddr == "" || o.AdminAddr == "" || o.WorkDir == "" {
		return nil, errors.New("varnishd: WorkDir, ListenAddr and AdminAddr are required")
	}
	if o.WorkDir, err = filepath.Abs(o.WorkDir); err != nil {
		return nil, fmt.Errorf("varnishd workdir: %w", err)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("create varnishd workdir: %w", err)
	}
	// varnishd runs inside its -n directory, so a relative -S path (as in
	// the dev inventory) would point somewhere else.
	if o.SecretFile != "" {
		if o.SecretFile, err = filepath.Abs(o.SecretFile); err != nil {
			return nil, fmt.Errorf("secret file: %w", err)
		}
	}
	if err := EnsureSecret(o.SecretFile); err != nil {
		return nil, err
	}
	a, err := bootArgs(o)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, a...)
	p := &Process{opts: o, done: make(chan struct{}), out: &outputLog{logger: o.Logger}}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	// The cache child inherits the output pipe; do not hang on it if the
	// manager is killed first.
	cmd.WaitDelay = 2 * time.Second
	// Own process group: a Ctrl-C in cdnflow's terminal lets cdnflow stop
	// its edges in order. Pdeathsig stops them if cdnflow dies instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the OS thread that forked the child exits,
		// not the process: keep this thread until varnishd is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		p.out.flush()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start varnishd %s: %w", o.Name, err)
	}
	if err := p.waitReady(ctx); err != nil {
		_ = p.Stop(context.Background())
		return nil, fmt.Errorf("varnishd %s not ready: %w\nvarnishd output:\n%s", o.Name, err, p.Output())
	}
	return p, nil
}

// bootArgs writes the boot VCL into the work directory and returns
// varnishd's arguments that load it: under "boot" with -f, or, when
// o.VCLName is set, under that name through a CLI command file (-I) with an
// empty -f, so the child starts with it active.
func bootArgs(o Options) ([]string, error) {
	vclPath := filepath.Join(o.WorkDir, "boot.vcl")
	if err := os.WriteFile(vclPath, []byte(o.VCL), 0o600); err != nil {
		return nil, fmt.Errorf("write boot vcl: %w", err)
	}
	if o.VCLName == "" {
		return args(o, vclPath), nil
	}
	cli := filepath.Join(o.WorkDir, "boot.cli")
	cmds := fmt.Sprintf("vcl.load %s %s\nvcl.use %s\n", o.VCLName, vclPath, o.VCLName)
	if err := os.WriteFile(cli, []byte(cmds), 0o644); err != nil {
		return nil, fmt.Errorf("write boot cli: %w", err)
	}
	return append(args(o, ""), "-I", cli), nil
}

func args(o Options, vclPath string) []string {
	a := []string{
		"-F",
		"-n", o.WorkDir,
		"-a", o.ListenAddr,
		"-T", o.AdminAddr,
		"-S", o.SecretFile,
		"-f", vclPath,
		"-s", "malloc," + strconv.Itoa(o.StorageMB) + "m",
	}
	if o.Name != "" {
		a = append(a, "-i", o.Name)
	}
	if os.Geteuid() == 0 {
		// As root varnishd drops to its own users, which cannot read files
		// in a caller's private temp dir.
		a = append(a, "-j", "none")
	}
	params := make(map[string]string, len(EdgeParams)+len(o.Params))
	for k, v := range EdgeParams {
		params[k] = v
	}
	for k, v := range o.Params {
		params[k] = v
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names) // stable command lines in logs
	for _, k := range names {
		a = append(a, "-p", k+"="+params[k])
	}
	return a
}

func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("varnishd exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %v)", ctx.Err(), last)
		case <-tick.C:
		}
		if last = p.check(ctx); last == nil {
			return nil
		}
	}
}

func (p *Process) check(ctx context.Context) error {
	conn, err := varnishadm.DialSecretFile(ctx, p.opts.AdminAddr, p.opts.SecretFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }() // a readiness check: its answers are what count
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	// The manager answers before the cache child serves HTTP.
	st, err := conn.Do(ctx, "status")
	if err != nil {
		return err
	}
	if !strings.Contains(st, "running") {
		return fmt.Errorf("child %s", strings.TrimSpace(st))
	}
	hc, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", p.opts.ListenAddr)
	if err != nil {
		return err
	}
	return hc.Close()
}

// Stop sends SIGTERM, waits up to a grace period (or until ctx ends), then
// SIGKILLs the process group, and returns once varnishd is reaped. The
// work directory and secret file are left in place.
func (p *Process) Stop(ctx context.Context) error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	// Negative pid: the whole group, including a cache child or compiler.
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill varnishd %s: %w", p.opts.Name, err)
	}
	<-p.done
	return nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Options returns what the process was started with (defaults filled in).
func (p *Process) Options() Options { return p.opts }

// Output is what varnishd printed so far (the first 64 KiB).
func (p *Process) Output() string { return p.out.String() }

// EnsureSecret creates a CLI secret file with random content (mode 0600)
// unless one exists.
func EnsureSecret(path string) error {
	if path == "" {
		return errors.New("varnishd: secret file path is required")
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create secret dir: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // created concurrently: use it
			return nil
		}
		return fmt.Errorf("create secret %s: %w", path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(buf) + "\n"); err != nil {
		_ = f.Close() // the write's error is the one to report
		return fmt.Errorf("write secret %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secret %s: %w", path, err)
	}
	return nil
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago. Another process may take it before it is used; callers retry.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	return addr, nil
}

// outputLog forwards varnishd's output to the logger line by line and keeps
// the beginning for error messages.
type outputLog struct {
	logger  *zap.Logger
	mu      sync.Mutex
	partial []byte
	kept    bytes.Buffer
}

func (w *outputLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := outputCap - w.kept.Len(); room > 0 {
		w.kept.Write(b[:min(room, len(b))])
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.log(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *outputLog) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.log(string(w.partial))
		w.partial = nil
	}
}

func (w *outputLog) log(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	switch {
	case strings.HasPrefix(line, "Debug:"):
		w.logger.Debug("varnishd", zap.String("line", line))
	case strings.HasPrefix(line, "Error:"):
		w.logger.Warn("varnishd", zap.String("line", line))
	default:
		w.logger.Info("varnishd", zap.String("line", line))
	}
}

func (w *outputLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kept.String()
}
