package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/testenv"
)

// Keys and SecretKeys never reach the logs: not from requests that carry
// them (right or wrong, on success or failure, at debug level), and not
// from the start-up settings line.
func TestSecretsAreNeverLogged(t *testing.T) {
	const apiKey, secretKey, wrong = "api-key-5f1c9e", "secret-key-77ad02", "wrong-key-d41e0b"
	env := testenv.Start(t, testenv.Options{Edges: 1})
	cfg := env.Config
	cfg.APIKeys = []string{apiKey}
	cfg.AppKeys = map[string]string{appKey: secretKey}
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	logger.Info("cdnflow starting", cfg.LogFields()...)
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Temporal: env.Client, Config: cfg, Inventory: env.Inventory, Logger: logger}))
	defer ts.Close()

	send := func(method, path, header, key, body string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set(header, key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	prewarm := fmt.Sprintf(`{"url_list":["http://%s/s.js"],"cf_domain":%q,"target_type":"pop","region":[%q]}`, domain, domain, env.Edges[0].Edge.ID)
	for _, key := range []string{apiKey, wrong} {
		send("POST", "/prewarm", "x-api-key", key, prewarm)
		send("POST", "/prewarm", "x-api-key", key, `{"url_list":`) // a 400
		send("GET", "/status?requestID=nope", "x-api-key", key, "")
	}
	for _, key := range []string{secretKey, wrong} {
		send("GET", "/v1.5/appKeys/"+appKey+"/distributions", "Authorization", key, "")
		send("POST", "/v1.5/appKeys/"+appKey+"/purges", "Authorization", key, `{"domain":"nobody.example","purgeType":"ALL"}`)
	}
	if logs.Len() < 2 {
		t.Fatalf("only %d log entries: the requests were not logged at all", logs.Len())
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, s := range []string{apiKey, secretKey, wrong} {
			if strings.Contains(line, s) {
				t.Fatalf("log entry contains a key: %s", line)
			}
		}
	}
}
