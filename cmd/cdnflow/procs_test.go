//go:build !unit

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// buildBinary builds cdnflow once per test into its temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	bin := filepath.Join(t.TempDir(), "cdnflow")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

// workerProc is a `cdnflow worker` child process of a test.
type workerProc struct {
	t    *testing.T
	bin  string
	args []string
	logs string // log file of all runs, appended

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	runs   int
}

// startWorkerProc runs the real worker binary against env's embedded
// Temporal, inventory and payload store.
func startWorkerProc(t *testing.T, bin string, env *testenv.Env, extra ...string) *workerProc {
	t.Helper()
	dir := t.TempDir()
	invFile := filepath.Join(dir, "edges.json")
	inv, _ := json.Marshal(env.Inventory)
	if err := os.WriteFile(invFile, inv, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"worker",
		"--temporal-address", env.Config.TemporalAddress,
		"--namespace", env.Config.Namespace,
		"--edges", invFile,
		"--data-dir", env.Config.DataDir,
		"--payload-url", env.Config.PayloadStoreURL(),
		"--payload-key-file", env.Config.PayloadKeyFile, // the key ring of the env's API and workers
		"--heartbeat-timeout", env.Config.HeartbeatTimeout.String(),
		"--default-origin", env.Config.DefaultOrigin,
		"--allow-private-callbacks",
		"--origin-allow-loopback", strings.Join(env.Config.OriginAllowLoopback, ","),
		"--log-format", "json", "--log-level", "info",
	}
	w := &workerProc{t: t, bin: bin, args: append(args, extra...), logs: filepath.Join(dir, "worker.log")}
	w.start()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			data, _ := os.ReadFile(w.logs)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("worker log tail:\n%s", strings.Join(lines, "\n"))
		}
	})
	return w
}

func (w *workerProc) start() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.logs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	w.runs++
	if _, err := fmt.Fprintf(f, "=== worker run %d\n", w.runs); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.bin, w.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close() // the start error is the one to report
		w.t.Fatalf("start worker: %v", err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		_ = f.Close() // the process has exited: nothing writes the log any more
	}()
	w.cmd, w.exited = cmd, exited
}

// requireAlive fails the test unless the current worker process is still
// running (it did not crash or exit on its own).
func (w *workerProc) requireAlive() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil {
		w.t.Fatal("no worker process is running")
	}
	select {
	case err := <-w.exited:
		w.cmd = nil
		w.t.Fatalf("worker run %d exited on its own: %v", w.runs, err)
	default:
	}
}

// kill is kill -9: no drain, no last heartbeat, no clean gRPC close.
func (w *workerProc) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	w.t.Logf("worker run %d killed: %v", w.runs, <-w.exited)
	w.cmd = nil
}

// terminate sends SIGTERM and returns how long the process took to exit
// and its exit error.
func (w *workerProc) terminate(timeout time.Duration) (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.exited:
		w.cmd = nil
		return time.Since(start), err
	case <-time.After(timeout):
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		killed := <-w.exited
		w.cmd = nil
		return time.Since(start), fmt.Errorf("worker did not exit within %s of SIGTERM (then killed: %v)", timeout, killed)
	}
}

// api is a small client of the test's HTTP API.
type api struct {
	t       *testing.T
	base    string
	appKey  string
	secret  string
	timeout time.Duration
}

func (a api) do(method, path, auth string, body any, out any) (int, []byte) {
	a.t.Helper()
	var rdr io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rdr = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, a.base+path, rdr)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s = %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode, data
}

type nhnEnvelope struct {
	Header struct {
		IsSuccessful  bool   `json:"isSuccessful"`
		ResultCode    int    `json:"resultCode"`
		ResultMessage string `json:"resultMessage"`
	} `json:"header"`
}

// nhn calls a /v1.5 route of the test's appKey and fails on a rejection.
func (a api) nhn(method, path string, body any, out any) {
	a.t.Helper()
	var env nhnEnvelope
	_, data := a.do(method, "/v1.5/appKeys/"+a.appKey+path, a.secret, body, &env)
	if !env.Header.IsSuccessful {
		a.t.Fatalf("%s %s: %s", method, path, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatal(err)
		}
	}
}

// nhnRetried is nhn for a request a pipeline sends again when it is
// refused with "nothing started, retry": 30001 (rate limited / capacity)
// or 50001 (Temporal or the workers did not answer in time, as while a
// worker is being killed). Other refusals fail the test at once.
func (a api) nhnRetried(method, path string, body any, out any) {
	a.t.Helper()
	end := time.Now().Add(a.timeout)
	for {
		var env nhnEnvelope
		_, data := a.do(method, "/v1.5/appKeys/"+a.appKey+path, a.secret, body, &env)
		if env.Header.IsSuccessful {
			if out != nil {
				if err := json.Unmarshal(data, out); err != nil {
					a.t.Fatal(err)
				}
			}
			return
		}
		retry := env.Header.ResultCode == httpapi.NHNRateLimited || env.Header.ResultCode == httpapi.NHNTemporalUnavailble
		if !retry || time.Now().After(end) {
			a.t.Fatalf("%s %s: %s", method, path, data)
		}
		a.t.Logf("%s %s refused, sent again: %s", method, path, data)
		time.Sleep(time.Second)
	}
}

func (a api) startPrewarm(body map[string]any) string {
	a.t.Helper()
	var out struct{ RequestID string }
	if code, data := a.do("POST", "/prewarm", "", body, &out); code != http.StatusOK || out.RequestID == "" {
		a.t.Fatalf("prewarm = %d %s", code, data)
	}
	return out.RequestID
}

func (a api) prewarmStatus(id string) service.PrewarmStatusResponse {
	a.t.Helper()
	var st service.PrewarmStatusResponse
	if code, data := a.do("GET", "/status?requestID="+id, "", nil, &st); code != http.StatusOK {
		a.t.Fatalf("status = %d %s", code, data)
	}
	return st
}

func (a api) waitPrewarm(id string) service.PrewarmStatusResponse {
	a.t.Helper()
	var st service.PrewarmStatusResponse
	eventually.WithinEvery(a.t, a.timeout, 200*time.Millisecond, func() error {
		st = a.prewarmStatus(id)
		if st.Status == "IN_PROGRESS" {
			return fmt.Errorf("prewarm %s still in progress: %d of %d", id, st.Completed, st.Total)
		}
		return nil
	})
	return st
}

// prewarmPairs reads every URL×edge row of a job.
func (a api) prewarmPairs(id string) []service.PairRow {
	a.t.Helper()
	var rows []service.PairRow
	for page := 1; ; page++ {
		var p service.PairPage
		if code, data := a.do("GET", fmt.Sprintf("/prewarm/%s/edges?page=%d&pageSize=5000", id, page), "", nil, &p); code != http.StatusOK {
			a.t.Fatalf("pairs = %d %s", code, data)
		}
		rows = append(rows, p.Pairs...)
		if len(p.Pairs) == 0 || len(rows) >= p.TotalPairs {
			return rows
		}
	}
}

// requireEverySucceeded checks that every URL×edge pair of a job has a
// success row, and returns the rows by "edge/URL" and how many are a cache
// HIT. The URLs of these tests are unique per job, so the first fetch of a
// pair is a MISS: a HIT row is a pair that was fetched again after a
// worker lost its outcome (done after the last recorded heartbeat, or not
// resumed at all).
func (a api) requireEverySucceeded(id string, pairs int) (byPair map[string]service.PairRow, hits int) {
	a.t.Helper()
	rows := a.prewarmPairs(id)
	if len(rows) != pairs {
		a.t.Fatalf("%d pair rows, want %d", len(rows), pairs)
	}
	byPair = map[string]service.PairRow{}
	for _, r := range rows {
		byPair[r.EdgeID+"/"+r.URL] = r
		if r.State != "success" {
			a.t.Fatalf("pair %s %s: state %s (%s)", r.EdgeID, r.URL, r.State, r.Error)
		}
		switch r.Cache {
		case "HIT":
			hits++
		case "MISS":
		default:
			a.t.Fatalf("pair %s %s: cache %q, want MISS or HIT", r.EdgeID, r.URL, r.Cache)
		}
	}
	return byPair, hits
}

// pairOutcome is one recorded pair as the prewarm activity stores it (in
// a chunk result or a heartbeat): the index is the URL's in the job.
type pairOutcome struct {
	I          int    `json:"i"`
	Status     int    `json:"status"`
	Cache      string `json:"cache"`
	Age        int    `json:"age"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"durationMs"`
	Error      string `json:"error"`
}

// sameOutcome tells whether a pair's final row is the recorded outcome
// itself, not a fetch done again (which has its own duration and cache).
func sameOutcome(o pairOutcome, r service.PairRow) bool {
	return o.Status == r.Status && o.Cache == r.Cache && o.Age == r.Age && o.Attempts == r.Attempts &&
		o.DurationMS == r.DurationMS && o.Error == r.Error
}

// recordedPairs returns the URL×edge pairs (by "edge/index") of a job
// whose outcome is durable now: in a stored chunk result (testenv's
// file:// store, <data-dir>/payloads), or in the last
// heartbeat of a chunk's pending activity (what its next attempt resumes
// from and skips).
func recordedPairs(t *testing.T, env *testenv.Env, requestID string, edgeIDs []string) map[string]pairOutcome {
	t.Helper()
	jobID := "prewarm-" + requestID
	all := map[string]pairOutcome{}
	for _, edgeID := range edgeIDs {
		done := map[int]pairOutcome{}
		files, err := filepath.Glob(filepath.Join(env.Config.DataDir, "payloads", "prewarm", jobID, "edges", edgeID, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rows []pairOutcome
			if err := json.Unmarshal(data, &rows); err != nil {
				t.Fatalf("chunk result %s: %v", f, err)
			}
			for _, r := range rows {
				done[r.I] = r
			}
		}
		for i, o := range done {
			all[fmt.Sprintf("%s/%d", edgeID, i)] = o
		}
	}
	// The job's pending chunk activities heartbeat their pairs of every
	// edge (one activity per chunk, whatever the edges).
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), jobID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return all // not started yet
	}
	if err != nil {
		t.Fatalf("describe %s: %v", jobID, err)
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetHeartbeatDetails() == nil {
			continue
		}
		rows, err := activities.HeartbeatRows(pa.GetHeartbeatDetails())
		if err != nil {
			t.Fatalf("heartbeat of %s: %v", jobID, err)
		}
		for _, r := range rows {
			all[fmt.Sprintf("%s/%d", r.Edge, r.Index)] = pairOutcome{I: r.Index, Status: r.Status, Cache: r.Cache, Age: r.Age,
				Attempts: r.Attempts, DurationMS: r.DurationMS, Error: r.Error}
		}
	}
	return all
}

// waitPurgesDone waits until n purge seqs of domain are at 100 with no
// pending edge.
func (a api) waitPurgesDone(domain string, n int) {
	a.t.Helper()
	eventually.Within(a.t, a.timeout, func() error {
		done := 0
		items := a.purges(domain)
		for _, p := range items {
			if p.Progress == 100 && len(p.PendingEdges) == 0 {
				done++
			}
		}
		if done != n {
			return fmt.Errorf("purges of %s, want %d done: %+v", domain, n, items)
		}
		return nil
	})
}

func (a api) purges(domain string) []service.PurgeItem {
	a.t.Helper()
	list, err := a.tryPurges(domain)
	if err != nil {
		a.t.Fatal(err)
	}
	return list
}

// tryPurges lists purges without failing the test (for watchers running
// outside the test goroutine).
func (a api) tryPurges(domain string) ([]service.PurgeItem, error) {
	req, _ := http.NewRequest("GET", a.base+"/v1.5/appKeys/"+a.appKey+"/purges?domain="+domain+"&itemsPerPage=1000", nil)
	req.Header.Set("Authorization", a.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		nhnEnvelope
		service.PurgeList
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	if !out.Header.IsSuccessful {
		return nil, fmt.Errorf("list purges: %+v", out.Header)
	}
	return out.Purges, nil
}

// createDistribution opens a distribution whose origin is originAddr.
func (a api) createDistribution(originHost string, originPort int) string {
	a.t.Helper()
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	a.nhn("POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": originHost, "port": originPort, "originPath": "/"}},
	}}}, &created)
	domain := created.Distributions[0].Domain
	a.waitDistribution(domain, "OPEN")
	return domain
}

func (a api) distributionStatus(domain string) string {
	a.t.Helper()
	var out struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	a.nhn("GET", "/distributions?domain="+domain, nil, &out)
	switch len(out.Distributions) {
	case 0:
		return "" // not in visibility yet
	case 1:
		return out.Distributions[0].Status
	}
	a.t.Fatalf("distribution %s: %+v", domain, out.Distributions)
	return ""
}

func (a api) waitDistribution(domain, want string) {
	a.t.Helper()
	eventually.Within(a.t, a.timeout, func() error {
		if got := a.distributionStatus(domain); got != want {
			return fmt.Errorf("distribution %s is %s, want %s", domain, got, want)
		}
		return nil
	})
}

// edgeGet fetches host+path through an edge and returns X-Cache and the
// origin path the edge fetched (for a MISS).
func edgeGet(t *testing.T, addr, host, path string) (status int, xcache, originPath string) {
	t.Helper()
	status, xcache, originPath, err := tryEdgeGet(addr, host, path)
	if err != nil {
		t.Fatal(err)
	}
	return status, xcache, originPath
}

func tryEdgeGet(addr, host, path string) (status int, xcache, originPath string, err error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", fmt.Errorf("GET %s through %s: %w", path, addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("X-Origin-Path"), nil
}
