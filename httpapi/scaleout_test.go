//go:build !unit

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// secondAPI serves a second API on env's Temporal, as a second `cdnflow
// api` process would: its own Temporal client and service (own admission
// gate, nothing shared in memory). The copy of env it returns talks to it.
func secondAPI(t *testing.T, env *testenv.Env) *testenv.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stack.Connect(ctx, env.Config, env.Logger)
	if err != nil {
		t.Fatalf("second API: %v", err)
	}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Temporal: c, Config: env.Config, Inventory: env.Inventory, Logger: env.Logger, Payloads: env.Payloads}))
	t.Cleanup(func() { ts.Close(); c.Close() })
	other := *env
	other.API.URL = ts.URL
	return &other
}

// NHN's per-appKey purge limits hold across two API processes.
// The rate token lives in Temporal (service/purge_limit.go), so a purge
// admitted by one API refuses the next one on the other with NHN's
// envelope (HTTP 200, isSuccessful false, resultCode 30001) until the
// interval has passed; other scopes and other appKeys are not held back.
func TestPurgeLimitsHoldAcrossTwoAPIs(t *testing.T) {
	const every = 8 * time.Second
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret, "app-two": "secret-two"}
		c.PurgeItemInterval = every
		c.PurgeAllInterval = time.Hour
	}})
	a, b := env, secondAPI(t, env)
	d := createDistribution(t, a, "/")
	item := map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a.css"}

	sent := time.Now()
	if h := nhn(t, a, "POST", "/purges", secret, item, nil); !h.IsSuccessful {
		t.Fatalf("first ITEM purge on API A = %+v", h)
	}
	for name, api := range map[string]*testenv.Env{"B": b, "A": a} {
		h := nhn(t, api, "POST", "/purges", secret, item, nil)
		if h.IsSuccessful || h.ResultCode != httpapi.NHNRateLimited || !strings.Contains(h.ResultMessage, "one per "+every.String()) {
			t.Fatalf("ITEM purge on API %s right after A's = %+v, want resultCode %d (one per %s)", name, h, httpapi.NHNRateLimited, every)
		}
	}
	// ALL has its own limit, per domain: admitted once, on either API.
	all := map[string]any{"domain": d.Domain, "purgeType": "ALL"}
	if h := nhn(t, b, "POST", "/purges", secret, all, nil); !h.IsSuccessful {
		t.Fatalf("ALL purge on API B = %+v", h)
	}
	if h := nhn(t, a, "POST", "/purges", secret, all, nil); h.IsSuccessful || h.ResultCode != httpapi.NHNRateLimited {
		t.Fatalf("second ALL purge, on API A = %+v, want %d", h, httpapi.NHNRateLimited)
	}
	// Another appKey has its own limits: its unknown domain is the answer.
	if h := nhn(t, b, "POST", "@app-two/purges", "secret-two", item, nil); h.ResultCode != httpapi.NHNNotFound {
		t.Fatalf("app-two's purge = %+v, want %d (not rate limited)", h, httpapi.NHNNotFound)
	}
	// Once the interval has passed, B admits the next ITEM purge; refused
	// tries take no token, so polling does not extend the wait.
	eventually.WithinEvery(t, time.Minute, 250*time.Millisecond, func() error {
		if h := nhn(t, b, "POST", "/purges", secret, item, nil); !h.IsSuccessful {
			return fmt.Errorf("ITEM purge on API B %s after A's: %+v", time.Since(sent).Round(time.Millisecond), h)
		}
		return nil
	})
	if waited := time.Since(sent); waited < every {
		t.Fatalf("B admitted an ITEM purge %s after A's; the limit is one per %s", waited, every)
	}
}

// An Idempotency-Key maps to the prewarm's workflow id, so it
// holds across API processes: the same key sent to two APIs at once
// answers one requestID and runs one job.
func TestIdempotencyKeyHoldsAcrossTwoAPIs(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	a, b := env, secondAPI(t, env)
	body := map[string]any{"url_list": []string{"http://" + domain + "/two-apis.css"}, "cf_domain": domain, "region": "all"}
	hdr := map[string]string{"Idempotency-Key": "release-two-apis"}
	raw, _ := json.Marshal(body)
	ids, errs := make([]string, 2), make([]error, 2)
	var wg sync.WaitGroup
	for i, api := range []*testenv.Env{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, api.API.URL+"/prewarm", bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", hdr["Idempotency-Key"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var out struct{ RequestID string }
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("prewarm on API %d = HTTP %d (%v)", i, resp.StatusCode, err)
			}
			ids[i] = out.RequestID
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("one Idempotency-Key on two APIs answered %s and %s", ids[0], ids[1])
	}
	st := waitPrewarm(t, b, ids[0])
	if st.Status != "COMPLETED" || st.Total != 1 {
		t.Fatalf("job = %+v, want one URL warmed once", st)
	}
	if c := cacheState(t, env, 0, "/two-apis.css"); c != "HIT" {
		t.Fatalf("/two-apis.css = %s after the job, want HIT", c)
	}
}
