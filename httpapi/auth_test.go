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
	open := openRoutes
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
				// /v1.5 reads no x-api-key: a --api-keys key does not open
				// it (on /v1 a --api-keys key is admin everywhere).
				if nhnRoute {
					req.Header.Set("x-api-key", "right-key")
				}
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

// routeScopes is the specification of every authenticated route's verb
// (docs/operations.md, "Tokens, scopes and audit"): a route the router
// serves that is missing here, or mapped to another verb, fails
// TestEveryRouteHasAScope. scopeAll marks routes that need the verb on
// every appKey; appKey routes need it on the path's appKey; the rest on
// the appKey the body or job belongs to.
var routeScopes = map[string]struct {
	verb string
	all  bool
}{
	"POST /prewarm":                     {"prewarm", false},
	"GET /status":                       {"read", false},
	"GET /prewarm/:id":                  {"read", false},
	"GET /prewarm/:id/edges":            {"read", false},
	"GET /v1/edges":                     {"admin", true},
	"POST /v1/edges/check":              {"admin", true},
	"GET /v1/edges/check/:id":           {"admin", true},
	"POST /v1/tokens":                   {"admin", true},
	"GET /v1/tokens":                    {"admin", true},
	"DELETE /v1/tokens/:id":             {"admin", true},
	"GET /v1/audit":                     {"read", false},
	"POST /v1/schedules":                {"schedule", false},
	"GET /v1/schedules":                 {"read", false},
	"GET /v1/schedules/:id":             {"read", false},
	"DELETE /v1/schedules/:id":          {"schedule", false},
	"POST /v1/schedules/:id/pause":      {"schedule", false},
	"POST /v1/schedules/:id/unpause":    {"schedule", false},
	"POST /v1/schedules/:id/trigger":    {"schedule", false},
	"POST /v1.5/appKeys/:appKey/purges": {"purge", false},
	"GET /v1.5/appKeys/:appKey/purges":  {"read", false},

	"POST /v1.5/appKeys/:appKey/distributions":                    {"admin", false},
	"GET /v1.5/appKeys/:appKey/distributions":                     {"read", false},
	"PUT /v1.5/appKeys/:appKey/distributions":                     {"admin", false},
	"PATCH /v1.5/appKeys/:appKey/distributions":                   {"admin", false},
	"DELETE /v1.5/appKeys/:appKey/distributions":                  {"admin", false},
	"PUT /v1.5/appKeys/:appKey/distributions/suspend":             {"admin", false},
	"PUT /v1.5/appKeys/:appKey/distributions/resume":              {"admin", false},
	"GET /v1/appKeys/:appKey/distributions/:domain":               {"read", false},
	"PATCH /v1/appKeys/:appKey/distributions/:domain":             {"admin", false},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions":      {"read", false},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions/diff": {"read", false},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions/:n":   {"read", false},
	"POST /v1/appKeys/:appKey/distributions/:domain/rollback":     {"admin", false},

	"POST /v1/webhooks":                          {"admin", false},
	"GET /v1/webhooks":                           {"read", false},
	"DELETE /v1/webhooks/:id":                    {"admin", false},
	"GET /v1/webhooks/:id/deliveries":            {"read", false},
	"POST /v1/releases":                          {"purge", false},
	"GET /v1/releases/:id":                       {"read", false},
	"POST /v1/releases/:id/cancel":               {"purge", false},
	"GET /v1/releases/:id/events":                {"read", false},
	"GET /v1/appKeys/:appKey/purges/:seq":        {"read", false},
	"GET /v1/traffic":                            {"read", true},
	"GET /console":                               {"read", true},
	"GET /console/jobs":                          {"read", true},
	"GET /console/jobs/:id":                      {"read", true},
	"GET /console/distributions/:domain":         {"read", true},
	"GET /console/distributions/:domain/traffic": {"read", true},
}

// openRoutes need no credential.
var openRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true, "/docs": true,
	"/console/login": true, "/console/logout": true}

// authenticatedRoutes are the router's routes that take a credential,
// as "METHOD path".
func authenticatedRoutes(srv *httpapi.Server) []string {
	var out []string
	for _, r := range srv.Echo.Routes() {
		if openRoutes[r.Path] || r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// Every authenticated route has a verb, the one the specification above
// gives it: a new route without a mapping fails here (and is refused to
// every credential by the middleware).
func TestEveryRouteHasAScope(t *testing.T) {
	srv := httpapi.New(httpapi.Deps{Config: config.Default(), Logger: zap.NewNop()})
	routes := authenticatedRoutes(srv)
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		want, specified := routeScopes[r]
		got, mapped := httpapi.RouteVerb(method, path)
		switch {
		case !specified:
			t.Errorf("route %s has no entry in routeScopes (the test's specification)", r)
		case !mapped:
			t.Errorf("route %s has no scope rule in httpapi/auth.go", r)
		case got != want.verb:
			t.Errorf("route %s: verb %s, the specification says %s", r, got, want.verb)
		}
	}
	if len(routes) != len(routeScopes) {
		t.Errorf("router serves %d authenticated routes, the specification lists %d", len(routes), len(routeScopes))
	}
}
