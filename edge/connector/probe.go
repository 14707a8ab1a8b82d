package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cdnflow/cdnflow/internal/netguard"
)

// Kind is what went wrong with an origin.
type Kind string

// Kinds of OriginError. KindResolve, KindResolver, KindRefused and
// KindConnect happen before any request byte is sent, so another address
// or origin is tried.
const (
	KindResolve     Kind = "resolve"     // the name does not exist or has no A/AAAA records (an answer)
	KindResolver    Kind = "resolver"    // the resolver did not answer: timeout, SERVFAIL, REFUSED (no stale answer left)
	KindRefused     Kind = "refused"     // the address policy refused every address
	KindConnect     Kind = "connect"     // TCP connect failed or timed out
	KindCertificate Kind = "certificate" // the origin's certificate did not verify
	KindTLS         Kind = "tls"         // TLS handshake failed otherwise
	KindHTTP        Kind = "http"        // the exchange failed after connecting
)

func (k Kind) beforeRequest() bool {
	return k == KindResolve || k == KindResolver || k == KindRefused || k == KindConnect
}

// Permanent reports whether retrying soon is pointless without a change of
// DNS, certificate or configuration: resolve, refused and certificate.
// An activity sends the distribution to ERROR for these. KindResolver is
// not: a resolver that timed out may answer on the next try.
func (k Kind) Permanent() bool {
	return k == KindResolve || k == KindRefused || k == KindCertificate
}

// OriginError is a failed fetch from or probe of one origin.
type OriginError struct {
	Origin Origin
	// Addr is the address tried; invalid when none was reached.
	Addr netip.AddrPort
	Kind Kind
	Err  error
}

func (e *OriginError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("origin %s (%s): %s", e.Origin, e.Addr, e.cause())
	}
	return fmt.Sprintf("origin %s: %s", e.Origin, e.cause())
}

func (e *OriginError) Unwrap() error { return e.Err }

// Reason is the one line HeaderError carries: the origin and the cause,
// e.g. "https://o.example:443: x509: certificate has expired or is not yet
// valid: …". It names no address.
func (e *OriginError) Reason() string {
	if e.Origin.Host == "" {
		return e.cause()
	}
	return e.Origin.String() + ": " + e.cause()
}

// cause is the innermost useful message: the x509 verdict for
// certificates, the policy's for refusals, else the error text.
func (e *OriginError) cause() string {
	if e.Err == nil {
		return string(e.Kind) + " failed"
	}
	var (
		inv     x509.CertificateInvalidError
		name    x509.HostnameError
		unknown x509.UnknownAuthorityError
		refused *netguard.RefusedError
		dnsErr  *net.DNSError
	)
	switch {
	case errors.As(e.Err, &inv):
		return inv.Error()
	case errors.As(e.Err, &name):
		return name.Error()
	case errors.As(e.Err, &unknown):
		return unknown.Error()
	case errors.As(e.Err, &refused):
		return refused.Error()
	case errors.As(e.Err, &dnsErr):
		return dnsErr.Error()
	}
	return e.Err.Error()
}

// classify turns a transport error of one attempt into an OriginError.
func classify(o Origin, ap netip.AddrPort, err error) *OriginError {
	oe := &OriginError{Origin: o, Addr: ap, Kind: KindHTTP, Err: err}
	var (
		refused *netguard.RefusedError
		verify  *tls.CertificateVerificationError
		inv     x509.CertificateInvalidError
		name    x509.HostnameError
		unknown x509.UnknownAuthorityError
		rec     tls.RecordHeaderError
		alert   tls.AlertError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &refused):
		oe.Kind = KindRefused
	case errors.As(err, &verify), errors.As(err, &inv), errors.As(err, &name), errors.As(err, &unknown):
		oe.Kind = KindCertificate
	case errors.As(err, &rec), errors.As(err, &alert), strings.Contains(err.Error(), "TLS handshake"):
		oe.Kind = KindTLS
	case errors.As(err, &op) && op.Op == "dial":
		oe.Kind = KindConnect
	}
	return oe
}

// Probe checks an origin the way the edges' connectors will fetch it:
// resolve the name, apply the address policy to EVERY address (any refused
// address fails the probe), then on each address (at most 8) connect,
// complete TLS (SNI and verification as for fetches) and send HEAD path
// with Host host ("" = o.HostHeader(), path "" = "/"). Any HTTP answer,
// whatever its status, passes. The error is an *OriginError; its Kind
// tells a lasting problem (Permanent) from a transient one. Probe uses the
// connector's caches and pools but needs no Serve.
func (c *Connector) Probe(ctx context.Context, o Origin, host, path string) error {
	if path == "" {
		path = "/"
	}
	if host == "" {
		host = o.HostHeader()
	}
	addrs, err := c.addresses(ctx, o, true)
	if err != nil {
		return err
	}
	if len(addrs) > 8 {
		addrs = addrs[:8]
	}
	tr := c.transportFor(o)
	for _, ap := range addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, o.Scheme+"://"+ap.String()+path, nil)
		if err != nil {
			return &OriginError{Origin: o, Addr: ap, Kind: KindHTTP, Err: err}
		}
		req.Host = host
		req.Header.Set("User-Agent", "cdnflow-origin-probe")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return classify(o, ap, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	return nil
}

// CheckAddresses resolves o and applies the address policy to every
// address without connecting: what the API can check at create, PUT and
// PATCH (answering 10001 naming the origin). The error is an *OriginError
// of KindResolve or KindRefused.
func (c *Connector) CheckAddresses(ctx context.Context, o Origin) error {
	_, err := c.addresses(ctx, o, true)
	return err
}
