package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
)

// The console's cookie stands for x-api-key: a browser signs in with a
// key, the cookie is HttpOnly and SameSite=Strict, a refused browser is
// sent to the login page and other clients get the /v1 JSON error;
// redirects stay inside the console. (No Temporal behind this server: a
// request let through fails with 500, never with a refusal.)
func TestConsoleCookieStandsForTheKey(t *testing.T) {
	cfg := config.Default()
	cfg.APIKeys = []string{"right-key"}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Config: cfg, Logger: zap.NewNop()}))
	defer ts.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	login := func(key, next string) *http.Response {
		resp, err := noRedirect.PostForm(ts.URL+"/console/login", url.Values{"key": {key}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := login("right-key", "/console/jobs")
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "cdnflow_console" {
			ck = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/jobs" || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login = %d to %q, cookie %+v", resp.StatusCode, resp.Header.Get("Location"), ck)
	}
	if loc := login("k", "//evil.example/console").Header.Get("Location"); loc != "/console" {
		t.Errorf("login with an outside next redirects to %q, want /console", loc)
	}

	get := func(cookie, accept string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/console/jobs", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "cdnflow_console", Value: cookie})
		}
		req.Header.Set("Accept", accept)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("wrong", "text/html"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/console/login?") {
		t.Errorf("a browser with a wrong key = %d to %q, want 303 to the login page", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get("", "application/json"); r.StatusCode != http.StatusForbidden || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("a client without a key = %d %s, want 403 JSON", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if r := get(ck.Value, "text/html"); r.StatusCode == http.StatusSeeOther || r.StatusCode == http.StatusForbidden {
		t.Errorf("the cookie of the right key = %d, want let through", r.StatusCode)
	}
}
