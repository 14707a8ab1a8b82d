//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A distribution whose aliases have no claim (it ran before host
// ownership existed; here its claims are terminated) is not found by the
// per-host prewarm lookup; a worker's start-up claim pass
// (worker.ClaimAppliedHosts) claims them for it, so it is found, and
// leaves alone an alias another distribution claimed meanwhile.
func TestWorkerStartClaimsAppliedHosts(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = "" // a host without a distribution is refused, not served by default
	}})
	const missing, taken = "missing.claims.test", "taken.claims.test"
	d := createOpenDistribution(t, env, appKey, secret, missing+"\n"+taken)
	ctx := context.Background()
	for _, h := range []string{missing, taken} {
		if err := env.Client.TerminateWorkflow(ctx, workflows.HostWorkflowID(h), "", "a distribution from before host ownership"); err != nil {
			t.Fatalf("terminate the claim on %s: %v", h, err)
		}
	}
	// Another distribution claims one of the aliases meanwhile (the
	// claim's check drops it only HostClaimGrace later).
	other := workflows.HostOwner{AppKey: appKey, Domain: "other.claims.test"}
	if _, err := workflows.ClaimHosts(ctx, env.Client, env.Config.TaskQueue, other, []string{taken}); err != nil {
		t.Fatalf("claim %s for %+v: %v", taken, other, err)
	}
	prewarm := func(host string) (int, string) {
		resp, data := postJSON(t, env.API.URL+"/prewarm", `{"url_list":["http://`+host+`/a.js"],"region":"all"}`, nil)
		return resp.StatusCode, string(data)
	}
	if code, body := prewarm(missing); code != http.StatusBadRequest || !strings.Contains(body, "host "+missing+" is served by no distribution") {
		t.Fatalf("prewarm of %s without its claim = %d %s, want 400 served by no distribution (the case under test)", missing, code, body)
	}

	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stack.RunWorker(wctx, env.Config, env.Inventory, env.Client, env.Payloads, env.Logger) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	eventually.Within(t, 30*time.Second, func() error {
		if code, body := prewarm(missing); code != http.StatusOK {
			return fmt.Errorf("prewarm of %s = %d %s", missing, code, body)
		}
		return nil
	})
	if owner := hostOwner(t, env, missing); owner.Domain != d || owner.AppKey != appKey {
		t.Fatalf("claim on %s held by %+v, want %s", missing, owner, d)
	}
	if owner := hostOwner(t, env, taken); owner != other {
		t.Fatalf("claim on %s held by %+v, want %+v (not taken by the pass)", taken, owner, other)
	}
}
