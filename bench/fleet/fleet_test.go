//go:build !unit

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

const appKey, secret = "fleet", "fleet-secret"

// A fleet started by this command serves a cdnflow that knows it only
// from the inventory file the fleet wrote (config InventoryFile, as
// `cdnflow dev --edges FILE` reads it): a distribution created over the
// API lands in every stand-in's site table, a purge reaches 100 with
// every stand-in purged, and a stand-in the restart knob restarted comes
// back with a new start time and an empty table, which the edge sync
// fills again.
func TestFleetServesCdnflowFromItsInventory(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (embedded Temporal): skipped under -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f, err := Start(ctx, Options{Edges: 5, Dir: t.TempDir(), Prefix: "SIM",
		Fleet: harness.FleetOptions{RestartEvery: 4 * time.Second, RestartShare: 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	path := filepath.Join(t.TempDir(), "fleet.json")
	if err := f.WriteInventory(path); err != nil {
		t.Fatal(err)
	}
	env := testenv.Start(t, testenv.Options{Configure: func(c *config.Config) {
		c.InventoryFile = path
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		c.EdgeSyncEvery = time.Second
	}})
	if got, want := env.Inventory.IDs(), f.Inventory.IDs(); !slices.Equal(got, want) || len(env.Edges) != 0 {
		t.Fatalf("stack edges %v (%d varnishd), want the fleet's %v only", got, len(env.Edges), want)
	}

	domain := createDistribution(t, env, "/fleet")
	eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
		return everyStandInHolds(f.StandIns, domain, "/fleet")
	})

	var pr struct{ PurgeSeq int64 }
	nhn(t, env, "POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": "/a.js"}, &pr)
	waitPurge(t, env, domain, pr.PurgeSeq)
	for _, s := range f.StandIns {
		if s.Count("purge") == 0 {
			t.Errorf("stand-in %s answered no PURGE, yet the purge is at 100", s.Edge.ID)
		}
	}

	started := map[string]time.Time{}
	for _, s := range f.StandIns {
		started[s.Edge.ID] = s.Table().Started
	}
	// A table started after the first look was emptied by a restart
	// (harness.StandIn.Restart); holding the entry again, the sync put
	// it back.
	eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, s := range f.StandIns {
			if s.Table().Started.After(started[s.Edge.ID]) && holds(s, domain, "/fleet") {
				return nil
			}
		}
		return fmt.Errorf("no restarted stand-in holds %s again", domain)
	})
}

// everyStandInHolds answers nil when every stand-in's table has domain's
// entry fetching from originPath.
func everyStandInHolds(fleet []*harness.StandIn, domain, originPath string) error {
	for _, s := range fleet {
		if !holds(s, domain, originPath) {
			return fmt.Errorf("stand-in %s has no entry for %s with origin path %s: %d entries", s.Edge.ID, domain, originPath, len(s.Table().Sites))
		}
	}
	return nil
}

func holds(s *harness.StandIn, domain, originPath string) bool {
	i := slices.IndexFunc(s.Table().Sites, func(e connector.Site) bool { return e.Name == domain })
	return i >= 0 && len(s.Table().Sites[i].Origins) > 0 && s.Table().Sites[i].Origins[0].Path == originPath
}

// createDistribution creates one distribution over the NHN API and waits
// until it is OPEN; it answers its domain.
func createDistribution(t *testing.T, env *testenv.Env, originPath string) string {
	t.Helper()
	host, port, _ := strings.Cut(env.OriginAddr, ":")
	p, _ := strconv.Atoi(port)
	var created struct {
		Distributions []struct{ Domain string }
	}
	nhn(t, env, "POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": host, "port": p, "originPath": originPath}},
	}}}, &created)
	if len(created.Distributions) != 1 {
		t.Fatalf("created %+v, want one distribution", created)
	}
	d := created.Distributions[0].Domain
	eventually.WithinEvery(t, 60*time.Second, 200*time.Millisecond, func() error {
		var out struct {
			Distributions []struct{ Status string }
		}
		nhn(t, env, "GET", "/distributions?domain="+d, nil, &out)
		if len(out.Distributions) == 1 && out.Distributions[0].Status == "OPEN" {
			return nil
		}
		return fmt.Errorf("%s not OPEN: %+v", d, out.Distributions)
	})
	return d
}

func waitPurge(t *testing.T, env *testenv.Env, domain string, seq int64) {
	t.Helper()
	eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
		var out struct {
			Purges []struct {
				Seq      int64
				Progress int
			}
		}
		nhn(t, env, "GET", "/purges?domain="+domain, nil, &out)
		for _, p := range out.Purges {
			if p.Seq == seq && p.Progress == 100 {
				return nil
			}
		}
		return fmt.Errorf("purge %d not at 100: %+v", seq, out.Purges)
	})
}

// nhn calls a /v1.5 route of appKey and decodes the answer into out; a
// transport error, a status other than 200 or an unsuccessful NHN header
// fails the test.
func nhn(t *testing.T, env *testenv.Env, method, path string, body, out any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, env.API.URL+"/v1.5/appKeys/"+appKey+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %s (%v)", method, path, resp.StatusCode, raw, err)
	}
	var h struct {
		Header struct{ IsSuccessful bool } `json:"header"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || !h.Header.IsSuccessful {
		t.Fatalf("%s %s: %s", method, path, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}
