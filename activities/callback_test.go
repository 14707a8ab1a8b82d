package activities

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/distribution"
)

// A callback is the NHN body with the URL's placeholders filled in; an
// error answer is retried, a refused target is final.
func TestDistributionCallback(t *testing.T) {
	var got struct {
		path   string
		method string
		body   callbackBody
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		got.path, got.method = r.URL.RequestURI(), r.Method
		_ = json.Unmarshal(data, &got.body)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	req := CallbackRequest{
		Callback: distribution.Callback{HTTPMethod: "post", URL: srv.URL + "/cb?app={appKey}&s={status}&d={domain}"},
		State: distribution.State{AppKey: "k1", Domain: "x.cdn.test", Status: distribution.StatusError, LastError: "edge E1: boom",
			Config: distribution.Config{Origins: []distribution.Origin{{Origin: "o.test", HTTPPort: 8080}}}},
	}
	var ts testsuite.WorkflowTestSuite
	a := &Distribution{AllowPrivateCallbacks: true}
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.DistributionCallback, req, nil); err != nil {
		t.Fatal(err)
	}
	b := got.body
	if got.method != http.MethodPost || got.path != "/cb?app=k1&s=ERROR&d=x.cdn.test" {
		t.Fatalf("callback %s %s", got.method, got.path)
	}
	if b.Header.IsSuccessful || b.Header.ResultCode != 50000 || b.Header.ResultMessage != "edge E1: boom" ||
		b.Distribution.Domain != "x.cdn.test" || len(b.Distribution.Origins) != 1 || b.Distribution.Origins[0].Port != "8080" {
		t.Fatalf("callback body %+v", b)
	}

	status = http.StatusInternalServerError
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.DistributionCallback, req, nil)
	var appErr *temporal.ApplicationError
	if err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		t.Fatalf("a 500 answer: %v, want a retryable error", err)
	}

	private := &Distribution{}
	err = runActivity(t, ts.NewTestActivityEnvironment(), private.DistributionCallback, req, nil)
	if !errors.As(err, &appErr) || appErr.Type() != ErrCallbackRefused || !appErr.NonRetryable() {
		t.Fatalf("a loopback target: %v, want a final %s", err, ErrCallbackRefused)
	}
}

// A callback that cannot connect fails with an error naming the target
// without its query or userinfo: the SDK logs activity errors in plain
// text, and tenants put tokens there.
func TestCallbackErrorKeepsTheTokenOut(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL
	srv.Close() // nothing listens there now: the request fails to connect
	req := CallbackRequest{
		Callback: distribution.Callback{HTTPMethod: "GET", URL: strings.Replace(target, "http://", "http://user:pw-secret@", 1) + "/cb?token=tok-secret-42&d={domain}"},
		State:    distribution.State{AppKey: "k1", Domain: "x.cdn.test", Status: distribution.StatusOpen},
	}
	var ts testsuite.WorkflowTestSuite
	a := &Distribution{AllowPrivateCallbacks: true}
	err := runActivity(t, ts.NewTestActivityEnvironment(), a.DistributionCallback, req, nil)
	if err == nil {
		t.Fatal("a callback to a closed port succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "tok-secret-42") || strings.Contains(msg, "pw-secret") || !strings.Contains(msg, "/cb") {
		t.Fatalf("callback error %q: want the path without query or userinfo", msg)
	}
}
