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
// reports it, new prewarm jobs are refused with 429 and Retry-After and
// purges with 30001, instead of queueing jobs nobody runs.
func TestJobsRefusedWhileWorkersAreBehind(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true, Configure: func(c *config.Config) {
		c.MaxBacklog = 1
		c.AppKeys = map[string]string{appKey: secret}
	}})
	body := map[string]any{"url_list": []string{"http://" + domain + "/a.js"}, "cf_domain": domain, "target_type": "pop", "region": []string{env.Edges[0].Edge.ID}}
	eventually.WithinEvery(t, 60*time.Second, 500*time.Millisecond, func() error {
		resp, data := postJSON(t, env.API.URL+"/prewarm", body, nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(data), `"code":"TooManyRequests"`) {
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
	if h.IsSuccessful || h.ResultCode != 30001 || !strings.Contains(h.ResultMessage, "behind") {
		t.Fatalf("purge while behind = %+v, want 30001", h)
	}
}
