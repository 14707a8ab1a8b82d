//go:build !unit

package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
)

// With private callbacks not allowed (the production default), a webhook
// whose URL is or resolves to an internal address is refused at create
// with a /v1 JSON 400 that names the address, before anything is stored.
func TestWebhookInternalAddressesRefusedOnCreate(t *testing.T) {
	cfg := config.Default()
	cfg.AppKeys = map[string]string{appKey: secret}
	cfg.AllowPrivateCallbacks = false
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Config: cfg, Logger: zap.NewNop()}))
	defer srv.Close()
	for _, u := range []string{
		"http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
		"https://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/hook", "http://100.64.0.1/hook",
		"http://0.0.0.0:8080/hook", "http://[fe80::1]/hook",
	} {
		code, data, _ := call(t, srv.URL, "POST", "/v1/webhooks", nil, map[string]any{"appKey": appKey, "url": u})
		if code != http.StatusBadRequest || !strings.Contains(string(data), "refused") || !strings.Contains(string(data), `"code"`) {
			t.Errorf("create %s = %d %s, want 400 refused", u, code, data)
		}
	}
	for _, u := range []string{"ftp://example.com/x", "http:///nohost", strings.Repeat("x", 2000)} {
		if code, data, _ := call(t, srv.URL, "POST", "/v1/webhooks", nil, map[string]any{"appKey": appKey, "url": u}); code != http.StatusBadRequest {
			t.Errorf("create %.40s = %d %s, want 400", u, code, data)
		}
	}
}

// At delivery the callbacks' address policy holds on every connection
// (a DNS change after the create): a loopback receiver is never reached,
// the refusal is not retried, and the error carries neither the URL's
// query (a tenant's token) nor the secret.
func TestWebhookDeliveryRefusesInternalAddress(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer target.Close()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	wh := &activities.Webhooks{}
	env.RegisterActivity(wh.DeliverWebhook)
	secretKey := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	req := activities.WebhookRequest{
		URL:    strings.Replace(target.URL, "127.0.0.1", "localhost", 1) + "/hook?token=tenant-token",
		Secret: secretKey, MessageID: "msg_1", Type: "purge.done", At: 1, Data: map[string]any{"jobId": "1"},
	}
	_, err := env.ExecuteActivity(wh.DeliverWebhook, req)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrWebhookRefused || !appErr.NonRetryable() {
		t.Fatalf("delivery to loopback: %v, want a non-retryable %s", err, activities.ErrWebhookRefused)
	}
	if msg := err.Error(); strings.Contains(msg, "tenant-token") || strings.Contains(msg, secretKey) {
		t.Errorf("error %q carries the URL's query or the secret", msg)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver was reached %d times", n)
	}
	// The same receiver, allowed (tests, dev), gets the event.
	allowed := &activities.Webhooks{AllowPrivate: true}
	env2 := suite.NewTestActivityEnvironment()
	env2.RegisterActivity(allowed.DeliverWebhook)
	if _, err := env2.ExecuteActivity(allowed.DeliverWebhook, req); err != nil {
		t.Fatalf("allowed delivery: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("allowed delivery reached the receiver %d times, want 1", hits.Load())
	}
}
