//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
)

// A scheduled prewarm acts for the appKey it was created on: once its
// host has moved to another tenant, a run is refused instead of purging
// (need_invalidate) and warming the new owner's cache.
func TestScheduledPrewarmStaysWithItsAppKey(t *testing.T) {
	env := tenantsEnv(t)
	const host = "sched.shop.test"
	demo := createOpenDistribution(t, env, demoKey, demoSecret, host)
	mine := createOpenDistribution(t, env, otherKey, otherSecret, "")
	prewarm := map[string]any{"url_list": []string{"http://" + host + "/app.js"}, "cf_domain": host, "region": "all", "need_invalidate": true}
	if resp, data := postJSON(t, env.API.URL+"/v1/schedules", map[string]any{
		"id": "demo-release", "kind": "prewarm", "interval": "24h", "prewarm": prewarm,
	}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create schedule = %d %s", resp.StatusCode, data)
	}

	// demo drops the alias, other takes it and caches an object there.
	if h, data, err := tenantNHN(env, "PATCH", demoKey, demoSecret, "/distributions", map[string]any{"domain": demo, "domainAlias": ""}); err != nil || !h.IsSuccessful {
		t.Fatalf("demo drops its alias: %+v %s %v", h, data, err)
	}
	eventually.Within(t, 60*time.Second, func() error {
		h, data, err := tenantNHN(env, "PATCH", otherKey, otherSecret, "/distributions", map[string]any{"domain": mine, "domainAlias": host})
		if err != nil || !h.IsSuccessful {
			return fmt.Errorf("other takes %s: %+v %s %v", host, h, data, err)
		}
		return nil
	})
	waitTenantOpen(t, env, otherKey, otherSecret, mine)
	cacheOnEveryEdge(t, env, host, "/app.js")

	if resp, data := postJSON(t, env.API.URL+"/v1/schedules/demo-release/trigger", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("trigger = %d %s", resp.StatusCode, data)
	}
	var v service.ScheduleView
	eventually.Within(t, 30*time.Second, func() error {
		getJSON(t, env.API.URL+"/v1/schedules/demo-release", &v)
		if len(v.RecentRuns) != 1 {
			return fmt.Errorf("runs %+v", v.RecentRuns)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.Client.GetWorkflow(ctx, v.RecentRuns[0], "").Get(ctx, nil); err == nil {
		t.Fatal("the scheduled run of demo's prewarm ran on a host other owns now")
	}
	for i := range env.Edges {
		if got := xcacheOn(t, env, i, host, "/app.js"); got != "HIT" {
			t.Fatalf("other's %s/app.js on %s after demo's scheduled run: %s, want HIT", host, env.Edges[i].Edge.ID, got)
		}
	}
}
