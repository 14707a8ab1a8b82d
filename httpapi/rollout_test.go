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
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A change rolls out over 3 varnishd edges, canary first: one whose
// origin answers 500 stops at the canary, which gets the previous
// configuration back while the 2 other edges never served the change,
// and the distribution ends in ERROR with the gate's reason; a good
// change then reaches every edge. The desired state the edge sync reads
// (visibility) holds the rollout while it runs, and the new spec alone
// once it is done.
func TestDistributionRolloutGateReverts(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 3, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		c.RolloutBake = 3 * time.Second // time to see the rollout in flight
	}})
	d := createDistribution(t, env, "/good")
	wfID := workflows.DistributionWorkflowID(appKey, d.Domain)
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	patch := func(path string) {
		t.Helper()
		body := map[string]any{"domain": d.Domain, "origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": path}}}
		if h := nhn(t, env, "PATCH", "/distributions", secret, body, nil); !h.IsSuccessful {
			t.Fatalf("patch %s: %+v", path, h)
		}
	}
	edgeVersions := func() workflows.EdgeVersions {
		t.Helper()
		v, err := env.Client.QueryWorkflow(context.Background(), wfID, "", workflows.QueryEdgeVersions)
		if err != nil {
			t.Fatal(err)
		}
		var ev workflows.EdgeVersions
		if err := v.Get(&ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	before := edgeVersions()
	// published waits until visibility lists the desired state the edge
	// sync reads: edgeSite fetching under path, and no rollout.
	published := func(path string) {
		t.Helper()
		eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
			for l, err := range workflows.ListDistributions(context.Background(), env.Client, workflows.DistributionQuery{Domain: d.Domain}) {
				if err != nil {
					return err
				}
				if l.Site == nil || l.Site.Config.Origins[0].OriginPath != path || l.Rollout != nil {
					return fmt.Errorf("published edge site %+v, rollout %+v; want %s and no rollout", l.Site, l.Rollout, path)
				}
				return nil
			}
			return fmt.Errorf("%s not listed", d.Domain)
		})
	}

	patch("/status/500")
	v := waitStatus(t, env, d.Domain, "ERROR")
	if !strings.Contains(v.LastError, "rollout gate failed") || !strings.Contains(v.LastError, "answers 500") {
		t.Fatalf("lastError = %q", v.LastError)
	}
	if len(v.Origins) != 1 || v.Origins[0].OriginPath != "/good" {
		t.Fatalf("config after the failed rollout = %+v", v.Origins)
	}
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/after-revert.js", ""); r.StatusCode != 200 || r.Header.Get("X-Origin-Path") != "/good/after-revert.js" {
			t.Fatalf("edge %d after the revert: %d %v", i, r.StatusCode, r.Header)
		}
	}
	published("/good")
	ev := edgeVersions()
	if ev.Version != before.Version || len(ev.Edges) != 1 {
		t.Fatalf("edge versions after the revert: %+v (before %+v), want only the canary on another version", ev, before)
	}

	start := time.Now()
	patch("/better")
	// While the canary bakes, the desired state the edge sync reads holds
	// the new spec for the canary only, the previous one for the others.
	eventually.WithinEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
		for l, err := range workflows.ListDistributions(context.Background(), env.Client, workflows.DistributionQuery{Domain: d.Domain}) {
			if err != nil {
				return err
			}
			if r := l.Rollout; r == nil || len(r.Edges) != 1 || r.Spec.Config.Origins[0].OriginPath != "/better" || l.Site.Config.Origins[0].OriginPath != "/good" {
				return fmt.Errorf("published edge site %+v, rollout %+v", l.Site, l.Rollout)
			}
			return nil
		}
		return fmt.Errorf("%s not listed", d.Domain)
	})
	if ev := edgeVersions(); ev.Wave != 1 || ev.Waves != 2 || len(ev.Edges) != 1 {
		t.Fatalf("edge versions during the canary's bake: %+v", ev)
	}
	eventually.WithinEvery(t, 30*time.Second, 50*time.Millisecond, func() error {
		for i := range env.Edges {
			if p := edgeGet(t, env, i, d.Domain, fmt.Sprintf("/live-%d.js", time.Now().UnixNano()), "").Header.Get("X-Origin-Path"); !strings.HasPrefix(p, "/better/") {
				return fmt.Errorf("edge %d fetched %q", i, p)
			}
		}
		return nil
	})
	t.Logf("good change live on %d edges %v after the PATCH", len(env.Edges), time.Since(start).Round(time.Millisecond))
	waitStatus(t, env, d.Domain, "OPEN")
	published("/better")
	if ev := edgeVersions(); len(ev.Edges) != 0 || ev.Version <= before.Version {
		t.Fatalf("edge versions after the good change: %+v", ev)
	}
	env.Replay(t, wfID, "distribution_rollout_every_wave")
}
