//go:build !unit

package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// With private callbacks not allowed (the production default; the other
// test envs allow them so their callbacks reach a loopback server), a
// distribution whose callback names a host that resolves to loopback opens
// as usual, its callback is refused at connect time and recorded as
// refused, and the target never sees a request.
func TestDistributionCallbackToPrivateAddressIsRefused(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer target.Close()
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.AllowPrivateCallbacks = false
	}})
	if env.Config.AllowPrivateCallbacks {
		t.Fatal("the env allows private callbacks")
	}
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	// A name, not a literal address: the check runs on the resolved
	// address of the connection.
	cbURL := strings.Replace(target.URL, "127.0.0.1", "localhost", 1) + "/cb?status={status}"
	var created struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins":  []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/"}},
		"callback": map[string]any{"httpMethod": "POST", "url": cbURL},
	}}}, &created); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	domain := created.Distributions[0].Domain
	waitStatus(t, env, domain, "OPEN")

	var view service.DistributionView
	eventually.Within(t, 60*time.Second, func() error {
		view = waitStatus(t, env, domain, "OPEN")
		for _, cb := range view.Callbacks {
			if cb.Status == "OPEN" {
				return nil
			}
		}
		return fmt.Errorf("no OPEN callback recorded yet: %+v", view.Callbacks)
	})
	for _, cb := range view.Callbacks {
		if cb.OK || !strings.Contains(cb.Error, "loopback") {
			t.Errorf("callback %+v, want refused as a loopback target", cb)
		}
	}
	// The refusal is the worker's, in the workflow's history: the callback
	// activity failed as CallbackRefused and was not retried.
	refused := 0
	for _, ev := range env.History(t, "distribution/"+appKey+"/"+domain).GetEvents() {
		if failed := ev.GetActivityTaskFailedEventAttributes(); failed.GetFailure().GetApplicationFailureInfo().GetType() == "CallbackRefused" {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no CallbackRefused activity failure in the distribution's history")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the private callback target was reached %d times", n)
	}
}
