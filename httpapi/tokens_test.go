//go:build !unit

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/starter"
)

const (
	bootKey   = "boot-key"
	appTwo    = "app-two"
	secretTwo = "secret-two"
)

// authEnv is a stack with a --api-keys key and two appKeys.
func authEnv(t *testing.T) *testenv.Env {
	return testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.APIKeys = []string{bootKey}
		c.AppKeys = map[string]string{appKey: secret, appTwo: secretTwo}
		c.TokenCacheTTL = time.Second
		c.PurgeItemInterval = 0
	}})
}

// call sends method path to base with headers; body nil sends none.
func call(t *testing.T, base, method, path string, header map[string]string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, _ := json.Marshal(body)
			raw = string(b)
		}
		rdr = strings.NewReader(raw)
	}
	req, _ := http.NewRequest(method, base+path, rdr)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

type createdToken struct {
	ID      string
	Token   string
	Verbs   []string
	AppKeys []string
}

// mkToken creates a token through the API with the --api-keys key.
func mkToken(t *testing.T, base string, verbs, appKeys []string, expiresIn string) createdToken {
	t.Helper()
	code, data, _ := call(t, base, "POST", "/v1/tokens", map[string]string{"x-api-key": bootKey},
		map[string]any{"name": "test " + strings.Join(verbs, "+"), "verbs": verbs, "appKeys": appKeys, "expiresIn": expiresIn})
	var tok createdToken
	if code != http.StatusCreated || json.Unmarshal(data, &tok) != nil || !strings.HasPrefix(tok.Token, "cdf_"+tok.ID+"_") {
		t.Fatalf("create token %v on %v = %d %s", verbs, appKeys, code, data)
	}
	return tok
}

// refused tells whether an answer is an authentication or scope refusal
// in its route's envelope.
func refused(path string, code int, data []byte) bool {
	if strings.HasPrefix(path, "/v1.5/") {
		var env struct{ Header nhnHeader }
		return code == 200 && json.Unmarshal(data, &env) == nil && env.Header.ResultCode == httpapi.NHNUnauthorized
	}
	var e struct{ Code string }
	return (code == http.StatusForbidden || code == http.StatusUnauthorized) && json.Unmarshal(data, &e) == nil && e.Code == "Unauthorized"
}

// Tokens of each verb, on one appKey, on every appKey and on another
// appKey, on every authenticated route of the router: each is admitted
// exactly where its verb and appKeys cover the route (routeScopes, the
// test's specification), and refused elsewhere in the route's envelope.
func TestTokenScopesOnEveryRoute(t *testing.T) {
	env := authEnv(t)
	type holder struct {
		name  string
		tok   createdToken
		verbs []string
		all   bool
		keys  []string
	}
	var holders []holder
	for _, v := range []string{"prewarm", "purge", "read", "schedule", "admin"} {
		holders = append(holders, holder{name: v + "@" + appKey, tok: mkToken(t, env.API.URL, []string{v}, []string{appKey}, ""), verbs: []string{v}, keys: []string{appKey}})
	}
	holders = append(holders,
		holder{name: "read@*", tok: mkToken(t, env.API.URL, []string{"read"}, []string{"*"}, ""), verbs: []string{"read"}, all: true},
		holder{name: "admin@*", tok: mkToken(t, env.API.URL, []string{"admin"}, []string{"*"}, ""), verbs: []string{"admin"}, all: true},
		holder{name: "everything@" + appTwo, tok: mkToken(t, env.API.URL, []string{"prewarm", "purge", "read", "schedule"}, []string{appTwo}, ""), verbs: []string{"prewarm", "purge", "read", "schedule"}, keys: []string{appTwo}},
	)
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	values := map[string]string{":appKey": appKey, ":domain": "no-such.example.com", ":id": "00000000-0000-0000-0000-000000000000", ":n": "1", ":seq": "1"}
	routes := authenticatedRoutes(httpapi.New(httpapi.Deps{Config: env.Config, Logger: env.Logger}))
	checked := 0
	for _, r := range routes {
		method, route, _ := strings.Cut(r, " ")
		spec, ok := routeScopes[r]
		if !ok {
			t.Fatalf("route %s is not in routeScopes", r)
		}
		path := param.ReplaceAllStringFunc(route, func(p string) string { return values[p] })
		if strings.HasPrefix(route, "/v1/tokens/") {
			path = "/v1/tokens/tok_0000000000000000"
		}
		for _, h := range holders {
			has := slices.Contains(h.verbs, spec.verb) || slices.Contains(h.verbs, "admin")
			want := has && (h.all || len(h.keys) > 0)
			switch {
			case strings.Contains(route, ":appKey"):
				want = has && (h.all || slices.Contains(h.keys, appKey))
			case spec.all:
				want = has && h.all
			}
			hdr := map[string]string{"Authorization": "Bearer " + h.tok.Token}
			switch {
			case strings.HasPrefix(route, "/v1.5/"):
				hdr = map[string]string{"Authorization": h.tok.Token} // bare, as NHN's SecretKey is sent
			case !strings.HasPrefix(route, "/v1/"):
				hdr = map[string]string{"x-api-key": h.tok.Token}
			}
			code, data, _ := call(t, env.API.URL, method, path, hdr, "{}")
			if got := !refused(route, code, data); got != want {
				t.Errorf("%s with a %s token: admitted %v, want %v (%d %s)", r, h.name, got, want, code, data)
			}
			checked++
		}
	}
	if checked < 30*len(holders) {
		t.Fatalf("only %d route × token pairs checked", checked)
	}
	checkBodyScopes(t, env, holders[0].tok, holders[2].tok, holders[7].tok)
}

// checkBodyScopes checks the scopes the service finds in bodies: a
// prewarm with need_invalidate needs purge on the domain's appKey; a purge
// schedule needs schedule and purge on its appKey, and records its
// creator; another appKey's token sees nothing of it.
func checkBodyScopes(t *testing.T, env *testenv.Env, prewarmOnly, readOwn, other createdToken) {
	t.Helper()
	d := createDistribution(t, env, "/")
	body := map[string]any{"url_list": []string{"http://" + d.Domain + "/inv.css"}, "cf_domain": d.Domain, "region": "all", "need_invalidate": true}
	if code, data, _ := call(t, env.API.URL, "POST", "/prewarm", map[string]string{"x-api-key": prewarmOnly.Token}, body); code != http.StatusForbidden || !strings.Contains(string(data), "purge") {
		t.Errorf("need_invalidate prewarm with a prewarm-only token = %d %s, want 403 naming purge", code, data)
	}
	both := mkToken(t, env.API.URL, []string{"prewarm", "purge"}, []string{appKey}, "")
	code, data, _ := call(t, env.API.URL, "POST", "/prewarm", map[string]string{"x-api-key": both.Token}, body)
	var started struct{ RequestID string }
	if code != http.StatusOK || json.Unmarshal(data, &started) != nil {
		t.Fatalf("need_invalidate prewarm with prewarm+purge = %d %s", code, data)
	}
	// The job is read with read scope on its domain's appKey only.
	for _, path := range []string{"/status?requestID=" + started.RequestID, "/prewarm/" + started.RequestID + "/edges"} {
		if code, data, _ := call(t, env.API.URL, "GET", path, map[string]string{"x-api-key": other.Token}, nil); code != http.StatusForbidden {
			t.Errorf("GET %s with %s's token = %d %s, want 403", path, appTwo, code, data)
		}
		if code, data, _ := call(t, env.API.URL, "GET", path, map[string]string{"x-api-key": readOwn.Token}, nil); code != http.StatusOK {
			t.Errorf("GET %s with a read token on %s = %d %s", path, appKey, code, data)
		}
	}
	delete(body, "need_invalidate")
	if code, data, _ := call(t, env.API.URL, "POST", "/prewarm", map[string]string{"x-api-key": other.Token}, body); code != http.StatusForbidden {
		t.Errorf("prewarm of %s's domain with %s's token = %d %s, want 403", appKey, appTwo, code, data)
	}
	sched := map[string]any{"id": "nightly-purge", "kind": "purge", "interval": "24h", "appKey": appKey,
		"purge": map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a.css"}}
	scheduleOnly := mkToken(t, env.API.URL, []string{"schedule"}, []string{appKey}, "")
	for name, tok := range map[string]createdToken{"schedule only": scheduleOnly, appTwo: other} {
		if code, data, _ := call(t, env.API.URL, "POST", "/v1/schedules", map[string]string{"Authorization": "Bearer " + tok.Token}, sched); code != http.StatusForbidden {
			t.Errorf("purge schedule with a %s token = %d %s, want 403", name, code, data)
		}
	}
	creator := mkToken(t, env.API.URL, []string{"schedule", "purge"}, []string{appKey}, "")
	code, data, _ = call(t, env.API.URL, "POST", "/v1/schedules", map[string]string{"Authorization": "Bearer " + creator.Token}, sched)
	var v struct{ AppKey, CreatedBy string }
	if code != http.StatusCreated || json.Unmarshal(data, &v) != nil || v.AppKey != appKey || v.CreatedBy != creator.ID {
		t.Fatalf("purge schedule with schedule+purge = %d %s, want 201 created by %s", code, data, creator.ID)
	}
	otherHdr := map[string]string{"Authorization": "Bearer " + other.Token}
	if code, data, _ := call(t, env.API.URL, "GET", "/v1/schedules/nightly-purge", otherHdr, nil); code != http.StatusForbidden {
		t.Errorf("%s reads %s's schedule = %d %s", appTwo, appKey, code, data)
	}
	if code, data, _ := call(t, env.API.URL, "DELETE", "/v1/schedules/nightly-purge", otherHdr, nil); code != http.StatusForbidden {
		t.Errorf("%s deletes %s's schedule = %d %s", appTwo, appKey, code, data)
	}
	if _, data, _ := call(t, env.API.URL, "GET", "/v1/schedules", otherHdr, nil); strings.Contains(string(data), "nightly-purge") {
		t.Errorf("%s lists %s's schedule: %s", appTwo, appKey, data)
	}
}

// A token stops working at its expiry; a token created on one API works
// on another at once, and its revocation on the first is seen by the
// second within the token cache's life (1 s here); another appKey's
// SecretKey opens none of this appKey's routes; the CLI manages tokens.
func TestTokenExpiryRevocationAndSecrets(t *testing.T) {
	env := authEnv(t)
	b := secondAPI(t, env)
	short := mkToken(t, env.API.URL, []string{"read"}, []string{appKey}, "2s")
	list := "/v1.5/appKeys/" + appKey + "/distributions"
	if code, data, _ := call(t, env.API.URL, "GET", list, map[string]string{"Authorization": short.Token}, nil); refused(list, code, data) {
		t.Fatalf("fresh 2s token refused: %d %s", code, data)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, data, _ := call(t, env.API.URL, "GET", list, map[string]string{"Authorization": short.Token}, nil); !refused(list, code, data) {
		t.Fatalf("expired token admitted: %d %s", code, data)
	}

	tok := mkToken(t, env.API.URL, []string{"read"}, []string{appKey}, "")
	hdr := map[string]string{"Authorization": "Bearer " + tok.Token}
	if code, data, _ := call(t, b.API.URL, "GET", list, hdr, nil); refused(list, code, data) {
		t.Fatalf("token created on API A refused on API B: %d %s", code, data)
	}
	if code, data, _ := call(t, env.API.URL, "DELETE", "/v1/tokens/"+tok.ID, map[string]string{"x-api-key": bootKey}, nil); code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", code, data)
	}
	revoked := time.Now()
	eventually.WithinEvery(t, 10*time.Second, 50*time.Millisecond, func() error {
		if code, data, _ := call(t, b.API.URL, "GET", list, hdr, nil); !refused(list, code, data) {
			return fmt.Errorf("revoked token still admitted on API B: %d %s", code, data)
		}
		return nil
	})
	if took := time.Since(revoked); took > 2*time.Second {
		t.Fatalf("API B took %s to refuse a revoked token; its cache lives 1s", took)
	}
	t.Logf("revocation seen by the second API after %s", time.Since(revoked).Round(time.Millisecond))

	// Another appKey's SecretKey, on both APIs' appKey routes.
	for _, path := range []string{list, "/v1.5/appKeys/" + appKey + "/purges", "/v1/appKeys/" + appKey + "/distributions/x.example.com"} {
		code, data, _ := call(t, env.API.URL, "GET", path, map[string]string{"Authorization": secretTwo}, nil)
		if !refused(path, code, data) {
			t.Errorf("%s with %s's SecretKey = %d %s, want refused", path, appTwo, code, data)
		}
		if code, data, _ := call(t, env.API.URL, "GET", path, map[string]string{"Authorization": secret}, nil); refused(path, code, data) {
			t.Errorf("%s with its own SecretKey = %d %s", path, code, data)
		}
	}
	checkTokenCLI(t, env)
}

// checkTokenCLI runs `cdnflow token create|list|revoke` against env.
func checkTokenCLI(t *testing.T, env *testenv.Env) {
	t.Helper()
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		sio := starter.IO{In: strings.NewReader(""), Out: &out, Err: &errb, Client: http.DefaultClient}
		code := starter.Token(context.Background(), sio, args)
		return code, out.String() + errb.String()
	}
	api := []string{"--api", env.API.URL, "--api-key", bootKey}
	code, out := run(append([]string{"create", "--name", "cli", "--verbs", "read,purge", "--app-keys", appKey}, api...)...)
	var tok createdToken
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil || tok.ID == "" {
		t.Fatalf("token create = %d %s", code, out)
	}
	if code, out := run(append([]string{"list"}, api...)...); code != 0 || !strings.Contains(out, tok.ID) || strings.Contains(out, tok.Token) {
		t.Fatalf("token list = %d %s, want the id and never the token", code, out)
	}
	if code, out := run(append([]string{"revoke", tok.ID}, api...)...); code != 0 {
		t.Fatalf("token revoke = %d %s", code, out)
	}
	if code, out := run(append([]string{"revoke", tok.ID}, api...)...); code != starter.ExitError {
		t.Fatalf("second revoke = %d %s, want %d", code, out, starter.ExitError)
	}
	if code, out := run("create", "--no-such-flag"); code != starter.ExitUsage {
		t.Fatalf("bad flag = %d %s, want %d", code, out, starter.ExitUsage)
	}
	if code, out := run(append([]string{"create", "--name", "x", "--verbs", "read", "--app-keys", appKey}, "--api", env.API.URL, "--api-key", "wrong")...); code != starter.ExitError {
		t.Fatalf("create with a wrong key = %d %s", code, out)
	}
}

// apiServer serves another API process on env's Temporal and payload
// store and answers the server (to flush its audit trail) and its URL.
func apiServer(t *testing.T, env *testenv.Env) (*httpapi.Server, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stack.Connect(ctx, env.Config, env.Logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Deps{Temporal: c, Config: env.Config, Inventory: env.Inventory, Logger: env.Logger, Payloads: env.Payloads})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); c.Close() })
	return srv, ts
}
