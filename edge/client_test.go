package edge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

func TestPrefixRegex(t *testing.T) {
	for prefix, want := range map[string]string{
		"/img/":         "^/img/",
		"/v1.2/a+b(c)/": `^/v1\.2/a\+b\(c\)/`,
		"/":             "^/",
	} {
		got, err := edge.PrefixRegex(prefix)
		if err != nil || got != want {
			t.Errorf("PrefixRegex(%q) = %q, %v; want %q", prefix, got, err, want)
			continue
		}
		if !regexp.MustCompile(got).MatchString(prefix + "x") {
			t.Errorf("%q does not match its own prefix", got)
		}
	}
	for _, bad := range []string{"img/", "/a b", `/a"b`, "/a\nb"} {
		if _, err := edge.PrefixRegex(bad); !errors.Is(err, edge.ErrInvalidRequest) {
			t.Errorf("PrefixRegex(%q) accepted: %v", bad, err)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		&edge.StatusError{Code: 503}:                                                 true,
		&edge.StatusError{Code: 429}:                                                 true,
		&edge.StatusError{Code: 404}:                                                 false,
		&edge.StatusError{Code: 200, Cache: "PASS"}:                                  false,
		fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: errors.New("refused")}): true,
		fmt.Errorf("x: %w", context.DeadlineExceeded):                                true,
		fmt.Errorf("x: %w", context.Canceled):                                        false,
		fmt.Errorf("x: %w", edge.ErrInvalidRequest):                                  false,
	} {
		if got := edge.IsRetryable(err); got != want {
			t.Errorf("IsRetryable(%v) = %v, want %v", err, got, want)
		}
	}
}

// TestFetchDialsOnlyTheEdge checks the SSRF boundary: whatever Host and
// path say, the request goes to the inventory address, proxies from the
// environment are ignored and redirects are not followed.
func TestFetchDialsOnlyTheEdge(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Host+" "+r.RequestURI+" "+r.Header.Get("Accept-Encoding"))
		w.Header().Set("Location", "http://169.254.169.254/latest")
		w.Header().Set("X-Cache", "MISS")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	e := inventory.Edge{ID: "T1", Address: srv.Listener.Addr().String()}
	c := edge.NewClient(edge.Options{})
	res, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: "169.254.169.254", Path: "//evil.example/x?y=1"})
	var se *edge.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusFound || res.Status != http.StatusFound {
		t.Fatalf("redirect: %+v %v", res, err)
	}
	if len(seen) != 1 || seen[0] != "169.254.169.254 //evil.example/x?y=1 gzip, deflate, br" {
		t.Fatalf("edge saw %q", seen)
	}
	for _, r := range []edge.FetchRequest{{Host: "a", Path: "x"}, {Host: "a", Path: "/", Scheme: "ftp"}, {Host: "a", Path: "/", Scheme: "https"}} {
		if _, err := c.Fetch(context.Background(), e, r); !errors.Is(err, edge.ErrInvalidRequest) || edge.IsRetryable(err) {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

// TestFetchHTTPSUsesHostAsSNI: each distribution host gets its own TLS
// server name even though every request dials the same edge address.
func TestFetchHTTPSUsesHostAsSNI(t *testing.T) {
	var names []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		names = append(names, r.TLS.ServerName+"="+r.Host)
		w.Header().Set("X-Cache", "HIT")
		w.Header().Set("Age", "7")
		_, _ = w.Write([]byte("hello"))
	}))
	// The strict client's refused handshake is expected; keep the log quiet.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	e := inventory.Edge{ID: "T1", Address: "127.0.0.1:1", HTTPSAddress: srv.Listener.Addr().String()}
	c := edge.NewClient(edge.Options{InsecureSkipVerify: true})
	for _, host := range []string{"a.example", "b.example", "a.example"} {
		res, err := c.Fetch(context.Background(), e, edge.FetchRequest{Scheme: "https", Host: host, Path: "/x"})
		if err != nil || !res.Cached || res.Age != 7 || res.Bytes != 5 {
			t.Fatalf("%s: %+v %v", host, res, err)
		}
	}
	if fmt.Sprint(names) != "[a.example=a.example b.example=b.example a.example=a.example]" {
		t.Fatalf("server names: %v", names)
	}
	strict := edge.NewClient(edge.Options{})
	if _, err := strict.Fetch(context.Background(), e, edge.FetchRequest{Scheme: "https", Host: "a.example", Path: "/x"}); err == nil {
		t.Fatal("self-signed certificate accepted without InsecureSkipVerify")
	}
}
