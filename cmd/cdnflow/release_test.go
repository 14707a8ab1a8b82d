//go:build !unit

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/workflows"
)

// ptyOutput collects what the command wrote to its terminal.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *ptyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// The release CLI runs in a pseudo-terminal (github.com/creack/pty), so
// it draws its bar as on a developer's terminal, while the worker process
// is killed with SIGKILL in the middle of the release's prewarm and
// started again. The release must end SUCCEEDED with every URL a HIT on
// every edge, the CLI must have followed it to its end (exit 0) showing
// the rate and the time left, and the release's purge seqs are listed by
// the NHN list as any purge.
func TestReleaseSurvivesWorkerKillFollowedInATerminal(t *testing.T) {
	env, a, w, originHost, originPort := crashEnv(t)
	domain := a.createDistribution(originHost, originPort)
	dir := t.TempDir()
	var paths []string
	for i := range 600 {
		paths = append(paths, fmt.Sprintf("/rel-crash/%d.css", i))
	}
	list := filepath.Join(dir, "paths.txt")
	if err := os.WriteFile(list, []byte(strings.Join(paths, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(w.bin, "release", "--api", a.base, "--app-key", crashAppKey, "--domain", domain,
		"--purge-list", list, "--urls-file", list, "--idempotency-key", "pipeline-run-7", "--interval", "200ms")
	cmd.Env = append(os.Environ(), "TERM=xterm", "CDNFLOW_API_KEY=")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tty.Close() }()
	out := &ptyOutput{}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(out, tty); close(copied) }() // ends with EIO when the command exits
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fetched := env.Origin.Requests()
	id := releaseIDFrom(t, out)
	a.waitReleasePrewarming(id, func() int64 { return env.Origin.Requests() - fetched })
	w.requireAlive()
	w.kill()
	time.Sleep(crashHeartbeat)
	w.start()

	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("cdnflow release exited %d; terminal:\n%s", code, out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("cdnflow release still running; terminal:\n%s", out)
	}
	// What the command wrote last may still be in the terminal's buffer
	// when it has exited: read to the end first.
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
	}
	screen := out.String()
	t.Logf("terminal (last 600 bytes):\n%s", screen[max(0, len(screen)-600):])
	// progressbar/v3 draws "(done/total, N units/s) [elapsed:left]".
	rate := regexp.MustCompile(`\(\d+/\d+, [1-9]\d* units/s\)`)
	eta := regexp.MustCompile(`\[[0-9hms]+:[0-9hms]*[1-9][0-9hms]*\]`)
	if !rate.MatchString(screen) || !eta.MatchString(screen) || !strings.Contains(screen, "SUCCEEDED") {
		t.Fatalf("the terminal shows no rate, no time left or no outcome:\n%s", screen)
	}
	var st workflows.ReleaseStatus
	if code, body := a.do("GET", "/v1/releases/"+id, "", nil, &st); code != 200 || st.State != workflows.ReleaseSucceeded {
		t.Fatalf("release %s = %d %s", id, code, body)
	}
	if v := st.Step(workflows.StepVerify); v.Done != len(paths)*len(env.Edges) {
		t.Fatalf("verify step: %+v", v)
	}
	for _, e := range env.Edges {
		for _, p := range paths {
			if code, xc, _ := edgeGet(t, e.Edge.Address, domain, p); code != 200 || xc != "HIT" {
				t.Fatalf("%s%s on %s after the release: %d %s", domain, p, e.Edge.ID, code, xc)
			}
		}
	}
}

// releaseIDFrom waits for the CLI's "release ID started" line.
func releaseIDFrom(t *testing.T, out *ptyOutput) string {
	t.Helper()
	re := regexp.MustCompile(`release ([0-9a-f-]{36}) started`)
	var id string
	eventually.WithinEvery(t, time.Minute, 50*time.Millisecond, func() error {
		m := re.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("no release started yet; terminal:\n%s", out)
		}
		id = m[1]
		return nil
	})
	return id
}

// waitReleasePrewarming waits until the release's prewarm step runs, the
// origin served some of its GETs (fetched) and not every pair is done: the
// moment to kill the worker.
func (a api) waitReleasePrewarming(id string, fetched func() int64) {
	a.t.Helper()
	eventually.WithinEvery(a.t, time.Minute, 20*time.Millisecond, func() error {
		var st workflows.ReleaseStatus
		if code, body := a.do("GET", "/v1/releases/"+id, "", nil, &st); code != 200 {
			return fmt.Errorf("GET release = %d %s", code, body)
		}
		if p := st.Step(workflows.StepPrewarm); p.State != workflows.StepRunning || fetched() < 100 || p.Done >= p.Total {
			return fmt.Errorf("prewarm step %s %d/%d, origin served %d", p.State, p.Done, p.Total, fetched())
		}
		return nil
	})
}
