// Package vcl renders the complete Varnish configuration of one edge: the
// purge/ban protocol cdnflow speaks, cache-status headers, and one routing
// block per distribution (Site). Values from API users end up inside VCL, so
// every one is validated against a strict alphabet before it is written.
package vcl

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Backend is an origin address.
type Backend struct {
	Host string
	Port int
}

// Site is one distribution as an edge enforces it.
type Site struct {
	// Name identifies the site in logs; the renderer derives VCL names itself.
	Name    string
	Hosts   []string
	Origins []Backend
	// OriginPath is prepended to the request path on the origin request.
	OriginPath string
	// ForwardHostHeader: ORIGIN_HOSTNAME sends the origin's host name,
	// REQUEST_HOST_HEADER keeps the client's Host.
	ForwardHostHeader string
	// TTL > 0 overrides origin caching headers (NHN useOrigin=N); 0 obeys them.
	TTL                time.Duration
	ReferrerType       string // "", BLACKLIST, WHITELIST
	Referrers          []string
	AllowEmptyReferrer bool
	Suspended          bool
}

// Config is everything one edge's VCL depends on.
type Config struct {
	EdgeID string
	// DefaultBackend serves hosts that match no site; nil answers them 404.
	DefaultBackend *Backend
	Sites          []Site
	// PurgeACL lists addresses allowed to PURGE and BAN.
	PurgeACL []string
}

// Forward host header modes.
const (
	ForwardOriginHostname = "ORIGIN_HOSTNAME"
	ForwardRequestHost    = "REQUEST_HOST_HEADER"
)

var (
	hostnameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	// pathRe is RFC 3986 path characters: nothing that can end a VCL string.
	pathRe   = regexp.MustCompile(`^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$`)
	edgeIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,64}$`)
)

// ValidHostname reports whether h is a lower-case DNS name cdnflow accepts.
func ValidHostname(h string) bool { return len(h) <= 253 && hostnameRe.MatchString(h) }

// ValidOriginHost accepts a DNS name or an IP address.
func ValidOriginHost(h string) bool {
	return ValidHostname(strings.ToLower(h)) || net.ParseIP(h) != nil
}

// ValidOriginPath accepts "" or an absolute path of RFC 3986 characters.
func ValidOriginPath(p string) bool { return p == "" || (len(p) <= 8192 && pathRe.MatchString(p)) }

// ValidReferrerPattern accepts a regular expression that can be embedded in
// a VCL long string and that compiles.
func ValidReferrerPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty referrer pattern")
	}
	if strings.Contains(p, `"}`) || strings.ContainsAny(p, "\x00\r\n") {
		return fmt.Errorf("referrer pattern %q contains characters that cannot be used", p)
	}
	if _, err := regexp.Compile(p); err != nil {
		return fmt.Errorf("referrer pattern %q is not a valid regular expression: %w", p, err)
	}
	return nil
}

type renderBackend struct {
	Name, Host string
	Port       int
}

type renderSite struct {
	ID           string
	Hosts        []string
	Backend      string
	OriginPath   string
	OriginHost   string
	ForwardHost  bool
	TTLSeconds   int64
	Suspended    bool
	AllowEmpty   bool
	ReferrerMode string
	ReferrerRe   string
}

// Render returns the VCL for cfg, or an error naming the value that cannot
// be expressed safely.
func Render(cfg Config) (string, error) {
	if !edgeIDRe.MatchString(cfg.EdgeID) {
		return "", fmt.Errorf("edge id %q: invalid", cfg.EdgeID)
	}
	data := struct {
		EdgeID   string
		Default  *renderBackend
		Backends []renderBackend
		Sites    []renderSite
		ACL      []string
	}{EdgeID: cfg.EdgeID}
	acl := cfg.PurgeACL
	if len(acl) == 0 {
		acl = []string{"127.0.0.1", "::1"}
	}
	for _, a := range acl {
		entry, err := aclEntry(a)
		if err != nil {
			return "", err
		}
		data.ACL = append(data.ACL, entry)
	}
	if b := cfg.DefaultBackend; b != nil {
		if err := checkBackend(*b); err != nil {
			return "", fmt.Errorf("default backend: %w", err)
		}
		data.Default = &renderBackend{Name: "cdnflow_default", Host: b.Host, Port: b.Port}
	}
	seenHost := map[string]string{}
	for i, s := range cfg.Sites {
		rs := renderSite{ID: fmt.Sprintf("site%d", i)}
		where := fmt.Sprintf("site %q", s.Name)
		if len(s.Hosts) == 0 {
			return "", fmt.Errorf("%s: no hosts", where)
		}
		for _, h := range s.Hosts {
			h = strings.ToLower(h)
			if !ValidHostname(h) {
				return "", fmt.Errorf("%s: invalid host %q", where, h)
			}
			if other, dup := seenHost[h]; dup {
				return "", fmt.Errorf("%s: host %q is already served by site %q", where, h, other)
			}
			seenHost[h] = s.Name
			rs.Hosts = append(rs.Hosts, h)
		}
		if len(s.Origins) == 0 {
			return "", fmt.Errorf("%s: no origin", where)
		}
		// Varnish has one backend per director member; the first origin is
		// the one served (NHN distributions have a single origin in practice).
		o := s.Origins[0]
		if err := checkBackend(o); err != nil {
			return "", fmt.Errorf("%s: origin: %w", where, err)
		}
		rs.Backend = fmt.Sprintf("cdnflow_%s_o0", rs.ID)
		data.Backends = append(data.Backends, renderBackend{Name: rs.Backend, Host: o.Host, Port: o.Port})
		if !ValidOriginPath(s.OriginPath) {
			return "", fmt.Errorf("%s: invalid originPath %q", where, s.OriginPath)
		}
		rs.OriginPath = strings.TrimSuffix(s.OriginPath, "/")
		switch s.ForwardHostHeader {
		case "", ForwardOriginHostname:
			rs.ForwardHost = true
			rs.OriginHost = strings.ToLower(o.Host)
		case ForwardRequestHost:
		default:
			return "", fmt.Errorf("%s: invalid forwardHostHeader %q", where, s.ForwardHostHeader)
		}
		if s.TTL < 0 {
			return "", fmt.Errorf("%s: negative TTL", where)
		}
		rs.TTLSeconds = int64(s.TTL / time.Second)
		rs.Suspended = s.Suspended
		rs.AllowEmpty = s.AllowEmptyReferrer
		switch s.ReferrerType {
		case "":
		case "BLACKLIST", "WHITELIST":
			if len(s.Referrers) > 0 {
				var parts []string
				for _, p := range s.Referrers {
					if err := ValidReferrerPattern(p); err != nil {
						return "", fmt.Errorf("%s: %w", where, err)
					}
					parts = append(parts, "(?:"+p+")")
				}
				rs.ReferrerMode = s.ReferrerType
				rs.ReferrerRe = strings.Join(parts, "|")
			} else if s.ReferrerType == "WHITELIST" {
				// An empty whitelist admits nobody with a Referer.
				rs.ReferrerMode = "WHITELIST"
				rs.ReferrerRe = "(?!)"
			}
		default:
			return "", fmt.Errorf("%s: invalid referrerType %q", where, s.ReferrerType)
		}
		data.Sites = append(data.Sites, rs)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("render vcl: %w", err)
	}
	return buf.String(), nil
}

func checkBackend(b Backend) error {
	if !ValidOriginHost(b.Host) {
		return fmt.Errorf("invalid host %q", b.Host)
	}
	if b.Port < 1 || b.Port > 65535 {
		return fmt.Errorf("invalid port %d", b.Port)
	}
	return nil
}

func aclEntry(a string) (string, error) {
	if ip := net.ParseIP(a); ip != nil {
		return `"` + ip.String() + `"`, nil
	}
	if ip, n, err := net.ParseCIDR(a); err == nil {
		ones, _ := n.Mask.Size()
		return fmt.Sprintf(`"%s"/%d`, ip.Mask(n.Mask).String(), ones), nil
	}
	return "", fmt.Errorf("purge acl entry %q is not an IP or CIDR", a)
}

var tmpl = template.Must(template.New("vcl").Funcs(template.FuncMap{
	"hostMatch": func(hosts []string) string {
		var parts []string
		for _, h := range hosts {
			parts = append(parts, `req.http.host == "`+h+`"`)
		}
		return strings.Join(parts, " || ")
	},
}).Parse(vclTemplate))
