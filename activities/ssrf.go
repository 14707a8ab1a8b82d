package activities

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/cdnflow/cdnflow/internal/netguard"
)

// RefusedAddressError is a callback target in a range cdnflow will not call.
type RefusedAddressError struct{ IP net.IP }

func (e *RefusedAddressError) Error() string {
	return fmt.Sprintf("callback target %s is in a loopback, private, link-local or metadata range", e.IP)
}

// CallbackClient checks every resolved address right before connecting,
// which also covers redirects and DNS rebinding.
func CallbackClient(allowPrivate bool) *http.Client {
	if allowPrivate {
		return callbackClient(nil)
	}
	return callbackClient(func(ip net.IP, _ string) bool { return netguard.Forbidden(ip) })
}

// callbackClient refuses every connection refuse says no to; nil allows all.
func callbackClient(refuse func(ip net.IP, port string) bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if refuse != nil {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || refuse(ip, port) {
				return &RefusedAddressError{IP: ip}
			}
			return nil
		}
	}
	tr := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}
