package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
)

// Every route except the open ones (health, metrics, docs) rejects a
// missing or wrong key, in its own error shape, before doing anything —
// the server here has no Temporal client, so a route that let a request
// through would fail loudly.
func TestEveryRouteRequiresItsKey(t *testing.T) {
	cfg := config.Default()
	cfg.APIKeys = []string{"right-key"}
	cfg.AppKeys = map[string]string{"app": "right-secret"}
	srv := httpapi.New(httpapi.Deps{Config: cfg, Logger: zap.NewNop()})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	open := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true, "/docs": true}
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	checked := 0
	for _, r := range srv.Echo.Routes() {
		if open[r.Path] || r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		path := param.ReplaceAllStringFunc(r.Path, func(p string) string {
			if p == ":appKey" {
				return "app"
			}
			return "00000000-0000-0000-0000-000000000000"
		})
		// /v1.5 and cdnflow's /v1/appKeys/{appKey} routes take the
		// appKey's SecretKey; only /v1.5 answers in NHN's envelope.
		nhnRoute := strings.HasPrefix(path, "/v1.5/")
		appKeyRoute := strings.Contains(r.Path, ":appKey")
		for _, key := range []string{"", "wrong", "right-key" + "x"} {
			req, _ := http.NewRequest(r.Method, ts.URL+path, strings.NewReader(`{}`))
			if appKeyRoute {
				if key != "" {
					req.Header.Set("Authorization", key)
				}
				// the other scheme's right key must not open it either
				req.Header.Set("x-api-key", "right-key")
			} else {
				if key != "" {
					req.Header.Set("x-api-key", key)
				}
				req.Header.Set("Authorization", "right-secret")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if nhnRoute {
				var env struct {
					Header struct {
						IsSuccessful bool
						ResultCode   int
					}
				}
				if resp.StatusCode != 200 || json.Unmarshal(body, &env) != nil || env.Header.IsSuccessful || env.Header.ResultCode != 10003 {
					t.Errorf("%s %s with key %q = %d %s", r.Method, path, key, resp.StatusCode, body)
				}
			} else {
				want := http.StatusForbidden
				if appKeyRoute {
					want = http.StatusUnauthorized
				}
				var e struct{ Code string }
				if resp.StatusCode != want || json.Unmarshal(body, &e) != nil || e.Code != "Unauthorized" {
					t.Errorf("%s %s with key %q = %d %s", r.Method, path, key, resp.StatusCode, body)
				}
			}
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d routes checked", checked)
	}
}
