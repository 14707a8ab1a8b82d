// Package varnishd starts and stops local Varnish edges as child processes,
// for `cdnflow dev` and the integration tests.
package varnishd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/varnishadm"
)

// ErrNotInstalled means there is no varnishd on PATH.
var ErrNotInstalled = errors.New(`varnishd not found: install it with "sudo apt-get install -y varnish varnish-modules" (or run "make deps")`)

// Options describe one edge process.
type Options struct {
	// Name is the edge id; varnishd reports it as server.identity (-i).
	Name string
	// WorkDir is varnishd's -n directory; created if missing.
	WorkDir    string
	ListenAddr string
	AdminAddr  string
	// SecretFile is the CLI secret (-S); created with random bytes if absent.
	SecretFile string
	// VCL is the initial configuration.
	VCL       string
	StorageMB int
	Params    map[string]string
	Logger    *zap.Logger
}

// Process is a running varnishd.
type Process struct {
	opts   Options
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	mu     sync.Mutex
	output strings.Builder
}

// Binary returns the varnishd path or ErrNotInstalled.
func Binary() (string, error) {
	p, err := exec.LookPath("varnishd")
	if err != nil {
		for _, c := range []string{"/usr/sbin/varnishd", "/usr/local/sbin/varnishd"} {
			if _, statErr := os.Stat(c); statErr == nil {
				return c, nil
			}
		}
		return "", ErrNotInstalled
	}
	return p, nil
}

// Start launches varnishd in the foreground as a child and waits until both
// its admin and HTTP ports answer.
func Start(ctx context.Context, o Options) (*Process, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.StorageMB == 0 {
		o.StorageMB = 256
	}
	if o.WorkDir, err = filepath.Abs(o.WorkDir); err != nil {
		return nil, fmt.Errorf("workdir: %w", err)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("create workdir: %w", err)
	}
	if err := ensureSecret(o.SecretFile); err != nil {
		return nil, err
	}
	vclPath := filepath.Join(o.WorkDir, "boot.vcl")
	if err := os.WriteFile(vclPath, []byte(o.VCL), 0o644); err != nil {
		return nil, fmt.Errorf("write vcl: %w", err)
	}
	args := []string{
		"-F",
		"-n", o.WorkDir,
		"-a", o.ListenAddr,
		"-T", o.AdminAddr,
		"-S", o.SecretFile,
		"-f", vclPath,
		"-s", fmt.Sprintf("malloc,%dm", o.StorageMB),
		// Bans are evaluated by the lurker soon after they are added, so
		// ban lists stay short on busy test and dev edges.
		"-p", "ban_lurker_sleep=0.01",
		"-p", "ban_lurker_age=0",
	}
	if o.Name != "" {
		args = append(args, "-i", o.Name)
	}
	if os.Geteuid() == 0 {
		// As root varnishd would drop to its own users, which cannot read
		// files in a caller's temp dir; no jail keeps everything readable.
		args = append(args, "-j", "none")
	}
	for k, v := range o.Params {
		args = append(args, "-p", k+"="+v)
	}
	cmd := exec.Command(bin, args...)
	// Own process group: a Ctrl-C in the terminal reaches cdnflow, which
	// then stops its edges in order instead of all dying at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p := &Process{opts: o, cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("varnishd stdout: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start varnishd: %w", err)
	}
	go p.pump(stdout)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 20*time.Second); err != nil {
		_ = p.Stop(context.Background())
		return nil, fmt.Errorf("varnishd %s not ready: %w\n%s", o.Name, err, p.Output())
	}
	return p, nil
}

func (p *Process) pump(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if p.output.Len() < 64<<10 {
			p.output.WriteString(line + "\n")
		}
		p.mu.Unlock()
		p.opts.Logger.Debug("varnishd", zap.String("line", line))
	}
}

// Output is what varnishd printed so far (capped).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Options returns what the process was started with.
func (p *Process) Options() Options { return p.opts }

func (p *Process) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("varnishd exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
		conn, err := varnishadm.DialSecretFile(ctx, p.opts.AdminAddr, p.opts.SecretFile)
		if err != nil {
			last = err
			continue
		}
		err = conn.Ping(ctx)
		if err == nil {
			// The child (cache process) answers HTTP only once it runs.
			var st string
			st, err = conn.Do(ctx, "status")
			if err == nil && !strings.Contains(st, "running") {
				err = fmt.Errorf("child %s", strings.TrimSpace(st))
			}
		}
		conn.Close()
		if err != nil {
			last = err
			continue
		}
		hc, err := net.DialTimeout("tcp", p.opts.ListenAddr, time.Second)
		if err != nil {
			last = err
			continue
		}
		hc.Close()
		return nil
	}
}

// Stop terminates varnishd (SIGTERM, then SIGKILL after a grace period) and
// waits until it is reaped.
func (p *Process) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	grace := time.NewTimer(5 * time.Second)
	defer grace.Stop()
	select {
	case <-p.done:
	case <-grace.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	case <-ctx.Done():
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
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

func ensureSecret(path string) error {
	if path == "" {
		return errors.New("secret file path is required")
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("secret dir: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(buf)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}

// FreeLoopbackAddr returns a 127.0.0.1 address with a port free right now.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
