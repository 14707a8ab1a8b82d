//go:build !unit

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

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
)

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	go func() {
		// The test reads the exit from the process's ports and the log.
		_ = cmd.Wait()
		_ = f.Close()
	}()
	if err := eventually.Wait(90*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get("http://" + apiAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz = %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		data, _ := os.ReadFile(logFile)
		t.Fatalf("dev not ready: %v\n%s", err, data)
	}
	return cmd
}

// waitClosed waits until nothing listens on addr any more.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	eventually.Within(t, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = c.Close() // a probe: that it connected is the finding
		return fmt.Errorf("%s still listening", addr)
	})
}

// TestDevKilledAndRestartedLosesNothing kills the whole `cdnflow dev`
// process (embedded Temporal server, worker, API, its managed edge) with
// SIGKILL in the middle of a 6,000-pair prewarm and while a 4,000-path
// purge is below 100, restarts it on the same data directory, and checks
// that every job finishes with exact counts, that every purged path is
// gone from every edge (two edges run outside dev and keep their cache
// across the kill, so the purge must really finish on them), and that the
// distribution is back on the restarted managed edge.
func TestDevKilledAndRestartedLosesNothing(t *testing.T) {
	if _, err := exec.LookPath("varnishd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("varnishd is not installed (CI=true): run `make deps`")
		}
		t.Skip("varnishd not installed; `make deps` installs it")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill timing seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	bin := buildBinary(t)
	dir := t.TempDir()
	originPort := freePort(t)
	// Two edges outlive the kill (dev does not manage them); the third is
	// dev's own and dies and restarts with it.
	outside := edgetest.StartEdges(t, 2, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: "127.0.0.1", Port: originPort}}
	})
	var inv strings.Builder
	inv.WriteString("edges:\n")
	var edgeAddrs, edgeIDs []string
	// cdnflow reaches the first outside edge's HTTP port through a fault
	// proxy: refusing its PURGEs holds the purge below 100 until the kill,
	// whatever the speed of the other edges.
	hold := edgetest.StartFaultProxy(t, outside[0].Edge.Address)
	for i, e := range outside {
		addr := e.Edge.Address
		if i == 0 {
			addr = hold.Addr()
		}
		fmt.Fprintf(&inv, "  - {id: %s, region: us, country: united_states, address: %q, adminAddress: %q, secretFile: %q, connectorAddress: %q}\n", e.Edge.ID, addr, e.Edge.AdminAddress, e.Edge.SecretFile, e.Edge.ConnectorAddress)
		edgeAddrs = append(edgeAddrs, e.Edge.Address)
		edgeIDs = append(edgeIDs, e.Edge.ID)
	}
	managedHTTP := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	managedAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fmt.Fprintf(&inv, "  - {id: TST03-C1, region: us, country: united_states, address: %q, adminAddress: %q, secretFile: secrets/edge.secret, managed: true}\n", managedHTTP, managedAdmin)
	edgeAddrs = append(edgeAddrs, managedHTTP)
	edgeIDs = append(edgeIDs, "TST03-C1")
	invFile := filepath.Join(dir, "edges.yaml")
	if err := os.WriteFile(invFile, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{
		"--data-dir", filepath.Join(dir, "data"),
		"--edges", invFile,
		"--api-addr", apiAddr,
		"--temporal-port", fmt.Sprint(freePortBlock(t, 5)),
		"--ui-port", "-1",
		"--default-origin", fmt.Sprintf("127.0.0.1:%d", originPort),
		"--app-keys", crashAppKey + ":" + crashSecret,
		"--heartbeat-timeout", crashHeartbeat.String(),
		"--prewarm-concurrency", "2", "--prewarm-pipeline", "1",
		// Attempts outlast the held edge's 503s (200 ms doubling to 5 s).
		"--prewarm-attempts", "8",
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

	// The paths the purge will drop are cached on every edge first.
	// 20 seqs; the held edge keeps them below 100 until the kill.
	paths := make([]string, 4000)
	purgeURLs := make([]string, len(paths))
	for i := range paths {
		paths[i] = fmt.Sprintf("/p/%d.css", i)
		purgeURLs[i] = "http://" + domain + paths[i]
	}
	pre := a.waitPrewarm(a.startPrewarm(map[string]any{"url_list": purgeURLs, "cf_domain": domain, "target_type": "pop", "region": edgeIDs}))
	if pre.Status != "COMPLETED" || pre.Succeeded != len(purgeURLs) {
		t.Fatalf("warming the purge paths: %s, %d succeeded", pre.Status, pre.Succeeded)
	}
	for i, addr := range edgeAddrs {
		for _, p := range paths {
			if _, xc, _ := edgeGet(t, addr, domain, p); xc != "HIT" {
				t.Fatalf("%s on %s before the purge: %s, want HIT", p, edgeIDs[i], xc)
			}
		}
	}

	urls := make([]string, 2000)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/40/w/%d.js", domain, i)
	}
	jobID := a.startPrewarm(map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop", "region": edgeIDs})
	time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	var purge struct{ PurgeSeqs []int64 }
	hold.SetMode(edgetest.Status(http.StatusServiceUnavailable))
	a.nhn("POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")}, &purge)
	if len(purge.PurgeSeqs) != 20 {
		t.Fatalf("4,000 ITEM paths gave %d seqs, want 20", len(purge.PurgeSeqs))
	}
	// The kill lands while a seq of the purge is listed below 100.
	var below []string
	eventually.WithinEvery(t, 10*time.Second, 5*time.Millisecond, func() error {
		items := a.purges(domain)
		done := 0
		below = below[:0]
		for _, p := range items {
			if p.Progress < 100 {
				below = append(below, fmt.Sprintf("seq %d at %d", p.Seq, p.Progress))
			} else {
				done++
			}
		}
		if done == len(purge.PurgeSeqs) {
			t.Fatalf("the purge reached 100 before the kill: the test must kill mid-purge")
		}
		if len(below) == 0 {
			return fmt.Errorf("no seq of the purge listed yet: %+v", items)
		}
		return nil
	})
	before := a.prewarmStatus(jobID)
	if before.Status != "IN_PROGRESS" {
		t.Fatalf("the prewarm ended before the kill: %s", before.Status)
	}
	_ = dev.Process.Signal(syscall.SIGKILL)
	t.Logf("kill -9 of cdnflow dev at prewarm %d/%d, purge %v", before.Completed, before.Total, below)
	// The managed varnishd dies with dev (parent-death signal); wait until
	// it and the API have let go of their ports before starting again.
	for _, addr := range []string{apiAddr, managedHTTP, managedAdmin} {
		waitClosed(t, addr)
	}
	hold.SetMode(edgetest.Pass())
	dev = startDev(t, bin, dir, apiAddr, args, logFile)

	st := a.waitPrewarm(jobID)
	if st.Status != "COMPLETED" || st.Total != len(urls) || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("prewarm after the restart: %s total %d succeeded %d failed %d %v", st.Status, st.Total, st.Succeeded, st.Failed, st.FailedURL)
	}
	_, _ = a.requireEverySucceeded(jobID, len(urls)*len(edgeIDs))
	a.waitPurgesDone(domain, len(purge.PurgeSeqs))
	// At 100 every purged path is gone from every edge, including the two
	// that kept their cache across the kill.
	for i, addr := range edgeAddrs {
		for _, p := range paths {
			if _, xc, _ := edgeGet(t, addr, domain, p); xc != "MISS" {
				t.Fatalf("%s on %s with every seq at 100: %s, want MISS", p, edgeIDs[i], xc)
			}
		}
	}
	// The restarted edge got the distribution back: its referrer rule
	// answers 403 on every edge.
	if got := a.distributionStatus(domain); got != "OPEN" {
		t.Fatalf("distribution after the restart: %s", got)
	}
	for i, addr := range edgeAddrs {
		eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, func() error {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ref.js", nil)
			req.Host = domain
			req.Header.Set("Referer", "https://evil.example/")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("edge %s after the restart: %w", edgeIDs[i], err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				return fmt.Errorf("edge %s after the restart does not enforce the distribution: %d", edgeIDs[i], resp.StatusCode)
			}
			return nil
		})
	}
}
