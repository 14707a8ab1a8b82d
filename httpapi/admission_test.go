//go:build !unit

package httpapi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// With no worker taking tasks, the queue backlog grows; once Temporal
// reports it, the tenant whose jobs fill it (here the prewarm caller,
// with TenantBehindRunning running) is refused with 429, Retry-After and
// the RateLimit fields, instead of queueing jobs nobody runs; another
// tenant with no running job is still admitted (its purge of an unknown
// domain is answered 10002, not refused by the backlog).
func TestJobsRefusedWhileWorkersAreBehind(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true, Configure: func(c *config.Config) {
		c.MaxBacklog = 1
		c.TenantBehindRunning = 2
		c.AppKeys = map[string]string{appKey: secret}
	}})
	body := map[string]any{"url_list": []string{"http://" + domain + "/a.js"}, "cf_domain": domain, "target_type": "pop", "region": []string{env.Edges[0].Edge.ID}}
	eventually.WithinEvery(t, 60*time.Second, 500*time.Millisecond, func() error {
		resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(data), `"code":"TooManyRequests"`) ||
				!strings.Contains(resp.Header.Get("RateLimit-Policy"), `"backlog";q=1;w=1`) || !strings.Contains(resp.Header.Get("RateLimit"), `"backlog";r=0;t=`) {
				t.Fatalf("429 without Retry-After or code: %v %s", resp.Header, data)
			}
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("prewarm = %d %s", resp.StatusCode, data)
		}
		return errors.New("jobs are still admitted into a stalled queue")
	})
	h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": "any.example", "purgeType": "ALL"}, nil)
	if h.ResultCode != 10002 {
		t.Fatalf("another tenant's purge while behind = %+v, want 10002 (admitted, unknown domain)", h)
	}
}
