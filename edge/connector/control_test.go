package connector

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The token is HMAC-SHA256 of the fixed label keyed with the secret file's
// bytes, in lowercase hex; the expected value is openssl's:
// printf 'cdnflow edge control v1' | openssl dgst -sha256 -hmac abc
func TestControlToken(t *testing.T) {
	const want = "88e6b586492f0d404672de846a25e700e2962b7f29c14ccba0148e7f945bbffb"
	if got := ControlToken([]byte("abc")); got != want {
		t.Fatalf("ControlToken(abc) = %s, want %s", got, want)
	}
	if ControlToken([]byte("abc\n")) == want {
		t.Fatal("the secret's trailing newline is part of the key")
	}
}

// A rotated secret file gives the new token (once the recheck second has
// passed: recheckDue); a file that goes away keeps the last token; a file
// never read is an error.
func TestControlTokenFileFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.secret")
	if _, err := ControlTokenFile(path); err == nil {
		t.Fatal("missing secret file: no error")
	}
	if _, err := ControlTokenFile(""); err == nil {
		t.Fatal("no secret file: no error")
	}
	if err := os.WriteFile(path, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ControlTokenFile(path); err != nil || got != ControlToken([]byte("one\n")) {
		t.Fatalf("first read: %s %v", got, err)
	}
	if err := os.WriteFile(path, []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	recheckDue(t, path)
	if got, err := ControlTokenFile(path); err != nil || got != ControlToken([]byte("two\n")) {
		t.Fatalf("rotated secret not followed: %s %v", got, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	recheckDue(t, path)
	if got, err := ControlTokenFile(path); err != nil || got != ControlToken([]byte("two\n")) {
		t.Fatalf("removed secret: %s %v, want the last token", got, err)
	}
}

// With the edge's secret, admin requests need its token (a missing or
// wrong one is 403 and changes nothing); without it, the VCL is the only
// check. New refuses a secret file it cannot read.
func TestAdminNeedsTheControlToken(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "edge.secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := ControlToken([]byte("s3cret\n"))
	c, base := newConnector(t, Options{ControlSecretFile: secret})
	site := Site{Name: "a.test", Hosts: []string{"a.test"}, Gen: Generation{Created: 1, Version: 1},
		Origins: []SiteOrigin{{Origin: Origin{Scheme: "http", Host: "192.0.2.1", Port: 80}}}}
	for name, tok := range map[string]string{"none": "", "wrong": strings.Repeat("0", 64), "prefix": token[:63], "upper": strings.ToUpper(token)} {
		for _, method := range []string{http.MethodGet, http.MethodPut} {
			var body any
			path := ""
			if method == http.MethodPut {
				body, path = site, site.Name
			}
			if code := adminWith(t, base, method, path, tok, body); code != http.StatusForbidden {
				t.Errorf("%s %s with %s token: %d, want 403", method, AdminPath+path, name, code)
			}
		}
	}
	if st := c.Table().State(); len(st.Sites) != 0 {
		t.Fatalf("refused requests changed the table: %+v", st)
	}
	if code := adminWith(t, base, http.MethodPut, site.Name, token, site); code != http.StatusOK {
		t.Fatalf("PUT with the token: %d", code)
	}
	if st := c.Table().State(); len(st.Sites) != 1 {
		t.Fatalf("table after the PUT with the token: %+v", st)
	}

	_, open := newConnector(t, Options{})
	if code := adminWith(t, open, http.MethodGet, "", "", nil); code != http.StatusOK {
		t.Errorf("no control secret: GET %d, want 200 (the VCL checks)", code)
	}
	if _, err := New(Options{ControlSecretFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New with an unreadable control secret: no error")
	}
}

// adminWith is admin with token in HeaderControl ("" none).
func adminWith(t *testing.T, base, method, path, token string, body any) int {
	t.Helper()
	return adminHeader(t, base, method, path, body, func(h http.Header) {
		if token != "" {
			h.Set(HeaderControl, token)
		}
	})
}

// Varnish's probe (HealthPath with HeaderHealth, GET or HEAD) is answered
// 200 whatever the Host and the table; without the header, or with
// another method, the path is an ordinary request.
func TestHealth(t *testing.T) {
	_, base := newConnector(t, Options{})
	probe := func(method string, withHeader bool) int {
		req, _ := http.NewRequest(method, base+HealthPath, nil)
		req.Host = "anything.test"
		if withHeader {
			req.Header.Set(HeaderHealth, "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, HealthPath, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := probe(http.MethodGet, true); code != http.StatusOK {
		t.Errorf("health GET: %d", code)
	}
	if code := probe(http.MethodHead, true); code != http.StatusOK {
		t.Errorf("health HEAD: %d", code)
	}
	if code := probe(http.MethodGet, false); code != http.StatusNotFound {
		t.Errorf("GET %s without %s: %d, want the unknown host's 404", HealthPath, HeaderHealth, code)
	}
	if code := probe(http.MethodPost, true); code != http.StatusNotFound {
		t.Errorf("POST %s: %d, want the unknown host's 404", HealthPath, code)
	}
}

// adminHeader sends one admin protocol request (body as JSON) with the
// headers set adds, and returns the status.
func adminHeader(t *testing.T, base, method, path string, body any, set func(http.Header)) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+AdminPath+path, rd)
	req.Header.Set(HeaderAdmin, "1")
	set(req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// recheckDue makes the next ControlTokenFile(path) look at the file again,
// as it does once tokenRecheck has passed since it last looked.
func recheckDue(t *testing.T, path string) {
	t.Helper()
	v, ok := tokenFiles.Load(path)
	if !ok {
		t.Fatalf("no cached token for %s", path)
	}
	tf := v.(*tokenFile)
	tf.mu.Lock()
	defer tf.mu.Unlock()
	tf.checked = tf.checked.Add(-tokenRecheck)
}
