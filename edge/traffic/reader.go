package traffic

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Format is the varnishncsa -F line the Reader parses, tab-separated:
// method, Host, handling (hit, miss, pass, pipe, synth: Varnish's
// %{Varnish:handling}x), status, body bytes ("-" for none), time to
// first byte in seconds, and the TTL left on the object of a hit (field
// 2 of the VSL Hit record; negative: a grace hit, "-" when no hit),
// and the control plane's fetch marker (X-Cdnflow-Fetch, edge.FetchMarkerHeader,
// "-" when absent) (varnishncsa(1), vsl(7) "Hit").
const Format = `%m	%{Host}i	%{Varnish:handling}x	%s	%b	%{Varnish:time_firstbyte}x	%{VSL:Hit[2]}x	%{X-Cdnflow-Fetch}i`

// adminHost is the Host of the control plane's site table and traffic
// requests (edge/sites.go): not client traffic.
const adminHost = "edge-admin.cdnflow"

// Parse reads one Format line; ok is false for lines that are not client
// GET or HEAD requests (control requests: PURGE, BAN, the admin protocol,
// and the control plane's own GETs, prewarm and the rollout health gate,
// marked with X-Cdnflow-Fetch) or are malformed.
func Parse(line string) (Sample, bool) {
	f := strings.Split(line, "\t")
	if len(f) != 8 || (f[0] != "GET" && f[0] != "HEAD") || f[7] != "-" {
		return Sample{}, false
	}
	host := strings.ToLower(f[1])
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(h, "]") {
		host = h
	}
	if host == adminHost {
		return Sample{}, false
	}
	status, err := strconv.Atoi(f[3])
	if err != nil {
		return Sample{}, false
	}
	s := Sample{Host: host, Status: status}
	s.Bytes, _ = strconv.ParseInt(f[4], 10, 64) // "-": no body
	switch f[2] {
	case "hit":
		s.Class = ClassHit
		if ttl, err := strconv.ParseFloat(f[6], 64); err == nil && ttl < 0 {
			s.Class = ClassStale
		}
	case "miss":
		s.Class = ClassMiss
	case "pass":
		s.Class = ClassPass
	default:
		s.Class = ClassSynth
	}
	if s.Class == ClassMiss || s.Class == ClassPass {
		if sec, err := strconv.ParseFloat(f[5], 64); err == nil && sec > 0 {
			s.Origin = time.Duration(sec * float64(time.Second))
		}
	}
	return s, true
}

// readerNice is the scheduling priority (nice) of varnishncsa.
const readerNice = 10

// Reader feeds an Aggregator from one edge's request log: it runs
// `varnishncsa -n WorkDir -F Format` and restarts it (after a second)
// whenever it exits, so a varnishd started later or restarted is
// followed.
type Reader struct {
	// WorkDir is the edge's varnishd -n directory.
	WorkDir string
	// Binary is the varnishncsa path; "" looks it up in PATH.
	Binary string
	Agg    *Aggregator
	Logger *zap.Logger
	// ForgetEvery is how often idle distributions are forgotten
	// (Aggregator.Forget), on its own ticker while varnishncsa runs;
	// 0: an hour.
	ForgetEvery time.Duration
}

// Run reads until ctx ends. It fails at once only when varnishncsa is
// not installed.
func (r *Reader) Run(ctx context.Context) error {
	bin := r.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("varnishncsa"); err != nil {
			return fmt.Errorf("traffic: varnishncsa (Debian package varnish): %w", err)
		}
	}
	log := r.Logger
	if log == nil {
		log = zap.NewNop()
	}
	forgot := make(chan struct{})
	go func() {
		defer close(forgot)
		r.forget(ctx)
	}()
	defer func() { <-forgot }()
	for ctx.Err() == nil {
		if err := r.readOnce(ctx, bin); err != nil && ctx.Err() == nil {
			log.Warn("edge request log reader stopped; restarting", zap.String("workDir", r.WorkDir), zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// forget drops idle distributions every ForgetEvery until ctx ends,
// whether or not varnishncsa is running.
func (r *Reader) forget(ctx context.Context) {
	every := r.ForgetEvery
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Agg.Forget()
		}
	}
}

// readOnce runs one varnishncsa until it exits or ctx ends.
func (r *Reader) readOnce(ctx context.Context, bin string) error {
	// -t off: wait for varnishd's shared memory instead of giving up.
	cmd := exec.CommandContext(ctx, bin, "-n", r.WorkDir, "-t", "off", "-F", Format)
	// A connector that dies leaves no reader behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("varnishncsa: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{b: &stderr, n: 4096}
	started, scanned := make(chan error, 1), make(chan error, 1)
	go func() {
		// One thread forks varnishncsa (Pdeathsig follows the forking
		// thread, not the process), then parses and counts its lines;
		// the goroutine ends locked, so the thread ends with the scan.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		// Serving comes first: under CPU contention the reader yields to
		// varnishd (the shared memory log is a ring; a reader that falls
		// too far behind skips ahead, it never slows the edge).
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, readerNice)
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), readerNice)
		scanned <- r.scan(out)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start varnishncsa: %w", err)
	}
	if <-scanned != nil {
		_ = cmd.Process.Kill() // a line past 64 KiB: start over
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("varnishncsa: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// scan counts every Format line of out into the Aggregator.
func (r *Reader) scan(out io.Reader) error {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if s, ok := Parse(sc.Text()); ok {
			r.Agg.Add(s)
		}
	}
	return sc.Err()
}

// limitedWriter keeps the first n bytes written.
type limitedWriter struct {
	b *strings.Builder
	n int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.n - w.b.Len(); room > 0 {
		w.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
