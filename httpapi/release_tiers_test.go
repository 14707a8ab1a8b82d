//go:build !unit

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A release's purge on tiered edges (docs/tiers.md) reaches the shield
// first and its children only once it confirmed, as an NHN purge does:
// the shield's PURGE requests are held 250 ms by a proxy, so a child
// purged beside its shield would confirm before it (and could refill from
// the shield's old copy in that window). Each child's receipt is applied
// after the shield's.
func TestReleasePurgesShieldsFirst(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 4, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}, Shield: &testenv.Shield{PurgeDelay: 250 * time.Millisecond}})
	shield := env.Edges[0].Edge.ID
	d := createDistribution(t, env, "/")
	paths := make([]string, 20)
	for i := range paths {
		paths[i] = fmt.Sprintf("/tiers/release-%d.js", i)
	}
	body := releaseBody(d.Domain, paths, "2m")
	if st := waitPrewarm(t, env, startPrewarm(t, env, body["prewarm"].(map[string]any), nil)); st.Status != "COMPLETED" || st.Succeeded != len(paths) {
		t.Fatalf("old objects not cached: %+v", st)
	}
	code, data, id := startRelease(t, env, body, "tiers-1")
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("release = %d %s", code, data)
	}
	if st := waitReleaseEnd(t, env, id); st.State != workflows.ReleaseSucceeded || len(st.PurgeSeqs) != 1 {
		t.Fatalf("release %s: %+v", st.State, st)
	}
	ps := purgeReceipts(t, env, getRelease(t, env, id).PurgeSeqs[0])
	var shieldAt int64
	for _, e := range ps.Edges {
		if e.EdgeID == shield {
			shieldAt = e.AppliedAt
		}
	}
	for _, e := range ps.Edges {
		if !e.Confirmed || e.AppliedAt == 0 || e.AppliedAt < shieldAt {
			t.Fatalf("receipt of %s applied at %d, its shield %s at %d: children only after their shield confirmed (%+v)",
				e.EdgeID, e.AppliedAt, shield, shieldAt, ps.Edges)
		}
	}
}

// purgeReceipts reads purge seq's per-edge receipts from the /v1 API.
func purgeReceipts(t *testing.T, env *testenv.Env, seq int64) workflows.PurgeStatus {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/appKeys/%s/purges/%d", env.API.URL, appKey, seq), nil)
	req.Header.Set("Authorization", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ps workflows.PurgeStatus
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil || resp.StatusCode != http.StatusOK || ps.State != workflows.PurgeDone {
		t.Fatalf("purge receipts = %d %+v: %v", resp.StatusCode, ps, err)
	}
	return ps
}
