//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/workflows"
)

// operatorVCL is what an operator's reload might make active: it knows
// nothing of cdnflow's distributions.
const operatorVCL = `vcl 4.1;
backend default none;
sub vcl_recv { return (synth(503, "operator maintenance")); }
`

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
	if err := adm.VCLInline(ctx, "operator", operatorVCL); err != nil {
		t.Fatal(err)
	}
	if err := adm.VCLUse(ctx, "operator"); err != nil {
		t.Fatal(err)
	}
	if served(0)() == nil {
		t.Fatal("the operator's VCL still served the distribution: the drift test tests nothing")
	}
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, served(0))

	env.Edges[1].Connector.Table().Replace(nil)
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
	env.Edges[0].Connector.Table().Replace(nil)
	if served(0)() == nil {
		t.Fatal("an empty site table still served the distribution")
	}
	// The worker starts the loop again within 4 periods; it rebuilds the
	// sites from the distribution workflows.
	eventually.WithinEvery(t, 45*time.Second, 200*time.Millisecond, served(0))
	env.Replay(t, workflows.EdgeSyncWorkflowID, "")
}
