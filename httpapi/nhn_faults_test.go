package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/internal/testenv"
	"github.com/cdnflow/cdnflow/service"
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
// is behind is named; when it returns the purge completes.
func TestPurgeWaitsForStoppedEdge(t *testing.T) {
	env := faultEnv(t)
	d := createDistribution(t, env, "/base")
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
	env.Edges[1].Restart(t)
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := edgeGet(t, env, 0, d.Domain, "/y.js", "")
		if r.Header.Get("X-Origin-Path") == "/good/y.js" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge 0 not rolled back: %v", r.Header)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
}

// waitPurgeHeldBack polls the domain's only purge until held says it is
// held back as expected, failing if it ever reports 100 meanwhile.
func waitPurgeHeldBack(t *testing.T, env *testenv.Env, domain string, timeout time.Duration, held func(service.PurgeItem) bool) service.PurgeItem {
	t.Helper()
	var item service.PurgeItem
	deadline := time.Now().Add(timeout)
	for {
		var list struct{ Purges []service.PurgeItem }
		nhn(t, env, "GET", "/purges?domain="+domain, secret, nil, &list)
		if len(list.Purges) == 1 {
			item = list.Purges[0]
		}
		if held(item) {
			return item
		}
		if item.Progress >= 100 {
			t.Fatalf("purge reported done while edges fail: %+v", item)
		}
		if time.Now().After(deadline) {
			t.Fatalf("purge = %+v", item)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
