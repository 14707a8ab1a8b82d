// Package vcl renders the Varnish (VCL 4.1) configuration of one cdnflow
// edge: host normalisation, the PURGE/BAN/tag protocol, surrogate keys
// scoped per host, cache-status headers, the forced TTL the connector
// names, and a recv block for each distribution (Site) with a referrer
// rule — the only per-distribution VCL. Everything else a distribution
// needs (origins, paths, Host, TTL, suspension) is an entry of the edge's
// site table in its origin connector (Entry, connector.Site), changed
// without compiling anything: a change to one distribution costs one
// table entry, and a VCL compile only when referrer rules change.
//
// Host names, paths and referrer patterns come from API users and end up
// inside VCL source, so each is checked against an alphabet that cannot end
// or escape the VCL string it is written into; anything else is rejected
// with an error naming the value.
package vcl

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// Backend is an origin server of a Config: its DefaultBackend, and the
// origins of sites written as a whole Config (tests and tools, Entries).
// A distribution's origins are not Backends: they go from the distribution
// model to the site table entry (distribution.Config.SiteOrigins,
// Site.EntryWith). Scheme is "http" (default when empty) or "https", Host
// an IP address or a DNS name, Port 1-65535. Varnish never connects to it:
// the edge's origin connector (edge/connector) does, resolving the name to
// all its addresses, speaking TLS for https and applying the origin address
// policy.
type Backend struct {
	Scheme string
	Host   string
	Port   int
	// Path ("" or "/...") is this origin's own path prefix (NHN
	// origins[].originPath); "" falls back to Site.OriginPath.
	Path string
}

// Site is one distribution as an edge enforces it.
type Site struct {
	// Name identifies the site in the rendered VCL's comments and in
	// errors. VCL identifiers are derived from the site's position, so
	// Name only has to be printable (letters, digits, "._-:").
	Name string
	// Hosts are the domain and its aliases, without port. They are
	// lower-cased; a host may belong to one site only.
	Hosts []string
	// Origins (1 to connector.MaxOrigins for Entry) become the site table
	// entry's; the connector balances over them and their addresses.
	// Render needs none (see SiteOfEntry).
	Origins []Backend
	// OriginPath ("" or "/...") is prepended to the URL on the origin
	// request for origins without their own Backend.Path. The cache key
	// and ban URLs keep the client's URL.
	OriginPath string
	// ForwardHostHeader is ForwardOriginHostname (default when empty) or
	// ForwardRequestHost.
	ForwardHostHeader string
	// TTL > 0 forces the object lifetime (origin caching headers ignored);
	// 0 obeys the origin.
	TTL time.Duration
	// ReferrerType is "", ReferrerBlacklist or ReferrerWhitelist.
	ReferrerType string
	// Referrers are regular expressions matched against the Referer header.
	Referrers []string
	// AllowEmptyReferrer admits requests without Referer when a referrer
	// rule is set.
	AllowEmptyReferrer bool
	// Suspended sites answer 404 to every request (NHN SUSPEND: the
	// domain is not served).
	Suspended bool
	// ForwardCookies (at most connector.MaxForwardCookies RFC 6265 names)
	// are the only cookies kept on GET and HEAD requests; they become part
	// of the cache key. Empty (the default): the Cookie header is dropped
	// before the lookup and never reaches the origin.
	ForwardCookies []string
	// CachePrivate lets the edge store answers marked Cache-Control
	// private, no-store or no-cache (distribution.CachePolicy: dangerous).
	CachePrivate bool
}

// Config is everything one edge's VCL depends on.
type Config struct {
	// EdgeID is sent as X-Edge-Id; empty uses varnishd's -i identity.
	EdgeID string
	// ConnectorPort is the port of this edge's origin connector on
	// 127.0.0.1 (inventory connectorAddress): Varnish's only backend.
	// Required.
	ConnectorPort int
	// DefaultBackend serves hosts that match no site, with the client's
	// Host; nil answers them 404. It is the edge's own fallback origin (the
	// worker's --default-origin), named to the connector in the VCL, not a
	// distribution's origin.
	DefaultBackend *Backend
	Sites          []Site
	// PurgeACL lists IPs and CIDRs allowed to send control requests
	// (PURGE, BAN, the cache-only probe, the site table's admin protocol);
	// empty means loopback only. It is the first of two checks:
	// ControlToken is the second.
	PurgeACL []string
	// ControlToken is the edge's control token
	// (connector.ControlTokenFile of its inventory secretFile): every
	// control request must carry it in connector.HeaderControl, or is
	// answered 403, from inside PurgeACL too (a proxy on loopback in front
	// of the edge is inside it). Required: 32-128 letters, digits, '-' or
	// '_' (connector.ControlToken gives 64 hex digits).
	ControlToken string
}

// ForwardHostHeader values.
const (
	ForwardOriginHostname = "ORIGIN_HOSTNAME"
	ForwardRequestHost    = "REQUEST_HOST_HEADER"
)

// ReferrerType values.
const (
	ReferrerBlacklist = "BLACKLIST"
	ReferrerWhitelist = "WHITELIST"
)

// DefaultPurgeACL is used when Config.PurgeACL is empty.
var DefaultPurgeACL = []string{"127.0.0.1", "::1"}

const (
	maxHostLen    = 253
	maxPatternLen = 1024
)

// MaxOriginPathLen is the longest originPath (bytes, without the trailing
// "/") an edge accepts: the one limit the NHN API, the renderer and the
// connector share (CheckOriginPath is the one check), so a path the API
// accepted is always served. The API answers 10001 for a longer one.
const MaxOriginPathLen = connector.MaxOriginPathLen

var (
	hostLabel  = `[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?`
	hostRe     = regexp.MustCompile(`^` + hostLabel + `(\.` + hostLabel + `)*$`)
	edgeIDRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	siteNameRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// controlTokenRe keeps the token inside a VCL string and an HTTP
	// header, and long enough to be a credential.
	controlTokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{32,128}$`)
)

// NormalizeHost lower-cases h and drops a trailing dot, the same way the
// rendered VCL normalises the client's Host header.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// CheckHost validates a site host name (already normalised).
func CheckHost(h string) error {
	if strings.Contains(h, ":") {
		return fmt.Errorf("host %q must not contain a port", h)
	}
	if h == "" || len(h) > maxHostLen || !hostRe.MatchString(h) {
		return fmt.Errorf("host %q is not a valid DNS name (letters, digits, '-', '_' and dots)", h)
	}
	return nil
}

// CheckBackend validates an origin address.
func CheckBackend(b Backend) error {
	if b.Scheme != "" && b.Scheme != "http" && b.Scheme != "https" {
		return fmt.Errorf("origin %s: scheme %q (valid: http, https)", b.Host, b.Scheme)
	}
	if net.ParseIP(b.Host) == nil {
		if err := CheckHost(NormalizeHost(b.Host)); err != nil {
			return fmt.Errorf("origin host: %w", err)
		}
	}
	if b.Port < 1 || b.Port > 65535 {
		return fmt.Errorf("origin %s: port %d out of range 1-65535", b.Host, b.Port)
	}
	return nil
}

// CheckOriginPath validates an origin path prefix: connector.CheckOriginPath
// after dropping one trailing "/".
func CheckOriginPath(p string) error {
	return connector.CheckOriginPath(strings.TrimSuffix(p, "/"))
}

// Bounds of a referrer pattern that keep its match on the edge linear
// enough for PCRE2's match limit (Varnish 7.1 answers "503 VCL failed" to
// a visitor when a match errors: varnishd pcre2_match_limit): see
// CheckReferrerPattern.
const (
	// MaxReferrerUnbounded is how many unbounded quantifiers (*, +,
	// {n,}) one pattern may have.
	MaxReferrerUnbounded = 2
	// MaxReferrerRepeat is the largest count of a counted quantifier.
	MaxReferrerRepeat = 32
	// MaxReferrerLen is the longest Referer (bytes) the patterns are
	// matched against; a longer Referer matches none (WHITELIST: refused
	// 403, BLACKLIST: admitted).
	MaxReferrerLen = 1024
)

// CheckReferrerPattern validates one referrer regular expression. Varnish
// uses PCRE2 while the check compiles with Go's RE2, so PCRE-only features
// (look-around, back-references) are refused rather than risk a VCL that
// does not load. The edge matches with PCRE2, which backtracks, and
// Varnish 7.1 fails the request (503) when a match hits its match limit,
// so a pattern that can backtrack catastrophically is refused: a
// quantifier may repeat only one character, a character class or "."
// (never a group: no "(a+)+", "(a|aa)*", "(ab)*"), except "?" (an
// optional group such as "(www\.)?" is tried at most twice); counted
// quantifiers go up to MaxReferrerRepeat, and at most
// MaxReferrerUnbounded quantifiers are unbounded.
func CheckReferrerPattern(p string) error {
	if err := checkReferrerSyntax(p); err != nil {
		return err
	}
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return fmt.Errorf("referrer pattern %q: %w", p, err)
	}
	unbounded := 0
	if err := checkBacktracking(re, &unbounded); err != nil {
		return fmt.Errorf("referrer pattern %q: %w", p, err)
	}
	if unbounded > MaxReferrerUnbounded {
		return fmt.Errorf("referrer pattern %q has %d unbounded quantifiers (*, +, {n,}); at most %d, so the edge's match cannot run out of steps", p, unbounded, MaxReferrerUnbounded)
	}
	return nil
}

// checkReferrerSyntax is what rendering needs of a referrer pattern: it
// stays inside its VCL string and compiles. The renderer checks no more,
// so a rule the API admitted under older bounds still renders (and the
// edge's other sites with it).
func checkReferrerSyntax(p string) error {
	if p == "" {
		return errors.New("empty referrer pattern")
	}
	if len(p) > maxPatternLen {
		return fmt.Errorf("referrer pattern longer than %d bytes", maxPatternLen)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("referrer pattern %q contains a control character", p)
		}
	}
	// `"}` would end the VCL long string the pattern is written into.
	if strings.Contains(p, `"}`) {
		return fmt.Errorf(`referrer pattern %q contains "}; write the quote as \x22`, p)
	}
	if _, err := regexp.Compile(p); err != nil {
		return fmt.Errorf("referrer pattern %q: %w", p, err)
	}
	return nil
}

// checkBacktracking walks re (Go's parse, before simplification) and
// refuses the shapes PCRE2 can backtrack over for long: a quantifier over
// more than one character, a counted quantifier beyond MaxReferrerRepeat.
// It counts unbounded quantifiers in n.
func checkBacktracking(re *syntax.Regexp, n *int) error {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat, syntax.OpQuest:
		if re.Op == syntax.OpRepeat && (re.Max > MaxReferrerRepeat || re.Min > MaxReferrerRepeat) {
			return fmt.Errorf("counted quantifier {%d,%d} beyond %d", re.Min, re.Max, MaxReferrerRepeat)
		}
		unbounded := re.Op == syntax.OpStar || re.Op == syntax.OpPlus || (re.Op == syntax.OpRepeat && re.Max == -1)
		if unbounded {
			*n++
		}
		sub := re.Sub[0]
		if !oneChar(sub) && re.Op != syntax.OpQuest {
			return fmt.Errorf("quantifier %s repeats a group (%s): nested or grouped quantifiers can backtrack without end; repeat one character or class, e.g. [a-z0-9.-]*", quantifier(re), sub)
		}
	}
	for _, sub := range re.Sub {
		if err := checkBacktracking(sub, n); err != nil {
			return err
		}
	}
	return nil
}

// oneChar reports whether re matches exactly one character (a literal
// character, a class or "."), possibly inside a capture.
func oneChar(re *syntax.Regexp) bool {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) == 1
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	}
	return false
}

// quantifier names re's quantifier for an error.
func quantifier(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpStar:
		return "*"
	case syntax.OpPlus:
		return "+"
	case syntax.OpQuest:
		return "?"
	}
	if re.Max == -1 {
		return fmt.Sprintf("{%d,}", re.Min)
	}
	return fmt.Sprintf("{%d,%d}", re.Min, re.Max)
}

// Render returns the VCL for cfg, or an error naming the first value that
// cannot be expressed safely.
func Render(cfg Config) (string, error) {
	p, err := plan(cfg)
	if err != nil {
		return "", err
	}
	var w writer
	p.write(&w)
	return w.String(), nil
}

type sitePlan struct {
	index       int
	name        string
	hosts       []string
	forwardHost bool
	ttlSeconds  int64
	refType     string
	referrers   []string
	allowEmpty  bool
	cookies     []string // forwarded cookies, sorted; nil: none
}

// needsVCL reports whether the site has rules the VCL enforces before the
// lookup: a referrer rule or forwarded cookies.
func (s *sitePlan) needsVCL() bool { return s.refType != "" || len(s.cookies) > 0 }

func (s *sitePlan) sub(kind string) string {
	return fmt.Sprintf("cdnflow_site_%d_%s", s.index, kind)
}

type renderPlan struct {
	edgeID        string
	controlToken  string
	connectorPort int
	def           string // the default origin's connector.HeaderOrigins value; "" none
	sites         []*sitePlan
	acl           []string
}

func plan(cfg Config) (*renderPlan, error) {
	p := &renderPlan{}
	if cfg.EdgeID != "" && !edgeIDRe.MatchString(cfg.EdgeID) {
		return nil, fmt.Errorf("edge id %q: must be 1-64 letters, digits, '-' or '_'", cfg.EdgeID)
	}
	p.edgeID = cfg.EdgeID
	if cfg.ConnectorPort < 1 || cfg.ConnectorPort > 65535 {
		return nil, fmt.Errorf("connector port %d out of range 1-65535 (every edge fetches through its origin connector)", cfg.ConnectorPort)
	}
	p.connectorPort = cfg.ConnectorPort
	if cfg.ControlToken == "" {
		return nil, errors.New("no control token: an edge's VCL admits control requests only with its token (connector.ControlTokenFile of the edge's secretFile)")
	}
	if !controlTokenRe.MatchString(cfg.ControlToken) {
		return nil, errors.New("control token must be 32-128 letters, digits, '-' or '_'")
	}
	p.controlToken = cfg.ControlToken
	acl := cfg.PurgeACL
	if len(acl) == 0 {
		acl = DefaultPurgeACL
	}
	for _, a := range acl {
		entry, err := aclEntry(a)
		if err != nil {
			return nil, err
		}
		p.acl = append(p.acl, entry)
	}
	if b := cfg.DefaultBackend; b != nil {
		v, err := originsHeader([]Backend{*b})
		if err != nil {
			return nil, fmt.Errorf("default backend: %w", err)
		}
		p.def = v
	}
	sp := sitePlanner{p: p, hostOwner: map[string]string{}, names: map[string]bool{}}
	for i, s := range cfg.Sites {
		site, err := sp.site(i, s)
		if err != nil {
			return nil, err
		}
		if site.needsVCL() {
			// The only per-site VCL; the rest lives in the site table.
			p.sites = append(p.sites, site)
		}
	}
	return p, nil
}

// sitePlanner checks sites one after another against those before them:
// unique names, each host served by one site.
type sitePlanner struct {
	p         *renderPlan
	hostOwner map[string]string // host -> site name
	names     map[string]bool
}

func (pl *sitePlanner) site(i int, s Site) (*sitePlan, error) {
	sp := &sitePlan{index: i + 1, name: s.Name}
	if sp.name == "" {
		sp.name = fmt.Sprintf("site-%d", i+1)
	}
	where := fmt.Sprintf("site %d (%q)", i+1, s.Name)
	if !siteNameRe.MatchString(sp.name) {
		return nil, fmt.Errorf("%s: name must be 1-128 letters, digits or '._:-'", where)
	}
	if pl.names[sp.name] {
		return nil, fmt.Errorf("%s: duplicate site name", where)
	}
	pl.names[sp.name] = true
	if err := pl.hosts(sp, s); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := pl.backends(sp, s); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := siteRules(sp, s); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return sp, nil
}

func (pl *sitePlanner) hosts(sp *sitePlan, s Site) error {
	if len(s.Hosts) == 0 {
		return errors.New("no hosts")
	}
	for _, h := range s.Hosts {
		h = NormalizeHost(h)
		if err := CheckHost(h); err != nil {
			return err
		}
		if owner, dup := pl.hostOwner[h]; dup {
			return fmt.Errorf("host %q is already served by site %q", h, owner)
		}
		pl.hostOwner[h] = sp.name
		sp.hosts = append(sp.hosts, h)
	}
	return nil
}

func (pl *sitePlanner) backends(sp *sitePlan, s Site) error {
	// The connector reads the origins from the site table and the VCL
	// names none of them: rendering only checks that origins given would
	// survive the connector's parse. A site without origins is rendered
	// (a table entry's rules, SiteOfEntry); Entry refuses it.
	if len(s.Origins) == 0 {
		return nil
	}
	_, err := originsHeader(s.Origins)
	return err
}

// originsHeader checks origins and returns the connector.HeaderOrigins
// value naming them, proven by parsing it back the way the connector will
// (connector.ParseOrigins): the value is written into a VCL string, so only
// what survives that parse unchanged is rendered.
func originsHeader(bs []Backend) (string, error) {
	if len(bs) > connector.MaxOrigins {
		return "", fmt.Errorf("%d origins; at most %d", len(bs), connector.MaxOrigins)
	}
	origins := make([]connector.Origin, len(bs))
	for i, b := range bs {
		if err := CheckBackend(b); err != nil {
			return "", err
		}
		scheme := b.Scheme
		if scheme == "" {
			scheme = "http"
		}
		origins[i] = connector.Origin{Scheme: scheme, Host: backendHost(b.Host), Port: b.Port}
	}
	v := connector.FormatOrigins(origins)
	back, err := connector.ParseOrigins(v)
	if err != nil {
		return "", fmt.Errorf("origins: %w", err)
	}
	if connector.FormatOrigins(back) != v || strings.ContainsAny(v, `"{}\`) {
		return "", fmt.Errorf("origins %q do not survive the connector's parse", v)
	}
	return v, nil
}

// siteRules checks the origin path and plans Host forwarding, the TTL and
// the referrer rule; origins and suspension live in the site table.
func siteRules(sp *sitePlan, s Site) error {
	if err := CheckOriginPath(s.OriginPath); err != nil {
		return err
	}
	switch s.ForwardHostHeader {
	case "", ForwardOriginHostname:
		sp.forwardHost = true
	case ForwardRequestHost:
	default:
		return fmt.Errorf("forwardHostHeader %q (valid: %s, %s)", s.ForwardHostHeader, ForwardOriginHostname, ForwardRequestHost)
	}
	if s.TTL < 0 {
		return fmt.Errorf("negative TTL %s", s.TTL)
	}
	if len(s.ForwardCookies) > 0 {
		cookies := slices.Clone(s.ForwardCookies)
		slices.Sort(cookies)
		cookies = slices.Compact(cookies)
		if err := (connector.CachePolicy{Cookies: cookies}).Check(); err != nil {
			return err
		}
		sp.cookies = cookies
	}
	sp.ttlSeconds = int64((s.TTL + time.Second - 1) / time.Second) // a sub-second TTL still caches
	switch s.ReferrerType {
	case "":
	case ReferrerBlacklist:
		if len(s.Referrers) == 0 && s.AllowEmptyReferrer {
			// An empty blacklist that admits requests without Referer
			// refuses nothing: no rule (and no VCL) at all.
			break
		}
		fallthrough
	case ReferrerWhitelist:
		sp.refType = s.ReferrerType
		sp.allowEmpty = s.AllowEmptyReferrer
		for _, r := range s.Referrers {
			if err := checkReferrerSyntax(r); err != nil {
				return err
			}
			sp.referrers = append(sp.referrers, r)
		}
	default:
		return fmt.Errorf("referrerType %q (valid: %s, %s or empty)", s.ReferrerType, ReferrerBlacklist, ReferrerWhitelist)
	}
	return nil
}

// backendHost lower-cases DNS names and canonicalises IPs so equal origins
// share one backend.
func backendHost(h string) string {
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return NormalizeHost(h)
}

func aclEntry(a string) (string, error) {
	a = strings.TrimSpace(a)
	if ip := net.ParseIP(a); ip != nil {
		return strconv.Quote(ip.String()) + ";", nil
	}
	if _, n, err := net.ParseCIDR(a); err == nil {
		ones, _ := n.Mask.Size()
		// The network address, not the given one: Varnish refuses ACL
		// entries with host bits set in pedantic mode and they hide typos.
		return fmt.Sprintf("%s/%d;", strconv.Quote(n.IP.String()), ones), nil
	}
	return "", fmt.Errorf("purge ACL entry %q is not an IP address or CIDR", a)
}
