package activities

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// The check runs on the resolved address of every connection, so a name
// that resolves to loopback is refused like the literal address.
func TestCallbackClientRefusesPrivateTargets(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, target := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		_, err := CallbackClient(false).Get(target)
		var refused *RefusedAddressError
		if !errors.As(err, &refused) {
			t.Fatalf("GET %s: %v, want a refusal", target, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the private target was reached %d times", hits.Load())
	}
	resp, err := CallbackClient(true).Get(srv.URL)
	if err != nil || hits.Load() != 1 {
		t.Fatalf("allowed private callback: %v (port %d)", err, port)
	}
	resp.Body.Close()
}

// A redirect is a new connection and is checked like the first one: an
// allowed target that redirects to a refused one never reaches it. (Both
// are on loopback here, so "refused" is one port.)
func TestCallbackClientChecksRedirects(t *testing.T) {
	var privateHits atomic.Int64
	private := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { privateHits.Add(1) }))
	defer private.Close()
	public := httptest.NewServer(http.RedirectHandler(private.URL+"/latest/meta-data/", http.StatusFound))
	defer public.Close()
	_, privatePort, _ := net.SplitHostPort(private.Listener.Addr().String())
	client := callbackClient(func(_ net.IP, port string) bool { return port == privatePort })
	_, err := client.Get(public.URL)
	var refused *RefusedAddressError
	if !errors.As(err, &refused) {
		t.Fatalf("redirect to the refused target: %v, want a refusal", err)
	}
	if privateHits.Load() != 0 {
		t.Fatal("the redirect reached the refused target")
	}
}
