package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDev runs `cdnflow dev` with args and waits for /readyz.
func startDev(t *testing.T, bin, dir, apiAddr string, args []string, logFile string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"dev"}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dev: %v", err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + apiAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logFile)
			t.Fatalf("dev not ready:\n%s", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitClosed waits until nothing listens on addr any more.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still listening", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDevKilledAndRestartedLosesNothing kills the whole `cdnflow dev`
// process (embedded Temporal server, worker, API, managed edges) with
// SIGKILL in the middle of a 6,000-pair prewarm and a 1,000-path purge,
// restarts it on the same data directory, and checks that every job
// finishes with exact counts and the distribution is back on the
// restarted edges.
func TestDevKilledAndRestartedLosesNothing(t *testing.T) {
	if _, err := exec.LookPath("varnishd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("varnishd is not installed (CI=true): run `make deps`")
		}
		t.Skip("varnishd not installed; `make deps` installs it")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	var inv strings.Builder
	inv.WriteString("edges:\n")
	var edgeAddrs, adminAddrs, edgeIDs []string
	for i := 1; i <= 3; i++ {
		httpPort, adminPort := freePort(t), freePort(t)
		id := fmt.Sprintf("TST%02d-C1", i)
		fmt.Fprintf(&inv, "  - {id: %s, region: us, country: united_states, address: \"127.0.0.1:%d\", adminAddress: \"127.0.0.1:%d\", secretFile: secrets/edge.secret, managed: true}\n", id, httpPort, adminPort)
		edgeAddrs = append(edgeAddrs, fmt.Sprintf("127.0.0.1:%d", httpPort))
		adminAddrs = append(adminAddrs, fmt.Sprintf("127.0.0.1:%d", adminPort))
		edgeIDs = append(edgeIDs, id)
	}
	invFile := filepath.Join(dir, "edges.yaml")
	if err := os.WriteFile(invFile, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	originPort := freePort(t)
	args := []string{
		"--data-dir", filepath.Join(dir, "data"),
		"--edges", invFile,
		"--api-addr", apiAddr,
		"--temporal-port", fmt.Sprint(freePortBlock(t, 5)),
		"--ui-port", "-1",
		"--default-origin", fmt.Sprintf("127.0.0.1:%d", originPort),
		"--app-keys", crashAppKey + ":" + crashSecret,
		"--heartbeat-timeout", crashHeartbeat.String(),
		"--prewarm-concurrency", "2",
		"--purge-item-interval", "0s",
		"--log-format", "json",
	}
	logFile := filepath.Join(dir, "dev.log")
	dev := startDev(t, bin, dir, apiAddr, args, logFile)
	t.Cleanup(func() {
		if dev.ProcessState == nil {
			_ = dev.Process.Signal(syscall.SIGTERM)
			time.Sleep(2 * time.Second)
		}
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("dev log tail:\n%s", strings.Join(lines, "\n"))
		}
	})
	a := api{t: t, base: "http://" + apiAddr, appKey: crashAppKey, secret: crashSecret, timeout: 3 * time.Minute}

	// A distribution whose referrer rule only its own VCL enforces.
	var created struct {
		Distributions []struct{ Domain string } `json:"distributions"`
	}
	a.nhn("POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y",
		"referrerType": "BLACKLIST", "referrers": `evil\.example`, "isAllowWhenEmptyReferrer": true,
		"origins": []map[string]any{{"origin": "127.0.0.1", "port": originPort, "originPath": "/"}},
	}}}, &created)
	domain := created.Distributions[0].Domain
	a.waitDistribution(domain, "OPEN")

	urls := make([]string, 2000)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/40/w/%d.js", domain, i)
	}
	jobID := a.startPrewarm(map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop", "region": edgeIDs})
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/p/%d.css", i)
	}
	var purge struct{ PurgeSeqs []int64 }
	a.nhn("POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")}, &purge)

	time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
	before := a.prewarmStatus(jobID)
	if before.Status != "IN_PROGRESS" {
		t.Fatalf("the prewarm ended before the kill: %s", before.Status)
	}
	t.Logf("kill -9 of cdnflow dev at %d/%d", before.Completed, before.Total)
	_ = dev.Process.Signal(syscall.SIGKILL)
	// The managed varnishd die with dev (parent-death signal); wait until
	// they have let go of every port before starting again.
	for _, addr := range append(append([]string{apiAddr}, edgeAddrs...), adminAddrs...) {
		waitClosed(t, addr)
	}
	dev = startDev(t, bin, dir, apiAddr, args, logFile)

	st := a.waitPrewarm(jobID)
	if st.Status != "COMPLETED" || st.Total != len(urls) || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("prewarm after the restart: %s total %d succeeded %d failed %d %v", st.Status, st.Total, st.Succeeded, st.Failed, st.FailedURL)
	}
	a.requireEveryPairOnce(jobID, len(urls)*len(edgeIDs))
	if len(purge.PurgeSeqs) != 5 {
		t.Fatalf("1,000 ITEM paths gave %d seqs, want 5", len(purge.PurgeSeqs))
	}
	a.waitPurgesDone(domain, len(purge.PurgeSeqs))
	// The restarted edges got the distribution back: its referrer rule
	// answers 403 on every edge.
	if got := a.distributionStatus(domain); got != "OPEN" {
		t.Fatalf("distribution after the restart: %s", got)
	}
	for i, addr := range edgeAddrs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ref.js", nil)
			req.Host = domain
			req.Header.Set("Referer", "https://evil.example/")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusForbidden {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("edge %s after the restart does not enforce the distribution (%v)", edgeIDs[i], err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
