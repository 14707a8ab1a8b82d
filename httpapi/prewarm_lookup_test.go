//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// A prewarm's target is looked up per host (service/prewarm_lookup.go):
// the claim of an alias and the distribution's own state, whatever appKey
// holds it; a released host and a host whose claim is held by a
// distribution that never applied it are served by no distribution.
func TestPrewarmTargetLookupPerHost(t *testing.T) {
	const twoKey, twoSecret = "app-two", "secret-two"
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, twoKey: twoSecret}
		c.DefaultOrigin = "" // a host without a distribution is refused, not served by default
	}})
	two := createOpenDistribution(t, env, twoKey, twoSecret, "two.lookup.test")
	refused := func(t *testing.T, body, want string) {
		t.Helper()
		resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
		var e struct{ Code, Message string }
		_ = json.Unmarshal(data, &e)
		if resp.StatusCode != http.StatusBadRequest || e.Code != "InvalidRequest" || !strings.Contains(e.Message, want) {
			t.Fatalf("%s = %d %s, want 400 containing %q", body, resp.StatusCode, data, want)
		}
	}

	t.Run("alias and domain of another appKey's distribution", func(t *testing.T) {
		for _, body := range []string{
			`{"url_list":["http://two.lookup.test/by-alias.js"],"region":"all"}`,
			`{"url_list":["http://` + two + `/by-domain.js","http://two.lookup.test/by-domain.js"],"cf_domain":"` + two + `","region":"all"}`,
		} {
			resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
			var out struct{ RequestID string }
			if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.RequestID == "" {
				t.Fatalf("prewarm %s = %d %s", body, resp.StatusCode, data)
			}
			st := waitPrewarm(t, env, out.RequestID)
			if st.Status != "COMPLETED" || st.Domain != two || len(st.FailedURL) != 0 {
				t.Fatalf("%s: status %+v, want COMPLETED on %s", body, st, two)
			}
		}
		if got := browserCache(t, env, 0, "two.lookup.test", "/by-alias.js"); got != "HIT" {
			t.Fatalf("alias URL after its prewarm = %s, want HIT", got)
		}
	})

	t.Run("claim held by a distribution in ERROR that never applied the host", func(t *testing.T) {
		failed := distributionBody(env, "pending.lookup.test")
		failed["origins"] = []map[string]any{{"origin": "nowhere.invalid", "port": 80}}
		var created struct{ Distributions []service.DistributionView }
		if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []any{failed}}, &created); !h.IsSuccessful || len(created.Distributions) != 1 {
			t.Fatalf("create with an unusable origin: %+v %+v", h, created)
		}
		broken := created.Distributions[0].Domain
		eventually.Within(t, 90*time.Second, func() error {
			var view struct{ Distributions []service.DistributionView }
			nhn(t, env, "GET", "/distributions?domain="+broken, secret, nil, &view)
			if len(view.Distributions) != 1 || view.Distributions[0].Status != "ERROR" {
				return fmt.Errorf("%s not in ERROR: %+v", broken, view.Distributions)
			}
			return nil
		})
		if owner := hostOwner(t, env, "pending.lookup.test"); owner.Domain != broken {
			t.Fatalf("claim on pending.lookup.test held by %+v, want %s (the case under test)", owner, broken)
		}
		refused(t, `{"url_list":["http://pending.lookup.test/a.js"],"region":"all"}`,
			`host pending.lookup.test is served by no distribution`)
		refused(t, `{"url_list":["http://pending.lookup.test/a.js"],"cf_domain":"`+broken+`","region":"all"}`,
			`host pending.lookup.test is not served by distribution `+broken)
	})

	t.Run("released host", func(t *testing.T) {
		if h := nhn(t, env, "DELETE", "@"+twoKey+"/distributions", twoSecret, map[string]any{"domains": []string{two}}, nil); !h.IsSuccessful {
			t.Fatalf("delete %s: %+v", two, h)
		}
		for _, id := range []string{workflows.HostWorkflowID("two.lookup.test"), workflows.DistributionWorkflowID(twoKey, two)} {
			eventually.Within(t, 60*time.Second, func() error {
				desc, err := env.Client.DescribeWorkflowExecution(context.Background(), id, "")
				if err != nil {
					return err
				}
				if s := desc.GetWorkflowExecutionInfo().GetStatus(); s == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					return fmt.Errorf("%s still running", id)
				}
				return nil
			})
		}
		// The claim's whole life: claimed, released, ended.
		env.Replay(t, workflows.HostWorkflowID("two.lookup.test"), "host_owner_memo")
		refused(t, `{"url_list":["http://two.lookup.test/after.js"],"region":"all"}`,
			`host two.lookup.test is served by no distribution`)
		// The generated domain is found through visibility, which may still
		// list the closed distribution as being deleted for a moment; it
		// must never be served.
		body := `{"url_list":["http://two.lookup.test/after.js"],"cf_domain":"` + two + `","region":"all"}`
		eventually.Within(t, 30*time.Second, func() error {
			resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
			var e struct{ Code, Message string }
			_ = json.Unmarshal(data, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Code != "InvalidRequest" {
				t.Fatalf("%s = %d %s, want 400", body, resp.StatusCode, data)
			}
			if want := `cf_domain ` + two + ` is neither the domain nor a domainAlias of a live distribution`; !strings.Contains(e.Message, want) {
				if !strings.Contains(e.Message, "is being deleted") {
					t.Fatalf("%s = %s, want %q (or, while visibility lags, being deleted)", body, data, want)
				}
				return fmt.Errorf("visibility still lists %s: %s", two, e.Message)
			}
			return nil
		})
	})
}

// hostOwner is the holder of host's claim as its memo publishes it
// (MemoHostOwner, what the lookup reads with a describe), checked against
// the claim's own answer (QueryHostOwner).
func hostOwner(t *testing.T, env *testenv.Env, host string) workflows.HostOwner {
	t.Helper()
	id := workflows.HostWorkflowID(host)
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatalf("claim of %s: %v", host, err)
	}
	var published, answered workflows.HostOwner
	p, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.MemoHostOwner]
	if !ok {
		t.Fatalf("claim of %s publishes no %s memo", host, workflows.MemoHostOwner)
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &published); err != nil {
		t.Fatal(err)
	}
	v, err := env.Client.QueryWorkflow(context.Background(), id, "", workflows.QueryHostOwner)
	if err != nil || v.Get(&answered) != nil || answered != published {
		t.Fatalf("claim of %s: memo %+v, query %+v (%v)", host, published, answered, err)
	}
	return published
}
