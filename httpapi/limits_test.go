//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// appTwo and secretTwo (tokens_test.go) are the second tenant.

// nhnAnswer is one /v1.5 answer with its header fields and latency.
type nhnAnswer struct {
	header  nhnHeader
	fields  http.Header
	latency time.Duration
}

// nhnAs calls a /v1.5 route of appKey key with its secret, keeping the
// response's header fields (Retry-After, RateLimit-*).
func nhnAs(t *testing.T, env *testenv.Env, method, key, sec, path string, body any) nhnAnswer {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, env.API.URL+"/v1.5/appKeys/"+key+path, strings.NewReader(string(raw)))
	req.Header.Set("Authorization", sec)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return nhnFailed()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var env2 struct {
		Header nhnHeader `json:"header"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &env2) != nil {
		t.Errorf("%s %s = HTTP %d %s", method, path, resp.StatusCode, data)
	}
	return nhnAnswer{header: env2.Header, fields: resp.Header, latency: time.Since(start)}
}

func nhnFailed() nhnAnswer { return nhnAnswer{header: nhnHeader{ResultCode: -1}} }

// createFor creates a distribution of appKey key and waits until OPEN.
func createFor(t *testing.T, env *testenv.Env, key, sec string) string {
	t.Helper()
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	body := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/"}},
	}}}
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "@"+key+"/distributions", sec, body, &created); !h.IsSuccessful {
		t.Fatalf("create for %s: %+v", key, h)
	}
	d := created.Distributions[0].Domain
	eventually.WithinEvery(t, 90*time.Second, 200*time.Millisecond, func() error {
		var out struct {
			Distributions []service.DistributionView `json:"distributions"`
		}
		if h := nhn(t, env, "GET", "@"+key+"/distributions?domain="+d, sec, nil, &out); !h.IsSuccessful {
			t.Fatalf("list: %+v", h)
		}
		if len(out.Distributions) == 1 && out.Distributions[0].Status == "OPEN" {
			return nil
		}
		return fmt.Errorf("%s not OPEN: %+v", d, out.Distributions)
	})
	return d
}

func pcts(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s p99 %s (n=%d)", s[len(s)/2].Round(time.Millisecond), s[(len(s)-1)*99/100].Round(time.Millisecond), len(s))
}

// One tenant flooding the purge API at its NHN limit (one request per
// second per appKey) refuses only itself: its refusals come with
// Retry-After and the RateLimit fields, while another tenant's purges,
// one per interval, are all admitted, as without the flood. Latencies of
// the second tenant with and without the flood and of the refusals are
// logged, not asserted.
func TestTenantAtItsLimitDoesNotRefuseAnother(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, appTwo: secretTwo}
	}})
	flooder, quiet := createFor(t, env, appKey, secret), createFor(t, env, appTwo, secretTwo)
	// The second tenant's purges, each 1.2 s after the last answer (its
	// limit is one admitted per 1 s, by the counter's clock).
	quietPurges := func(n int) []time.Duration {
		var lat []time.Duration
		for i := 0; i < n; i++ {
			a := nhnAs(t, env, "POST", appTwo, secretTwo, "/purges", map[string]any{"domain": quiet, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/quiet/%d.js", i)})
			if !a.header.IsSuccessful {
				t.Errorf("the quiet tenant's purge %d = %+v, want admitted", i, a.header)
			}
			lat = append(lat, a.latency)
			time.Sleep(1200 * time.Millisecond)
		}
		return lat
	}
	alone := quietPurges(6)

	stop := make(chan struct{})
	var mu sync.Mutex
	var refusals []time.Duration
	var admitted, other atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := nhnAs(t, env, "POST", appKey, secret, "/purges", map[string]any{"domain": flooder, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/flood/%d/%d.js", c, i)})
				switch {
				case a.header.IsSuccessful:
					admitted.Add(1)
				case a.header.ResultCode == httpapi.NHNRateLimited:
					if a.fields.Get("Retry-After") == "" || a.fields.Get("RateLimit-Policy") != `"purge-items";q=1;w=1` ||
						!strings.HasPrefix(a.fields.Get("RateLimit"), `"purge-items";r=0;t=`) {
						t.Errorf("refusal without Retry-After and RateLimit fields: %v", a.fields)
					}
					mu.Lock()
					refusals = append(refusals, a.latency)
					mu.Unlock()
				default:
					other.Add(1)
					t.Errorf("flooding tenant's purge = %+v", a.header)
				}
			}
		}()
	}
	floodStart := time.Now()
	flooded := quietPurges(6)
	close(stop)
	flood := time.Since(floodStart)
	wg.Wait()
	t.Logf("quiet tenant alone: %s; during the flood: %s", pcts(alone), pcts(flooded))
	t.Logf("flooding tenant: %d admitted, %d refused (refusal latency %s)", admitted.Load(), len(refusals), pcts(refusals))
	if len(refusals) < 50 || admitted.Load() < 1 {
		t.Fatalf("the flood was not at its limit: %d admitted, %d refused", admitted.Load(), len(refusals))
	}
	// At one per second, the flooder cannot have been admitted more than
	// once per second of the flood (plus the first).
	if max := int64(flood/time.Second) + 2; admitted.Load() > max {
		t.Fatalf("flooding tenant admitted %d purges in %s; its limit is one per second", admitted.Load(), flood)
	}
}

// A tenant with --tenant-max-running jobs running is refused (30001, with
// Retry-After and RateLimit fields) while another tenant is admitted. The
// edge resets every connection, so admitted purges stay running (they
// retry until their deadline).
func TestTenantRunningCapRefusesOnlyThatTenant(t *testing.T) {
	fe := startFaultEdges(t, 1, false, func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, appTwo: secretTwo}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		c.TenantMaxRunning = 3
		c.EdgePurgeTimeout, c.EdgeBanTimeout, c.EdgeProbeTimeout = time.Second, time.Second, time.Second
	})
	env := fe.env
	flooder, quiet := createFor(t, env, appKey, secret), createFor(t, env, appTwo, secretTwo)
	fe.http[0].SetMode(edgetest.Reset())
	var refused nhnAnswer
	for i := 0; i < 40 && refused.header.ResultCode == 0; i++ {
		a := nhnAs(t, env, "POST", appKey, secret, "/purges", map[string]any{"domain": flooder, "purgeType": "ITEM", "purgeList": fmt.Sprintf("/busy/%d.js", i)})
		if !a.header.IsSuccessful {
			refused = a
		}
		time.Sleep(100 * time.Millisecond)
	}
	if refused.header.ResultCode != httpapi.NHNRateLimited || !strings.Contains(refused.header.ResultMessage, "too many jobs running") ||
		refused.fields.Get("Retry-After") == "" || refused.fields.Get("RateLimit-Policy") != `"tenant-jobs";q=3;w=1` {
		t.Fatalf("tenant past its running jobs = %+v %v, want 30001 with RateLimit fields", refused.header, refused.fields)
	}
	if a := nhnAs(t, env, "POST", appTwo, secretTwo, "/purges", map[string]any{"domain": quiet, "purgeType": "ITEM", "purgeList": "/other.js"}); !a.header.IsSuccessful {
		t.Fatalf("the other tenant's purge = %+v, want admitted", a.header)
	}
}

// An Idempotency-Key is bound to the request: the same key and body
// answer the first job (on either API), another body with the key is
// refused 422 and warms nothing; two APIs racing one key start exactly
// one workflow run, whether the bodies are the same (both answer its
// requestID) or not (one is refused). A prewarm header naming cdnflow's
// own protocol is refused.
func TestIdempotencyKeyBoundToTheBody(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	a, b := env, secondAPI(t, env)
	body := func(paths ...string) map[string]any {
		var urls []string
		for _, p := range paths {
			urls = append(urls, "http://"+domain+p)
		}
		return map[string]any{"url_list": urls, "cf_domain": domain, "region": "all"}
	}
	key := map[string]string{"Idempotency-Key": "release-42"}
	first := startPrewarm(t, a, body("/idem/a.css"), key)
	if again := startPrewarm(t, b, body("/idem/a.css"), key); again != first {
		t.Fatalf("same key and body on API B = %s, want %s", again, first)
	}
	resp, data := postJSON(t, b.API.URL+"/prewarm", body("/idem/b.css"), key)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(data), `"code":"IdempotencyKeyReused"`) {
		t.Fatalf("same key, another body = %d %s, want 422 IdempotencyKeyReused", resp.StatusCode, data)
	}
	if st := waitPrewarm(t, a, first); st.Status != "COMPLETED" || st.Total != 1 {
		t.Fatalf("first job = %+v", st)
	}
	if c := cacheState(t, env, 0, "/idem/b.css"); c != "MISS" {
		t.Fatalf("/idem/b.css = %s: the refused body was warmed", c)
	}
	for i, bodies := range [][2]map[string]any{
		{body("/race/same.css"), body("/race/same.css")},
		{body("/race/one.css"), body("/race/other.css")},
	} {
		hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("race-%d", i)}
		codes, ids := make([]int, 2), make([]string, 2)
		var wg sync.WaitGroup
		for j, api := range []*testenv.Env{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, data := postJSON(t, api.API.URL+"/prewarm", bodies[j], hdr)
				var out struct{ RequestID string }
				if resp.StatusCode == http.StatusOK {
					_ = json.Unmarshal(data, &out)
				}
				codes[j], ids[j] = resp.StatusCode, out.RequestID
			}()
		}
		wg.Wait()
		slices.Sort(codes)
		id := slices.Max(ids)
		want := []int{200, 200}
		if i == 1 {
			want = []int{200, 422}
		}
		if !slices.Equal(codes, want) || (i == 0 && ids[0] != ids[1]) {
			t.Fatalf("race %d: answers %v %v, want %v", i, codes, ids, want)
		}
		if runs := countRuns(t, env, workflows.PrewarmWorkflowID(id)); runs != 1 {
			t.Fatalf("race %d: %d workflow runs of %s, want exactly 1", i, runs, id)
		}
	}
	for _, h := range []string{"X-Cdnflow-Control", "x-cdnflow-origins", "Connection", "X-Forwarded-Host", "Upgrade"} {
		b := body("/hdr.css")
		b["header"] = map[string]string{h: "1"}
		resp, data := postJSON(t, a.API.URL+"/prewarm", b, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "cannot be set by a prewarm") {
			t.Fatalf("prewarm header %s = %d %s, want 400", h, resp.StatusCode, data)
		}
	}
}

// countRuns counts the workflow runs of one workflow id in visibility
// (it lags: waited for until at least one shows).
func countRuns(t *testing.T, env *testenv.Env, wfID string) int64 {
	t.Helper()
	var n int64
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		resp, err := env.Client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", wfID)})
		if err != nil {
			t.Fatalf("count runs of %s: %v", wfID, err)
		}
		if n = resp.GetCount(); n > 0 {
			return n
		}
	}
	return n
}
