package httpapi_test

import (
	"io"
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
// request let through is answered 503, never with a refusal.)
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

// Console forms refuse a cross-site post (login CSRF, forced logout):
// same origin, or no Origin with Sec-Fetch-Site same-origin or absent,
// is let through; another site's Origin, Referer or Sec-Fetch-Site is
// 403. A first visit to the login page says nothing of a refusal; a
// refused credential does.
func TestConsoleFormsRefuseCrossSite(t *testing.T) {
	cfg := config.Default()
	cfg.APIKeys = []string{"right-key"}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Config: cfg, Logger: zap.NewNop()}))
	defer ts.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, h map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(url.Values{"key": {"right-key"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/console/login", "/console/logout"} {
		for _, c := range []struct {
			h    map[string]string
			want int
		}{
			{map[string]string{"Origin": ts.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
			{map[string]string{"Sec-Fetch-Site": "same-origin", "Referer": ts.URL + "/console/login"}, http.StatusSeeOther},
			{map[string]string{}, http.StatusSeeOther},
			{map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			{map[string]string{"Origin": "null"}, http.StatusForbidden},
			{map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{map[string]string{"Referer": "https://evil.example/form"}, http.StatusForbidden},
		} {
			if got := post(path, c.h); got != c.want {
				t.Errorf("POST %s with %v = %d, want %d", path, c.h, got, c.want)
			}
		}
	}

	visit := func(cookie string) string {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/console/jobs", nil)
		req.Header.Set("Accept", "text/html")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "cdnflow_console", Value: cookie})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		page, err := http.Get(ts.URL + loc)
		if err != nil {
			t.Fatal(err)
		}
		defer page.Body.Close()
		b, _ := io.ReadAll(page.Body)
		return string(b)
	}
	if strings.Contains(visit(""), "refused") {
		t.Errorf("a first visit's login page says a credential was refused")
	}
	if !strings.Contains(visit("wrong"), "refused") {
		t.Errorf("the login page after a wrong key does not say it was refused")
	}
}

// An API built without a Temporal client (as route tests build it) answers
// the console's reads of jobs and the fleet with a 503 that says so, in
// the /v1 JSON envelope, instead of panicking into a 500.
func TestConsoleWithoutTemporalSaysSo(t *testing.T) {
	cfg := config.Default()
	cfg.APIKeys = []string{"right-key"}
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Config: cfg, Logger: zap.NewNop()}))
	defer ts.Close()
	for _, path := range []string{"/console", "/console/jobs", "/console/jobs/prewarm-00000000-0000-0000-0000-000000000000"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("x-api-key", "right-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "no Temporal client") ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s = %d %s, want 503 JSON naming the missing Temporal client", path, resp.StatusCode, b)
		}
	}
}
