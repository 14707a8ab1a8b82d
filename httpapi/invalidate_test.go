//go:build !unit

package httpapi_test

import (
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/service"
)

// With need_invalidate every attempt of a pair purges before its
// GET. The edge holds a copy cached before the job (stale); the first
// attempt fails at the edge (503 from the fault proxy, so its purge never
// happened); the retry must purge and fetch from the origin, never count
// the stale copy (a HIT) as warmed.
func TestNeedInvalidateRetryPurgesBeforeGet(t *testing.T) {
	fe := startFaultEdges(t, 1, false, func(c *config.Config) {
		c.PrewarmAttempts = 5
		c.PrewarmAttemptTimeout = 2 * time.Second
		c.EdgePurgeTimeout = 2 * time.Second
	})
	env := fe.env
	const path = "/static/invalidate-retry.js"
	if got := cacheState(t, env, 0, path); got != "MISS" {
		t.Fatalf("first visitor GET = %s, want MISS", got)
	}
	if got := cacheState(t, env, 0, path); got != "HIT" {
		t.Fatalf("stale copy not cached: %s", got)
	}
	originBefore := env.Origin.Requests()

	fe.http[0].SetMode(edgetest.Status(503))
	id := startPrewarm(t, env, map[string]any{
		"url_list": []string{"http://" + domain + path}, "cf_domain": domain,
		"target_type": "region", "region": "all", "need_invalidate": true,
	}, nil)
	waitFaulted(t, fe.http[0], 1)
	fe.http[0].SetMode(edgetest.Pass())
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Succeeded != 1 {
		t.Fatalf("status = %+v", st)
	}
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges", &pairs); code != 200 || len(pairs.Pairs) != 1 {
		t.Fatalf("pairs = %d %+v", code, pairs)
	}
	p := pairs.Pairs[0]
	if p.State != "success" || p.Attempts < 2 {
		t.Fatalf("pair = %+v, want success after a failed first attempt", p)
	}
	if p.Cache != "MISS" {
		t.Fatalf("pair warmed with X-Cache %s: the retry did not purge the stale copy first", p.Cache)
	}
	if n := env.Origin.Requests() - originBefore; n < 1 {
		t.Fatalf("origin saw %d requests during the job: the warmed object is the stale copy", n)
	}
	if got := cacheState(t, env, 0, path); got != "HIT" {
		t.Fatalf("after the job = %s, want HIT", got)
	}
}
