package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process of the cluster: how to start it and how to tell it
// is ready. Its pid is in <Dir>/run/<name>.pid, its output appended to
// <Dir>/logs/<name>.log.
type proc struct {
	name string
	argv []string
	env  []string
	// envf adds variables computed at each spawn (secrets made by an
	// earlier step); nil: none.
	envf func() ([]string, error)
	// cred runs the process as another user (PostgreSQL as postgres when
	// the cluster is started by root); nil: as the caller.
	cred *syscall.Credential
	// ready returns nil once the process serves; nil func: started is ready.
	ready func(ctx context.Context) error
	// dir is the working directory (default: the cluster directory).
	dir string
	// prepare runs before each spawn (files the process reads); nil: none.
	prepare func() error
}

func (c *Cluster) pidFile(name string) string { return filepath.Join(c.opts.Dir, "run", name+".pid") }
func (c *Cluster) logFile(name string) string { return filepath.Join(c.opts.Dir, "logs", name+".log") }

// LogFile is the path of the named process's log.
func (c *Cluster) LogFile(name string) string { return c.logFile(name) }

// pid returns the pid of the named process when it runs, else 0. A pidfile
// whose process is gone, a zombie or another program (the pid reused after
// a reboot) is stale. The pidfile holds the pid, then the program's path.
func (c *Cluster) pid(name string) int {
	data, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0
	}
	first, program, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	if !processRuns(pid) || (program != "" && !runsProgram(pid, program)) {
		return 0
	}
	return pid
}

// runsProgram tells whether pid executes program (a binary rebuilt while
// it runs still counts).
func runsProgram(pid int, program string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return true // not ours to read: trust the pidfile
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	want, err := filepath.EvalSymlinks(program)
	if err != nil {
		want = program
	}
	return exe == want || exe == program
}

// processRuns tells whether pid is a live (not zombie) process.
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// start launches p in its own session (it outlives `cdnflow cluster up`),
// records its pid and waits for it to be ready. A process already
// running is only checked for readiness.
func (c *Cluster) start(ctx context.Context, p proc) error {
	if pid := c.pid(p.name); pid != 0 {
		c.opts.Logf("%s runs (pid %d)", p.name, pid)
	} else {
		c.opts.Logf("starting %s", p.name)
		if p.prepare != nil {
			if err := p.prepare(); err != nil {
				return err
			}
		}
		if err := c.spawn(p); err != nil {
			return err
		}
	}
	if p.ready == nil {
		return nil
	}
	return c.waitReady(ctx, p)
}

func (c *Cluster) spawn(p proc) error {
	for _, d := range []string{"run", "logs"} {
		if err := os.MkdirAll(filepath.Join(c.opts.Dir, d), 0o755); err != nil {
			return fmt.Errorf("cluster dir: %w", err)
		}
	}
	logf, err := os.OpenFile(c.logFile(p.name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	// The started process keeps its own descriptor; this one only writes the header.
	defer func() { _ = logf.Close() }()
	if _, err := fmt.Fprintf(logf, "=== %s start %s: %s\n", p.name, time.Now().UTC().Format(time.RFC3339), strings.Join(p.argv, " ")); err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	if p.envf != nil {
		more, err := p.envf()
		if err != nil {
			return fmt.Errorf("%s environment: %w", p.name, err)
		}
		cmd.Env = append(cmd.Env, more...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.opts.Dir
	if p.dir != "" {
		cmd.Dir = p.dir
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	// Reap it when it ends while this process still runs (tests); after
	// `cluster up` exits, init does.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(c.pidFile(p.name), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"+cmd.Path+"\n"), 0o644); err != nil {
		return fmt.Errorf("%s pidfile: %w", p.name, err)
	}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, p proc) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	var last error
	for {
		if c.pid(p.name) == 0 {
			return fmt.Errorf("%s exited during start-up (log %s):\n%s", p.name, c.logFile(p.name), tail(c.logFile(p.name), 20))
		}
		if last = p.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s: %w (log %s):\n%s", p.name, c.opts.ReadyTimeout, last, c.logFile(p.name), tail(c.logFile(p.name), 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// signal sends sig to the named process's session (its children too:
// varnishd's cache child, postgres's backends) and waits up to wait for it
// to end, then SIGKILLs it. A process not running is a no-op.
func (c *Cluster) signal(name string, sig syscall.Signal, wait time.Duration) error {
	pid := c.pid(name)
	if pid == 0 {
		_ = os.Remove(c.pidFile(name))
		return nil
	}
	// The leader first: postgres and varnishd's manager stop their own
	// children in order on SIGINT/SIGTERM.
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (%d): %w", name, pid, err)
	}
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(wait)
	for processRuns(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processRuns(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; processRuns(pid) && i < 250; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// What is left of the session (a cache child) goes too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = os.Remove(c.pidFile(name))
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(data), n)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
