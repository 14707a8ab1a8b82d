package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Site is one distribution as an edge serves it: the entry of the edge's
// site table that the connector routes by the client's Host. The table is
// the edge's whole per-distribution configuration; the VCL only holds what
// must be decided before the cache lookup (referrer rules, see Referrer),
// rendered from the same table. JSON is the admin protocol's shape.
type Site struct {
	// Name is the distribution's domain; it names the entry.
	Name string `json:"name"`
	// Hosts are the domain and its aliases: lower-case DNS names without
	// port, each served by one site only.
	Hosts []string `json:"hosts"`
	// Gen orders the changes of one distribution (newer wins).
	Gen Generation `json:"gen"`
	// Origins (1 to MaxOrigins) are balanced round-robin.
	Origins []SiteOrigin `json:"origins"`
	// ForwardRequestHost sends the client's Host to the origins (NHN
	// forwardHostHeader REQUEST_HOST_HEADER); false sends each origin's
	// own name (ORIGIN_HOSTNAME).
	ForwardRequestHost bool `json:"forwardRequestHost,omitempty"`
	// TTL (seconds) > 0 forces the object lifetime (NHN useOrigin N,
	// maxAge); the connector hands it to the VCL in HeaderTTL. 0 obeys
	// the origin's caching headers.
	TTL int64 `json:"ttl,omitempty"`
	// Suspended sites are answered 404 without a fetch (NHN SUSPEND:
	// the distribution is off, as if it did not exist).
	Suspended bool `json:"suspended,omitempty"`
	// Referrer is enforced by the edge's VCL (on hits too); nil: none.
	Referrer *Referrer `json:"referrer,omitempty"`
	// Cache is the distribution's cache policy (CachePolicy); nil: the
	// default (no cookies forwarded, private answers never stored).
	Cache *CachePolicy `json:"cache,omitempty"`
	// Owner is the id of the control plane that wrote the entry (one per
	// cdnflow cluster and namespace: config --control-plane-id). A control
	// plane's sync deletes and heals only its own entries; "" is an entry
	// no control plane claims.
	Owner string `json:"owner,omitempty"`
}

// SiteOrigin is one origin of a Site and its own path prefix (NHN
// origins[].originPath): "" or "/a/b", prepended to the client's path on
// the origin request. Cache keys and ban URLs keep the client's URL.
type SiteOrigin struct {
	Origin
	Path string `json:"path,omitempty"`
}

// Referrer is a site's Referer rule (NHN referrerType, referrers,
// isAllowWhenEmptyReferrer): Type "BLACKLIST" or "WHITELIST", Patterns
// PCRE matched against the Referer header.
type Referrer struct {
	Type       string   `json:"type"`
	Patterns   []string `json:"patterns,omitempty"`
	AllowEmpty bool     `json:"allowEmpty,omitempty"`
}

// CachePolicy is a site's cache policy (distribution.CachePolicy).
// Cookies (at most MaxForwardCookies sorted RFC 6265 cookie names of at
// most MaxCookieNameLen bytes) are kept on GET and HEAD requests and
// become part of the cache key: the edge's VCL enforces them before the
// lookup. CachePrivate lets the edge store answers marked Cache-Control
// private, no-store or no-cache: the connector tells the VCL so in
// HeaderCachePrivate.
type CachePolicy struct {
	Cookies      []string `json:"cookies,omitempty"`
	CachePrivate bool     `json:"cachePrivate,omitempty"`
}

// Bounds of a CachePolicy: the cookie names end up in the edge's VCL and
// in every cache lookup of the site.
const (
	MaxForwardCookies = 10
	MaxCookieNameLen  = 64
)

// cookieNameRe is RFC 6265 §4.1.1 cookie-name (an RFC 9110 token): no
// quote, comma, brace or space, so a name is safe in a VCL string and in
// vmod_cookie's comma-separated filter.
var cookieNameRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

// Check validates p; the error names the bad value.
func (p CachePolicy) Check() error {
	if len(p.Cookies) > MaxForwardCookies {
		return fmt.Errorf("%d forwarded cookies; at most %d", len(p.Cookies), MaxForwardCookies)
	}
	for _, c := range p.Cookies {
		if len(c) == 0 || len(c) > MaxCookieNameLen || !cookieNameRe.MatchString(c) {
			return fmt.Errorf("forwarded cookie %q is not a cookie name of at most %d bytes", c, MaxCookieNameLen)
		}
	}
	return nil
}

// Generation orders the changes of one distribution: Created is its
// creation time (epoch ms), so a domain deleted and created again is newer
// than every change of its earlier life; Version counts its changes.
type Generation struct {
	Created int64 `json:"created"`
	Version int   `json:"version"`
}

// Less reports whether g is older than o.
func (g Generation) Less(o Generation) bool {
	if g.Created != o.Created {
		return g.Created < o.Created
	}
	return g.Version < o.Version
}

// String is "created.version", as logs and GET /v1/edges show it.
func (g Generation) String() string { return fmt.Sprintf("%d.%d", g.Created, g.Version) }

// Additional internal headers of the site table.
const (
	// HeaderAdmin marks a request to the site table's admin protocol.
	// The edge's VCL forwards it only from the purge ACL (anyone else is
	// answered 403) and removes it from every other request.
	HeaderAdmin = "X-Cdnflow-Admin"
	// HeaderTTL on a response tells the VCL the site's forced lifetime in
	// seconds (Site.TTL); origins cannot set it (internal headers are
	// removed from their answers).
	HeaderTTL = "X-Cdnflow-Ttl"
	// HeaderCachePrivate ("1") on a response tells the VCL the site
	// stores answers marked private, no-store or no-cache
	// (CachePolicy.CachePrivate); origins cannot set it.
	HeaderCachePrivate = "X-Cdnflow-Cache-Private"
)

// AdminPath is the path prefix of the admin protocol: GET AdminPath (the
// table: TableState), PUT AdminPath (replace it: a JSON []Site), PUT
// AdminPath+name[?force=1] (one Site, applied when its Gen is not older,
// or always with force), DELETE AdminPath+name?created=&version=[&force=1]
// (close the site, keeping a ClosedSite). Answers are PutResult JSON, or
// a one-line text error: 400 a refused request, 500 a change the
// connector could not save (nothing changed; retry).
const AdminPath = "/.cdnflow/sites/"

// MaxOriginPathLen is the longest origin path prefix (bytes): the one
// limit the NHN API, the VCL renderer and the connector share.
const MaxOriginPathLen = 1024

var originPathRe = regexp.MustCompile(`^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$`)

// CheckOriginPath validates an origin path prefix: "" or RFC 3986 path
// segments ("/a/b", no trailing "/"), percent-encoded where needed, at
// most MaxOriginPathLen bytes.
func CheckOriginPath(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > MaxOriginPathLen {
		return fmt.Errorf("originPath is %d characters long; at most %d", len(p), MaxOriginPathLen)
	}
	if !originPathRe.MatchString(p) {
		return fmt.Errorf("originPath %q must start with / and contain only URL path characters (percent-encode others)", p)
	}
	return nil
}

// Check validates s as the connector will serve it; the error names the
// bad value.
func (s Site) Check() error {
	if s.Name == "" || len(s.Name) > 253 {
		return errors.New("site without a valid name")
	}
	if len(s.Hosts) == 0 {
		return fmt.Errorf("site %s: no hosts", s.Name)
	}
	for _, h := range s.Hosts {
		if len(h) > 253 || !hostNameRe.MatchString(h) {
			return fmt.Errorf("site %s: host %q is not a lower-case DNS name", s.Name, h)
		}
	}
	if len(s.Origins) == 0 || len(s.Origins) > MaxOrigins {
		return fmt.Errorf("site %s: %d origins; want 1 to %d", s.Name, len(s.Origins), MaxOrigins)
	}
	for _, o := range s.Origins {
		if _, err := parseOrigin(o.Origin.String()); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
		if err := CheckOriginPath(o.Path); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
	}
	if s.TTL < 0 {
		return fmt.Errorf("site %s: negative TTL", s.Name)
	}
	if s.Cache != nil {
		if err := s.Cache.Check(); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
	}
	return nil
}

// Digest is a short content hash of a set of sites, in name order: equal
// tables have equal digests.
func Digest(sites []Site) string {
	sorted := slices.Clone(sites)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// hostOf is the lower-case client Host without port or trailing dot.
func hostOf(h string) string {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

// prefixPath puts prefix (checked by CheckOriginPath: already
// percent-encoded) in front of u's path, keeping the client's encoding.
func prefixPath(u *url.URL, prefix string) {
	esc := prefix + u.EscapedPath()
	u.RawPath = esc
	if p, err := url.PathUnescape(esc); err == nil {
		u.Path = p
	}
}
