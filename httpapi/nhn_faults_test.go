//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

func createDistribution(t *testing.T, env *testenv.Env, originPath string) service.DistributionView {
	t.Helper()
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	body := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": originPath}},
	}}}
	if h := nhn(t, env, "POST", "/distributions", secret, body, &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	d := created.Distributions[0]
	waitStatus(t, env, d.Domain, "OPEN")
	return d
}

func faultEnv(t *testing.T) *testenv.Env {
	return testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}})
}

// A purge never reports 100 while an edge has not confirmed; the edge that
// is behind is named; when it returns the purge completes, and only then:
// the path the restarted edge cached before the purge's next attempt is a
// HIT until that attempt, and a MISS on every edge at 100.
func TestPurgeWaitsForStoppedEdge(t *testing.T) {
	env := faultEnv(t)
	d := createDistribution(t, env, "/base")
	cacheOnEveryEdge(t, env, d.Domain, "/a.js")
	if err := env.Edges[1].Process.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pr struct{ PurgeSeq int64 }
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a.js"}, &pr); !h.IsSuccessful {
		t.Fatalf("purge: %+v", h)
	}
	item := waitPurgeHeldBack(t, env, d.Domain, 60*time.Second, func(item service.PurgeItem) bool {
		return item.Progress == 50 && len(item.PendingEdges) == 1 && item.PendingEdges[0].Error != ""
	})
	if item.PendingEdges[0].EdgeID != env.Edges[1].Edge.ID || !strings.Contains(item.PendingEdges[0].Error, env.Edges[1].Edge.ID) {
		t.Fatalf("pending edge = %+v", item.PendingEdges)
	}
	// A restarted varnishd has an empty cache. Restart it while the purge's
	// next attempt is seconds away and cache the path there again: the
	// purge has not reached that copy yet, so it must still be a HIT with
	// the purge held back, and gone once the purge says 100.
	wfID := "purge-" + appKey + "-" + itoa64(pr.PurgeSeq)
	attempt := waitNextAttemptAfter(t, env, wfID, 5*time.Second)
	env.Edges[1].Restart(t)
	edgeGet(t, env, 1, d.Domain, "/a.js", "")
	if got := xcacheOn(t, env, 1, d.Domain, "/a.js"); got != "HIT" {
		t.Fatalf("restarted edge before the purge's next attempt: %s, want HIT", got)
	}
	if now := pendingAttempt(t, env, wfID); now != attempt {
		t.Fatalf("the purge's attempt %d ran while the test cached the path (attempt %d before): too slow a restart to tell", now, attempt)
	}
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	requireMissOnEveryEdge(t, env, d.Domain, "/a.js")
	env.Replay(t, "purge-"+appKey+"-"+itoa64(pr.PurgeSeq), "purge_edge_down")
}

// An edge that cannot load a change puts the distribution in ERROR with the
// reason, and the edges that did load it go back to the last good config.
func TestDistributionErrorRollsBack(t *testing.T) {
	env := faultEnv(t)
	d := createDistribution(t, env, "/good")
	if r := edgeGet(t, env, 0, d.Domain, "/x.js", ""); r.Header.Get("X-Origin-Path") != "/good/x.js" {
		t.Fatalf("before: %v", r.Header)
	}
	if err := env.Edges[1].Process.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	patch := map[string]any{"domain": d.Domain, "origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/bad"}}}
	if h := nhn(t, env, "PATCH", "/distributions", secret, patch, nil); !h.IsSuccessful {
		t.Fatalf("patch: %+v", h)
	}
	v := waitStatus(t, env, d.Domain, "ERROR")
	if !strings.Contains(v.LastError, env.Edges[1].Edge.ID) {
		t.Fatalf("lastError = %q", v.LastError)
	}
	if len(v.Origins) != 1 || v.Origins[0].OriginPath != "/good" {
		t.Fatalf("config after error = %+v", v.Origins)
	}
	waitRolledBack(t, env, 0, d.Domain, "/good")
	// ERROR accepts a corrected change once the edge is back.
	env.Edges[1].Restart(t)
	if h := nhn(t, env, "PATCH", "/distributions", secret, patch, nil); !h.IsSuccessful {
		t.Fatalf("patch after recovery: %+v", h)
	}
	waitStatus(t, env, d.Domain, "OPEN")
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/z.js", ""); r.Header.Get("X-Origin-Path") != "/bad/z.js" {
			t.Fatalf("edge %d after recovery: %v", i, r.Header)
		}
	}
	// The history holds the ERROR, its rollback and the recovery.
	env.Replay(t, "distribution/"+appKey+"/"+d.Domain, "distribution_error_rollback_probe_local")
}

// waitPurgeHeldBack polls the domain's only purge until held says it is
// held back as expected, failing if it ever reports 100 meanwhile.
func waitPurgeHeldBack(t *testing.T, env *testenv.Env, domain string, timeout time.Duration, held func(service.PurgeItem) bool) service.PurgeItem {
	t.Helper()
	var item service.PurgeItem
	eventually.WithinEvery(t, timeout, 200*time.Millisecond, func() error {
		var list struct{ Purges []service.PurgeItem }
		nhn(t, env, "GET", "/purges?domain="+domain, secret, nil, &list)
		if len(list.Purges) == 1 {
			item = list.Purges[0]
		}
		if held(item) {
			return nil
		}
		if item.Progress >= 100 {
			t.Fatalf("purge reported done while edges fail: %+v", item)
		}
		return fmt.Errorf("purge not held back as expected: %+v", item)
	})
	return item
}

// waitRolledBack waits until edge i fetches host's paths under originPath
// again (the last good config).
func waitRolledBack(t *testing.T, env *testenv.Env, i int, host, originPath string) {
	t.Helper()
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, func() error {
		r := edgeGet(t, env, i, host, "/y.js", "")
		if got := r.Header.Get("X-Origin-Path"); got != originPath+"/y.js" {
			return fmt.Errorf("edge %d not rolled back to %s: fetched %q", i, originPath, got)
		}
		return nil
	})
}

// xcacheOn is the X-Cache of host+path on edge i (its real address).
func xcacheOn(t *testing.T, env *testenv.Env, i int, host, path string) string {
	t.Helper()
	return edgeGet(t, env, i, host, path, "").Header.Get("X-Cache")
}

// cacheOnEveryEdge fetches host+path through every edge until each serves
// it from cache.
func cacheOnEveryEdge(t *testing.T, env *testenv.Env, host, path string) {
	t.Helper()
	for i := range env.Edges {
		edgeGet(t, env, i, host, path, "")
		if got := xcacheOn(t, env, i, host, path); got != "HIT" {
			t.Fatalf("caching %s%s on %s: %s", host, path, env.Edges[i].Edge.ID, got)
		}
	}
}

// requireMissOnEveryEdge checks that no edge serves host+path from cache.
// (The GET caches it again.)
func requireMissOnEveryEdge(t *testing.T, env *testenv.Env, host, path string) {
	t.Helper()
	for i := range env.Edges {
		if got := xcacheOn(t, env, i, host, path); got != "MISS" {
			t.Errorf("%s%s on %s after the purge: %s, want MISS", host, path, env.Edges[i].Edge.ID, got)
		}
	}
}

// pendingAttempt is the attempt number of a workflow's only pending
// activity (0 when none is pending).
func pendingAttempt(t *testing.T, env *testenv.Env, workflowID string) int32 {
	t.Helper()
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		t.Fatalf("describe %s: %v", workflowID, err)
	}
	pending := desc.GetPendingActivities()
	if len(pending) != 1 {
		return 0
	}
	return pending[0].GetAttempt()
}

// waitNextAttemptAfter waits until a workflow's only pending activity is
// waiting for a retry at least gap away, and returns its attempt number.
func waitNextAttemptAfter(t *testing.T, env *testenv.Env, workflowID string, gap time.Duration) int32 {
	t.Helper()
	var attempt int32
	eventually.WithinEvery(t, 60*time.Second, 50*time.Millisecond, func() error {
		desc, err := env.Client.DescribeWorkflowExecution(context.Background(), workflowID, "")
		if err != nil {
			return err
		}
		pending := desc.GetPendingActivities()
		if len(pending) != 1 {
			return fmt.Errorf("%d pending activities, want 1", len(pending))
		}
		next := pending[0].GetNextAttemptScheduleTime()
		if next == nil || time.Until(next.AsTime()) < gap {
			return fmt.Errorf("attempt %d: next attempt at %v, want at least %s away", pending[0].GetAttempt(), next.AsTime(), gap)
		}
		attempt = pending[0].GetAttempt()
		return nil
	})
	return attempt
}
