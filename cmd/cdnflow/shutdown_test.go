//go:build !unit

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// TestWorkerSIGTERMHandsOffAndResumes stops the worker with SIGTERM in the
// middle of a prewarm. The heartbeat timeout is a minute, so nothing here
// relies on it: the worker exits 0, every running chunk records its pairs
// and fails as WorkerStopping at once, and a restarted worker resumes each
// chunk from its recorded pairs to an exact result: no pair is fetched
// twice (the URLs are new, so a pair fetched again would be a HIT row), and
// the origin served each pair exactly once.
func TestWorkerSIGTERMHandsOffAndResumes(t *testing.T) {
	env, a, w, originHost, originPort := workerEnv(t, time.Minute)
	domain := a.createDistribution(originHost, originPort)
	var edgeIDs []string
	for _, e := range env.Edges {
		edgeIDs = append(edgeIDs, e.Edge.ID)
	}
	urls := make([]string, 600)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/40/g/%d.js", domain, i)
	}
	originBase := env.Origin.Requests()
	id := a.startPrewarm(map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop", "region": edgeIDs})
	// SIGTERM once the worker has recorded pairs of every edge.
	eventually.Within(t, time.Minute, func() error {
		if got := len(recordedPairs(t, env, id, edgeIDs)); got < 3*len(edgeIDs) {
			return fmt.Errorf("%d pairs recorded", got)
		}
		return nil
	})
	w.requireAlive()
	if took, err := w.terminate(30 * time.Second); err != nil {
		t.Fatalf("worker on SIGTERM: %v (after %s)", err, took)
	}

	// With no worker running, each running chunk (one activity for every
	// edge) waits for its next attempt with the hand-off recorded: its last
	// failure and its pairs so far, of every edge.
	handedOff := 0
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), "prewarm-"+id, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetLastFailure() == nil {
			continue // not started before the stop
		}
		if typ := pa.GetLastFailure().GetApplicationFailureInfo().GetType(); typ != "WorkerStopping" {
			t.Fatalf("chunk: last failure %q (%s), want WorkerStopping", typ, pa.GetLastFailure().GetMessage())
		}
		pairs, err := activities.HeartbeatRows(pa.GetHeartbeatDetails())
		if err != nil || len(pairs) == 0 {
			t.Fatalf("no recorded pairs in the hand-off (%v)", err)
		}
		edges := map[string]bool{}
		for _, p := range pairs {
			edges[p.Edge] = true
		}
		if len(edges) != len(edgeIDs) {
			t.Fatalf("the hand-off recorded pairs of edges %v, want all of %v", edges, edgeIDs)
		}
		handedOff++
	}
	if handedOff == 0 {
		t.Fatal("no chunk was running at SIGTERM")
	}

	recorded := len(recordedPairs(t, env, id, edgeIDs))
	fetched := env.Origin.Requests() - originBase
	if recorded == 0 || int64(recorded) != fetched {
		t.Fatalf("after the hand-off %d pairs are recorded, the origin served %d: every fetched pair must be recorded", recorded, fetched)
	}

	w.start()
	st := a.waitPrewarm(id)
	if st.Status != "COMPLETED" || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("after restart: %s succeeded %d failed %d", st.Status, st.Succeeded, st.Failed)
	}
	if _, hits := a.requireEverySucceeded(id, len(urls)*len(edgeIDs)); hits != 0 {
		t.Fatalf("%d pairs were fetched again after the restart (HIT rows); %d were recorded at the hand-off: the restarted chunks did not resume from them", hits, recorded)
	}
	if got := env.Origin.Requests() - originBase; got != int64(len(urls)*len(edgeIDs)) {
		t.Fatalf("the origin served %d requests for %d pairs", got, len(urls)*len(edgeIDs))
	}
}

// TestAPISIGTERMDrainsRequests stops a `cdnflow api` process with SIGTERM
// under constant status traffic: every request it accepted is answered in
// full, later connections are refused, and the process exits 0. Requests
// whose handler is still reading a slow body at SIGTERM get their full 200
// after it: a server that closed its connections at SIGTERM fails here.
func TestAPISIGTERMDrainsRequests(t *testing.T) {
	bin := buildBinary(t)
	env := testenv.Start(t, testenv.Options{Edges: 1})
	id := func() string {
		a := api{t: t, base: env.API.URL, timeout: time.Minute}
		id := a.startPrewarm(map[string]any{"url_list": []string{"http://drain.example/a.js"}, "cf_domain": "drain.example", "target_type": "pop", "region": []string{env.Edges[0].Edge.ID}})
		a.waitPrewarm(id)
		return id
	}()
	dir := t.TempDir()
	invFile := filepath.Join(dir, "edges.json")
	data := fmt.Sprintf(`{"edges":[{"id":%q,"region":"us","country":"united_states","address":%q,"adminAddress":%q,"secretFile":%q,"kind":"varnish"}]}`,
		env.Edges[0].Edge.ID, env.Edges[0].Edge.Address, env.Edges[0].Edge.AdminAddress, env.Edges[0].Edge.SecretFile)
	if err := os.WriteFile(invFile, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "api", "--temporal-address", env.Config.TemporalAddress, "--namespace", env.Config.Namespace,
		"--edges", invFile, "--api-addr", addr, "--payload-url", env.Config.PayloadStoreURL(), "--payload-key-file", env.Config.PayloadKeyFile, "--log-format", "json", "--insecure-no-auth")
	logFile, err := os.Create(filepath.Join(dir, "api.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }() // the api has its own descriptor; the test reads the log by name
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	eventually.WithinEvery(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return fmt.Errorf("api not up: %w", err)
		}
		resp.Body.Close()
		return nil
	})

	// Requests in flight at SIGTERM: each handler is reading its body
	// (the server asked for it with 100 Continue) when the signal comes.
	const slowRequests = 4
	slow := make([]*slowRequest, slowRequests)
	for i := range slow {
		slow[i] = startSlowRequest(t, addr, fmt.Sprintf(`{"url_list":["http://drain.example/slow-%d.js"],"cf_domain":"drain.example","target_type":"pop","region":[%q]}`, i, env.Edges[0].Edge.ID))
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	var answered, refused atomic.Int64
	var sigtermSent atomic.Bool
	var bad sync.Map
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/status?requestID=" + id)
				switch {
				case err != nil && errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
				case err != nil && sigtermSent.Load() && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
					// A connection still in the kernel's accept queue when the
					// listener closes is reset before the server ever saw it:
					// not accepted, like a refused one. (Every request here is
					// a new connection.) A request the server did read and then
					// dropped would make Shutdown time out and the exit fail.
					refused.Add(1)
				case err != nil:
					bad.Store(err.Error(), true)
				default:
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"COMPLETED"`) {
						bad.Store(fmt.Sprintf("HTTP %d %s %v", resp.StatusCode, body, rerr), true)
					} else {
						answered.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	atTerm := answered.Load()
	sigtermSent.Store(true)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	// Once the listener refuses new connections the server is shutting
	// down; only then do the slow requests send the rest of their body.
	eventually.WithinEvery(t, 30*time.Second, 10*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = c.Close() // a probe: that it connected is the finding
		return errors.New("the api still accepts connections after SIGTERM")
	})
	for i, s := range slow {
		if err := s.finish(); err != nil {
			t.Errorf("request %d in flight at SIGTERM: %v", i, err)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("api exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("api did not exit on SIGTERM")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	bad.Range(func(k, _ any) bool { t.Errorf("dropped or failed request: %v", k); return true })
	if atTerm == 0 || refused.Load() == 0 {
		t.Fatalf("answered %d before SIGTERM, %d refused after: the test did not straddle the shutdown", atTerm, refused.Load())
	}
	t.Logf("%d requests answered (%d before SIGTERM), %d refused after it, none dropped", answered.Load(), atTerm, refused.Load())
}

// slowRequest is a POST /prewarm on a raw connection whose handler is
// reading the body: the request sent its headers with Expect:
// 100-continue and the server answered 100 Continue.
type slowRequest struct {
	conn net.Conn
	rd   *bufio.Reader
	body string
}

func startSlowRequest(t *testing.T, addr, body string) *slowRequest {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // the request's answer was read or failed the test
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(c, "POST /prewarm HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", addr, len(body)); err != nil {
		t.Fatalf("slow request: %v", err)
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("slow request: %q %v, want 100 Continue", line, err)
	}
	if blank, err := rd.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("slow request after 100 Continue: %q %v", blank, err)
	}
	return &slowRequest{conn: c, rd: rd, body: body}
}

// finish sends the body and reads the whole answer, which must be a 200
// with the new job's requestID.
func (s *slowRequest) finish() error {
	if _, err := io.WriteString(s.conn, s.body); err != nil {
		return fmt.Errorf("send body: %w", err)
	}
	resp, err := http.ReadResponse(s.rd, nil)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"requestID"`) {
		return fmt.Errorf("answer %d %s, want 200 with a requestID", resp.StatusCode, data)
	}
	return nil
}
