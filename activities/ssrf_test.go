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

func TestForbiddenCallbackAddresses(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.16.0.9": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "0.0.0.0": true, "224.0.0.1": true, "fd00:ec2::254": true,
		// Shared address space (RFC 6598): carrier NAT, and the metadata
		// service of some clouds (Alibaba Cloud: 100.100.100.200).
		"100.64.0.1": true, "100.100.100.200": true, "100.127.255.254": true, "::ffff:100.100.100.200": true,
		"100.63.255.255": false, "100.128.0.1": false,
		"8.8.8.8": false, "1.1.1.1": false, "2606:4700:4700::1111": false,
	} {
		if got := forbidden(net.ParseIP(ip)); got != want {
			t.Errorf("forbidden(%s) = %v, want %v", ip, got, want)
		}
	}
}

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
