//go:build !unit

package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack"
)

// A newcomer's dev stack is quiet: no ERROR line, and the edges dev starts
// itself are never healed as drift — not on an empty data directory, and
// not when dev starts again on one with a distribution, whose site the
// restarted edges' connectors load from their state files.
func TestDevStackStartsWithoutErrorsOrDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("runs embedded Temporal and varnishd: skipped under -short")
	}
	if _, err := exec.LookPath("varnishd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("varnishd is not installed (CI=true): run `make deps`")
		}
		t.Skip("varnishd not installed; `make deps` installs it")
	}
	dir := t.TempDir()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.TemporalPort, cfg.TemporalUIPort = 0, -1
	cfg.APIAddr = "127.0.0.1:0"
	cfg.DefaultOrigin = "127.0.0.1:" + freePort(t)
	cfg.AppKeys = map[string]string{"myapp": "mysecret"}
	cfg.EdgeSyncEvery = time.Second
	edgeHTTP, edgeAdmin := freePort(t), freePort(t)
	start := func() *stack.Stack {
		inv, err := inventory.New([]inventory.Edge{{
			ID: "DEV01-C1", Region: "us", Country: "united_states", Address: "127.0.0.1:" + edgeHTTP,
			AdminAddress: "127.0.0.1:" + edgeAdmin, ConnectorAddress: "127.0.0.1:0",
			SecretFile: filepath.Join(dir, "edge.secret"), Managed: true,
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err := stack.Start(ctx, stack.Options{Config: cfg, Inventory: inv, Logger: zap.New(core), Dev: true})
		if err != nil {
			t.Fatalf("start dev stack: %v", err)
		}
		return s
	}
	// rounds waits for n sync rounds checked after since, the last with sites.
	rounds := func(s *stack.Stack, since time.Time, n, sites int) {
		t.Helper()
		seen := map[time.Time]bool{}
		eventually.WithinEvery(t, time.Minute, 200*time.Millisecond, func() error {
			var out struct {
				Edges []struct {
					Sync *activities.EdgeSyncReport `json:"sync"`
				} `json:"edges"`
			}
			if err := getJSON("http://"+s.APIAddr+"/v1/edges", "", &out); err != nil {
				return err
			}
			if len(out.Edges) != 1 || out.Edges[0].Sync == nil || !out.Edges[0].Sync.CheckedAt.After(since) {
				return fmt.Errorf("no sync round since %v yet", since)
			}
			r := out.Edges[0].Sync
			seen[r.CheckedAt] = true
			if len(seen) < n || r.Sites != sites {
				return fmt.Errorf("%d rounds seen, last with %d sites; want %d rounds, %d sites", len(seen), r.Sites, n, sites)
			}
			return nil
		})
	}

	t0 := time.Now()
	s := start()
	rounds(s, t0, 3, 0)
	domain := createDistribution(t, "http://"+s.APIAddr, cfg.DefaultOrigin)
	rounds(s, time.Now(), 2, 1)
	stopping := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	t1 := time.Now()
	s = start()
	defer func() { _ = s.Stop() }()
	rounds(s, t1, 3, 1)
	// The restarted edge serves the distribution again (a host without a
	// site would go to the default origin, without the origin path).
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+edgeHTTP+"/x.txt", nil)
	req.Host = domain
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Origin-Path"); resp.StatusCode != http.StatusOK || got != "/site/x.txt" {
		t.Fatalf("GET %s/x.txt on the restarted edge = %d, fetched %q", domain, resp.StatusCode, got)
	}

	for _, e := range logs.All() {
		// The server's own lines while it shuts down (shard and queue
		// readers told to stop) are not an idle dev's; the check is of a
		// running stack.
		stopLine := e.LoggerName == "temporal" && !e.Time.Before(stopping) && e.Time.Before(t1)
		if e.Message == abandonedQuery || stopLine {
			continue
		}
		if e.Level >= zapcore.ErrorLevel || strings.Contains(e.Message, "drift") {
			t.Errorf("%s %s %v", e.Level, e.Message, e.ContextMap())
		}
	}
}

// abandonedQuery is the Temporal server's ERROR line for a query answered
// after its caller gave up: this test's own 200 ms polls of GET /v1/edges
// (a query of the edge sync) time out when the machine is busy. An idle
// dev is not polled, so the line says nothing about the stack.
const abandonedQuery = "failed to set query completion state to succeeded"

func createDistribution(t *testing.T, api, origin string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(origin)
	body := fmt.Sprintf(`{"distributions":[{"region":"GLOBAL","useOriginHttpProtocolDowngrade":false,
		"useOrigin":"N","maxAge":600,"referrerType":"BLACKLIST","referrers":"evil\\.example",
		"origins":[{"origin":%q,"port":%s,"originPath":"/site"}]}]}`, host, port)
	base := api + "/v1.5/appKeys/myapp/distributions"
	req, _ := http.NewRequest("POST", base, strings.NewReader(body))
	req.Header.Set("Authorization", "mysecret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Distributions []struct{ Domain, Status string } `json:"distributions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || len(created.Distributions) != 1 {
		t.Fatalf("create distribution: %+v, %v", created, err)
	}
	domain := created.Distributions[0].Domain
	eventually.WithinEvery(t, time.Minute, 200*time.Millisecond, func() error {
		var got struct {
			Distributions []struct{ Status string } `json:"distributions"`
		}
		if err := getJSON(base+"?domain="+domain, "mysecret", &got); err != nil {
			return err
		}
		if len(got.Distributions) != 1 || got.Distributions[0].Status != "OPEN" {
			return fmt.Errorf("distribution %s: %+v", domain, got.Distributions)
		}
		return nil
	})
	return domain
}

func getJSON(url, auth string, v any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := freeport.Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(p)
}
