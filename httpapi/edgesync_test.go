//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/workflows"
)

// operatorVCL is what an operator's reload might make active: it knows
// nothing of cdnflow's distributions and caches straight from origin.
func operatorVCL(origin string) string {
	host, port, _ := strings.Cut(origin, ":")
	return fmt.Sprintf("vcl 4.1;\nbackend default { .host = %q; .port = %q; }\n", host, port)
}

// Drift is healed without anyone asking: another VCL made active on an
// edge (vcl.use, as an operator's reload does), an edge whose site table
// came back empty (a restarted connector), and both again after the sync
// loop itself was terminated (a worker starts it again and it rebuilds
// every site from the distributions). GET /v1/edges shows the drift.
func TestEdgeDriftHealed(t *testing.T) {
	env := faultEnv(t)
	d := createDistribution(t, env, "/good")
	n := 0
	served := func(i int) func() error {
		return func() error {
			n++ // a path never cached: the answer is the edge's routing now
			path := fmt.Sprintf("/x%d.js", n)
			r := edgeGet(t, env, i, d.Domain, path, "")
			if got := r.Header.Get("X-Origin-Path"); r.StatusCode != 200 || got != "/good"+path {
				return fmt.Errorf("edge %d: %d, fetched %q", i, r.StatusCode, got)
			}
			return nil
		}
	}
	for i := range env.Edges {
		eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, served(i))
	}
	ctx := context.Background()

	adm := env.Edges[0].Admin(t)
	if err := adm.VCLInline(ctx, "operator", operatorVCL(env.OriginAddr)); err != nil {
		t.Fatal(err)
	}
	if err := adm.VCLUse(ctx, "operator"); err != nil {
		t.Fatal(err)
	}
	// What the operator's VCL caches comes from the wrong path.
	if got := edgeGet(t, env, 0, d.Domain, "/z.js", "").Header.Get("X-Origin-Path"); got != "/z.js" {
		t.Fatalf("the operator's VCL fetched %q: the drift test tests nothing", got)
	}
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, served(0))
	// Healed, the edge no longer serves what the foreign VCL cached.
	if got := edgeGet(t, env, 0, d.Domain, "/z.js", "").Header.Get("X-Origin-Path"); got != "/good/z.js" {
		t.Fatalf("after the heal /z.js is %q, want /good/z.js (objects cached by the foreign VCL banned)", got)
	}

	if err := env.Edges[1].Connector.Table().Replace(nil); err != nil {
		t.Fatal(err)
	}
	if served(1)() == nil {
		t.Fatal("an empty site table still served the distribution")
	}
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, served(1))

	eventually.WithinEvery(t, 30*time.Second, 500*time.Millisecond, func() error {
		var out struct {
			Edges []struct {
				ID   string                     `json:"id"`
				Sync *activities.EdgeSyncReport `json:"sync"`
			} `json:"edges"`
		}
		getJSON(t, env.API.URL+"/v1/edges", &out)
		want := map[string]string{env.Edges[0].Edge.ID: "vcl", env.Edges[1].Edge.ID: "missing"}
		for _, e := range out.Edges {
			r, ok := want[e.ID]
			if !ok {
				continue
			}
			if e.Sync == nil || !slices.Contains(e.Sync.LastDrift, r) || e.Sync.Sites != 1 || e.Sync.CheckedAt.IsZero() {
				return fmt.Errorf("edge %s: sync report %+v, want last drift %q and 1 site", e.ID, e.Sync, r)
			}
		}
		return nil
	})

	if err := env.Client.TerminateWorkflow(ctx, workflows.EdgeSyncWorkflowID, "", "test: the loop is rebuilt"); err != nil {
		t.Fatal(err)
	}
	if err := env.Edges[0].Connector.Table().Replace(nil); err != nil {
		t.Fatal(err)
	}
	if served(0)() == nil {
		t.Fatal("an empty site table still served the distribution")
	}
	// The worker starts the loop again within 4 periods; it rebuilds the
	// sites from the distribution workflows.
	eventually.WithinEvery(t, 45*time.Second, 200*time.Millisecond, served(0))
	env.Replay(t, workflows.EdgeSyncWorkflowID, "")
}

// The on-demand edge check reports a foreign VCL as drift (the sync loop
// of this env runs once at start, so the drift stays for the check).
func TestEdgeCheckReportsDrift(t *testing.T) {
	fe := startFaultEdges(t, 1, false, nil)
	adm := fe.env.Edges[0].Admin(t)
	ctx := context.Background()
	if err := adm.VCLInline(ctx, "operator", operatorVCL(fe.env.OriginAddr)); err != nil {
		t.Fatal(err)
	}
	if err := adm.VCLUse(ctx, "operator"); err != nil {
		t.Fatal(err)
	}
	id := startEdgeCheckJob(t, fe.env.API.URL)
	eventually.WithinEvery(t, 60*time.Second, 200*time.Millisecond, func() error {
		var res workflows.EdgeCheckResult
		getJSON(t, fe.env.API.URL+"/v1/edges/check/"+id, &res)
		if !res.Done || len(res.Edges) != 1 {
			return fmt.Errorf("check not done: %+v", res)
		}
		if h := res.Edges[0]; h.ActiveVCL != "operator" || h.Drift != "vcl" || !h.HTTPOK || !h.AdminOK {
			t.Fatalf("edge check = %+v, want the operator VCL reported as drift", h)
		}
		return nil
	})
}

// startEdgeCheckJob starts an edge check of every edge and returns its id.
func startEdgeCheckJob(t *testing.T, api string) string {
	t.Helper()
	resp, err := http.Post(api+"/v1/edges/check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var started struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&started); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start edge check: %d %v", resp.StatusCode, err)
	}
	return started.ID
}
