package cachekey_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cdnflow/cdnflow/internal/cachekey"
)

func TestParseTable(t *testing.T) {
	if len(urlCases) < 40 {
		t.Fatalf("table has %d URLs, want at least 40", len(urlCases))
	}
	for _, c := range urlCases {
		k, err := cachekey.Parse(c.in)
		if c.errPart != "" {
			var ce *cachekey.Error
			if !errors.As(err, &ce) || !errors.Is(err, cachekey.ErrInvalid) {
				t.Errorf("Parse(%q) = %+v, %v; want a *cachekey.Error for %s", c.in, k, err, c.errPart)
				continue
			}
			if ce.Part != c.errPart {
				t.Errorf("Parse(%q) refused the %s (%v), want the %s", c.in, ce.Part, err, c.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if k.Host != c.host || k.Port != c.port || k.PathQuery != c.pathQuery {
			t.Errorf("Parse(%q) = host %q port %q target %q; want %q %q %q", c.in, k.Host, k.Port, k.PathQuery, c.host, c.port, c.pathQuery)
		}
		// Canonical is a fixed point.
		again, err := cachekey.Parse(k.String())
		if err != nil || again != k {
			t.Errorf("Parse(Parse(%q).String()) = %+v, %v; want %+v", c.in, again, err, k)
		}
	}
}

// TestGoClientSendsKey proves the canonical request target passes through
// Go's net/http client unchanged (no %2F decoded, no hex case changed), the
// way edge.Client sends prewarm GETs and PURGEs.
func TestGoClientSendsKey(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.RequestURI }))
	defer srv.Close()
	for _, c := range urlCases {
		if c.errPart != "" {
			continue
		}
		req, err := http.NewRequest(http.MethodGet, srv.URL+c.pathQuery, nil)
		if err != nil {
			t.Fatalf("%q: %v", c.pathQuery, err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%q: %v", c.pathQuery, err)
		}
		resp.Body.Close()
		if sent := <-got; sent != c.pathQuery {
			t.Errorf("Go sent %q for key %q", sent, c.pathQuery)
		}
	}
}

func TestParseHostPathAndParts(t *testing.T) {
	k, err := cachekey.ParseHostPath("", "Example.COM:80", "/画像/./a b.png?q=日本#x")
	if err != nil || k.String() != "http://example.com/%E7%94%BB%E5%83%8F/a%20b.png?q=%E6%97%A5%E6%9C%AC" {
		t.Fatalf("ParseHostPath = %q, %v", k.String(), err)
	}
	if _, err := cachekey.ParseHostPath("https", "example.com/evil", "/a"); err == nil {
		t.Fatal("host with a path accepted")
	}
	if _, err := cachekey.ParseHostPath("gopher", "example.com", "/a"); err == nil {
		t.Fatal("gopher accepted")
	}
	for in, want := range map[string]string{"/": "/", "/a/../b": "/b", `\x`: "/x", "/q?": "/q?", "/%2F": "/%2F"} {
		if got, err := cachekey.PathQuery(in); err != nil || got != want {
			t.Errorf("PathQuery(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a/b", "/a%", "/a\x00"} {
		if _, err := cachekey.PathQuery(bad); !errors.Is(err, cachekey.ErrInvalid) {
			t.Errorf("PathQuery(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	for in, want := range map[string]string{"Example.COM": "example.com", "例え.JP": "xn--r8jz45g.jp", "[::1]": "[::1]"} {
		if got, err := cachekey.Host(in); err != nil || got != want {
			t.Errorf("Host(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.com:80", "a.com/x", "a b.com", "u@a.com"} {
		if _, err := cachekey.Host(bad); !errors.Is(err, cachekey.ErrInvalid) {
			t.Errorf("Host(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
