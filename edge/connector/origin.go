package connector

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Internal request and response headers. Varnish sets the request headers
// in vcl_backend_fetch after removing any client copy in vcl_recv; the
// connector removes every X-Cdnflow-* header before forwarding, so none
// reaches an origin.
const (
	// HeaderOrigins lists the origins to fetch from, comma-separated:
	// "https://origin.example:443,http://10.0.0.5:8080". Required.
	HeaderOrigins = "X-Cdnflow-Origins"
	// HeaderOriginHost is the Host header to send. Absent: each origin's
	// own name (ORIGIN_HOSTNAME), with ":port" unless the port is the
	// scheme's default.
	HeaderOriginHost = "X-Cdnflow-Origin-Host"
	// HeaderError is set on the connector's own 502 answers: one line
	// saying why the origin could not be fetched.
	HeaderError = "X-Cdnflow-Origin-Error"

	internalPrefix = "X-Cdnflow-"
)

// MaxOrigins is the most origins one request may name (NHN v1.5: a
// distribution has at most 10 origins).
const MaxOrigins = 10

// Origin is one origin server: scheme "http" or "https", a lower-case DNS
// name or IP address, and a port.
type Origin struct {
	Scheme string
	Host   string
	Port   int
}

// String is the form HeaderOrigins uses: scheme://host:port, IPv6 in
// brackets.
func (o Origin) String() string {
	return o.Scheme + "://" + net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// HostHeader is the Host an origin gets under ORIGIN_HOSTNAME: its name,
// plus ":port" when the port is not the scheme's default.
func (o Origin) HostHeader() string {
	if (o.Scheme == "http" && o.Port == 80) || (o.Scheme == "https" && o.Port == 443) {
		if strings.Contains(o.Host, ":") {
			return "[" + o.Host + "]"
		}
		return o.Host
	}
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// ip is the origin's address when Host is an IP literal.
func (o Origin) ip() (netip.Addr, bool) {
	a, err := netip.ParseAddr(o.Host)
	return a, err == nil
}

// FormatOrigins is the HeaderOrigins value for origins (what the VCL
// renderer writes).
func FormatOrigins(origins []Origin) string {
	parts := make([]string, len(origins))
	for i, o := range origins {
		parts[i] = o.String()
	}
	return strings.Join(parts, ",")
}

var hostNameRe = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$`)

// ParseOrigins parses a HeaderOrigins value: 1 to MaxOrigins entries of
// scheme://host:port separated by commas, scheme http or https, host a DNS
// name (letters, digits, '-', '_', dots; at most 253) or an IP literal
// (IPv6 in brackets), port 1-65535 and required, nothing else (no user,
// path, query or fragment). Host names are lower-cased. The error names
// the bad entry.
func ParseOrigins(v string) ([]Origin, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("%s is missing", HeaderOrigins)
	}
	entries := strings.Split(v, ",")
	if len(entries) > MaxOrigins {
		return nil, fmt.Errorf("%s names %d origins; at most %d", HeaderOrigins, len(entries), MaxOrigins)
	}
	out := make([]Origin, 0, len(entries))
	for _, e := range entries {
		o, err := parseOrigin(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", HeaderOrigins, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func parseOrigin(e string) (Origin, error) {
	scheme, rest, ok := strings.Cut(e, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return Origin{}, fmt.Errorf("origin %q: want http://host:port or https://host:port", e)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Origin{}, fmt.Errorf("origin %q: want scheme://host:port with nothing after the port", e)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port[0] == '0' {
		return Origin{}, fmt.Errorf("origin %q: port must be 1-65535", e)
	}
	host = strings.ToLower(host)
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || (a.Is6() && !strings.HasPrefix(rest, "[")) {
			return Origin{}, fmt.Errorf("origin %q: bad IP address", e)
		}
		host = a.String()
	} else if len(host) > 253 || !hostNameRe.MatchString(host) {
		return Origin{}, fmt.Errorf("origin %q: host is not a DNS name or IP address", e)
	}
	return Origin{Scheme: scheme, Host: host, Port: p}, nil
}
