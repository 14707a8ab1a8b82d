//go:build !unit

package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// Nothing missed. An edge the workers cannot reach until a
// purge's deadline (its cache intact, so it still serves the purged object)
// is owed the purge; GET purges shows it owed and progress below 100; when
// the edge answers again it gets a ban of the domain and aliases, the
// purged object is a MISS there, and the purge shows the edge caught up.
func TestEdgeDownPastDeadlineCatchesUp(t *testing.T) {
	fe := startFaultEdges(t, 2, false, func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		c.PurgeDeadline = 3 * time.Second
		// the edge client's timeouts of purges, bans, site-table calls and probes
		c.EdgePurgeTimeout, c.EdgeBanTimeout, c.EdgeSiteTimeout, c.EdgeProbeTimeout = time.Second, time.Second, time.Second, time.Second
	})
	env := fe.env
	alias := "www.catchup.example"
	d := createWithAlias(t, env, alias)
	const path = "/catch/up.js"
	for i := range env.Edges {
		for _, h := range []string{d.Domain, alias} {
			edgeGet(t, env, i, h, path, "")
			if got := edgeGet(t, env, i, h, path, "").Header.Get("X-Cache"); got != "HIT" {
				t.Fatalf("warm %s%s on edge %d: %s", h, path, i, got)
			}
		}
	}
	away := env.Edges[1].Edge.ID
	fe.http[1].SetMode(edgetest.Reset())

	var pr struct{ PurgeSeq int64 }
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": path}, &pr); !h.IsSuccessful {
		t.Fatalf("purge: %+v", h)
	}
	item := waitPurgeHeldBack(t, env, d.Domain, 60*time.Second, func(item service.PurgeItem) bool {
		for _, e := range item.Edges {
			if e.EdgeID == away && e.Owed {
				return true
			}
		}
		return false
	})
	if item.Progress != 50 {
		t.Fatalf("while %s is owed: %+v, want progress 50", away, item)
	}
	for i, want := range []string{"MISS", "HIT"} {
		if got := edgeGet(t, env, i, d.Domain, path, "").Header.Get("X-Cache"); got != want {
			t.Fatalf("edge %d after the deadline = %s, want %s", i, got, want)
		}
	}

	fe.http[1].SetMode(edgetest.Pass())
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	for _, h := range []string{d.Domain, alias} {
		if got := edgeGet(t, env, 1, h, path, "").Header.Get("X-Cache"); got != "MISS" {
			t.Fatalf("%s%s on the edge that came back = %s, want MISS", h, path, got)
		}
	}
	v, err := env.Client.QueryWorkflow(context.Background(), workflows.PurgeWorkflowID(appKey, pr.PurgeSeq), "", workflows.QueryPurgeStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.PurgeStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	if st.State != workflows.PurgeDone || st.Progress != 100 {
		t.Fatalf("final status %+v", st)
	}
	for _, e := range st.Edges {
		if e.EdgeID == away && (!e.CaughtUp || !e.Confirmed || e.Owed || e.Verified == "") {
			t.Fatalf("edge that came back: %+v, want caught up", e)
		}
	}
	env.Replay(t, "purge-"+appKey+"-"+itoa64(pr.PurgeSeq), "purge_catch_up")
}
