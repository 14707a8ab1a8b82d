//go:build !unit

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
)

// outageDowntime is how long `cdnflow dev` stays down: longer than one
// ApplySite attempt may run (StartToClose 1 min), so a deadline that
// counted the outage would expire and send changes to ERROR.
const outageDowntime = 75 * time.Second

// TestDevOutageCompletesInFlightChanges creates 30 distributions, kills
// `cdnflow dev` with SIGKILL about a second later (while some are still
// OPENING), keeps it down past an apply attempt's deadline and restarts
// it on the same data directory: every distribution ends OPEN with no
// error and every edge serves each one from its own origin path (two
// edges outlive the kill with their site tables; dev's own edge restarts
// empty). Every fifth distribution has a referrer rule, which makes its
// apply compile VCL and keeps changes in flight at the kill.
func TestDevOutageCompletesInFlightChanges(t *testing.T) {
	requireDev(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	originPort := freePort(t)
	outside := edgetest.StartEdges(t, 2, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: "127.0.0.1", Port: originPort}}
	})
	var inv strings.Builder
	inv.WriteString("edges:\n")
	var edgeAddrs, edgeIDs []string
	for _, e := range outside {
		fmt.Fprintf(&inv, "  - {id: %s, region: us, country: united_states, address: %q, adminAddress: %q, secretFile: %q, connectorAddress: %q}\n", e.Edge.ID, e.Edge.Address, e.Edge.AdminAddress, e.Edge.SecretFile, e.Edge.ConnectorAddress)
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
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("dev log tail:\n%s", strings.Join(lines, "\n"))
		}
	})
	a := api{t: t, base: "http://" + apiAddr, appKey: crashAppKey, secret: crashSecret, timeout: 3 * time.Minute}

	const n = 30
	bodies := make([]map[string]any, n)
	for i := range bodies {
		bodies[i] = map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": "127.0.0.1", "port": originPort, "originPath": fmt.Sprintf("/d%d", i)}},
		}
		if i%5 == 0 {
			bodies[i]["referrers"] = `evil\.example`
		}
	}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	a.nhn("POST", "/distributions", map[string]any{"distributions": bodies}, &created)
	if len(created.Distributions) != n {
		t.Fatalf("created %d distributions, want %d", len(created.Distributions), n)
	}
	time.Sleep(time.Second)
	var opening struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	a.nhn("GET", "/distributions?status=OPENING", nil, &opening)
	if len(opening.Distributions) == 0 {
		t.Fatalf("every distribution was OPEN before the kill: the test must kill mid-apply")
	}
	_ = dev.Process.Signal(syscall.SIGKILL)
	t.Logf("kill -9 of cdnflow dev with %d of %d distributions OPENING; down for %s", len(opening.Distributions), n, outageDowntime)
	for _, addr := range []string{apiAddr, managedHTTP, managedAdmin} {
		waitClosed(t, addr)
	}
	time.Sleep(outageDowntime)
	dev = startDev(t, bin, dir, apiAddr, args, logFile)

	// Every one ends OPEN without an error; an ERROR is final for the test.
	eventually.WithinEvery(t, 3*time.Minute, 500*time.Millisecond, func() error {
		for i, d := range created.Distributions {
			var got struct {
				Distributions []service.DistributionView `json:"distributions"`
			}
			a.nhn("GET", "/distributions?domain="+d.Domain, nil, &got)
			if len(got.Distributions) != 1 {
				return fmt.Errorf("distribution %d (%s) not listed", i, d.Domain)
			}
			switch v := got.Distributions[0]; {
			case v.Status == "ERROR":
				t.Fatalf("distribution %d (%s) went to ERROR after the outage: %s", i, d.Domain, v.LastError)
			case v.Status != "OPEN":
				return fmt.Errorf("distribution %d (%s) is %s", i, d.Domain, v.Status)
			case v.LastError != "":
				t.Fatalf("distribution %d (%s) is OPEN with lastError %q", i, d.Domain, v.LastError)
			}
		}
		return nil
	})
	// Served from its own origin path on every edge, and the referrer
	// rules enforced (dev's own edge restarted empty).
	for i, d := range created.Distributions {
		want := fmt.Sprintf("/d%d/", i)
		for j, addr := range edgeAddrs {
			eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, func() error {
				status, _, originPath, err := tryEdgeGet(addr, d.Domain, "/after-outage.js")
				if err != nil {
					return err
				}
				if status != http.StatusOK || !strings.HasPrefix(originPath, want) {
					return fmt.Errorf("distribution %d on %s: %d from origin path %q, want %s…", i, edgeIDs[j], status, originPath, want)
				}
				if i%5 != 0 {
					return nil
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ref.js", nil)
				req.Host = d.Domain
				req.Header.Set("Referer", "https://evil.example/")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					return fmt.Errorf("distribution %d on %s: blacklisted referrer answered %d, want 403", i, edgeIDs[j], resp.StatusCode)
				}
				return nil
			})
		}
	}
}
