//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// Keys and SecretKeys never reach the logs: not from requests that carry
// them (right or wrong, on success or failure, at debug level), and not
// from the start-up settings line. Every logger of the process is watched:
// the API's, the worker's and its activities', and the Temporal SDK
// client's. Neither does a prewarm job's request header (it may carry an
// origin token) nor the edges' CLI secret.
func TestSecretsAreNeverLogged(t *testing.T) {
	const apiKey, secretKey, wrong, headerToken = "api-key-5f1c9e", "secret-key-77ad02", "wrong-key-d41e0b", "origin-token-3b8f7a"
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true, Configure: func(c *config.Config) {
		c.APIKeys = []string{apiKey}
		c.AppKeys = map[string]string{appKey: secretKey}
	}})
	cfg := env.Config
	edgeSecret, err := os.ReadFile(env.Edges[0].Edge.SecretFile)
	if err != nil || len(strings.TrimSpace(string(edgeSecret))) < 8 {
		t.Fatalf("edge secret: %q %v", edgeSecret, err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	logger.Info("cdnflow starting", cfg.LogFields()...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stack.Connect(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.RunWorker(runCtx, cfg, env.Inventory, c, env.Payloads, logger) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		c.Close()
	})
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Temporal: c, Config: cfg, Inventory: env.Inventory, Logger: logger, Payloads: env.Payloads}))
	defer ts.Close()

	send := func(method, path, header, key, body string) (int, []byte) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set(header, key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	// One pair succeeds, one fails on the edge after retries: both reach
	// the activity's logs, with the job's header.
	prewarm := fmt.Sprintf(`{"url_list":["http://%s/s.js","http://%s/status/503/s.js"],"cf_domain":%q,"target_type":"pop","region":[%q],"header":["X-Origin-Token: %s"]}`,
		domain, domain, domain, env.Edges[0].Edge.ID, headerToken)
	var ids []string
	for _, key := range []string{apiKey, wrong} {
		var out struct{ RequestID string }
		if code, data := send("POST", "/prewarm", "x-api-key", key, prewarm); code == 200 && json.Unmarshal(data, &out) == nil && out.RequestID != "" {
			ids = append(ids, out.RequestID)
		}
		send("POST", "/prewarm", "x-api-key", key, `{"url_list":`) // a 400
		send("GET", "/status?requestID=nope", "x-api-key", key, "")
	}
	for _, key := range []string{secretKey, wrong} {
		send("GET", "/v1.5/appKeys/"+appKey+"/distributions", "Authorization", key, "")
		send("POST", "/v1.5/appKeys/"+appKey+"/purges", "Authorization", key, `{"domain":"nobody.example","purgeType":"ALL"}`)
	}
	if len(ids) != 1 {
		t.Fatalf("prewarm jobs started: %v, want exactly the one with the right key", ids)
	}
	eventually.Within(t, 2*time.Minute, func() error {
		var st service.PrewarmStatusResponse
		_, data := send("GET", "/status?requestID="+ids[0], "x-api-key", apiKey, "")
		if err := json.Unmarshal(data, &st); err != nil {
			return err
		}
		if st.Status == "IN_PROGRESS" {
			return fmt.Errorf("prewarm %s in progress", ids[0])
		}
		return nil
	})

	// Every logger was watched: the API's, the activities' (the SDK's
	// activity logger, tagged with their workflow), the SDK client's.
	var fromAPI, fromActivities, fromSDK int
	for _, e := range logs.All() {
		fields := e.ContextMap()
		switch {
		case fields["ActivityType"] != nil && fields["WorkflowID"] != nil:
			fromActivities++
		case fields["Namespace"] != nil || fields["TaskQueue"] != nil:
			fromSDK++
		case fields["method"] != nil || fields["uri"] != nil || fields["path"] != nil:
			fromAPI++
		}
	}
	if fromAPI == 0 || fromActivities == 0 || fromSDK == 0 {
		t.Fatalf("log entries: %d from the API, %d from activities, %d from the SDK client; want each watched", fromAPI, fromActivities, fromSDK)
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %s %v", e.LoggerName, e.Message, e.ContextMap())
		for _, s := range []string{apiKey, secretKey, wrong, headerToken, strings.TrimSpace(string(edgeSecret))} {
			if strings.Contains(line, s) {
				t.Fatalf("log entry contains a secret: %s", line)
			}
		}
	}
}
