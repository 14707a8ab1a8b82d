// Package cachekey defines cdnflow's one canonical cache key: the URL as a
// browser sends it. Prewarm, every purge type, need_invalidate, probes and
// status all name an object by this key, so that what cdnflow warms or evicts
// is the object real visitors request.
//
// The rules are the WHATWG URL Standard's parser for the special schemes
// http and https (https://url.spec.whatwg.org/), which is what browsers
// implement, checked against headless Chromium (see chromium_test.go and
// testdata/chromium.json):
//
//   - Scheme: http or https, any case; nothing else.
//   - Host: percent-decoded, then UTS #46 ToASCII with the URL Standard's
//     flags (non-transitional, CheckBidi, CheckJoiners, no STD3 rules, no
//     CheckHyphens, no DNS length check) via golang.org/x/net/idna: lower
//     case, IDN labels as punycode "xn--" A-labels. A host that ends in a
//     number is an IPv4 address in the URL Standard's loose forms
//     (0x7f.1, 2130706433) and is written dotted-decimal. IPv6 is written
//     bracketed, lower case, longest zero run compressed (RFC 5952 /
//     URL Standard §3.6). A trailing dot is kept, as browsers send it.
//   - Port: decimal, at most 65535; the scheme's default (80, 443) and an
//     empty port are dropped; leading zeros are dropped.
//   - Path: "\" is "/", dot segments ("." ".." and their %2e spellings,
//     any case) are resolved as RFC 3986 §5.2.4 / URL Standard path state
//     do; an empty path is "/". Bytes of the path percent-encode set are
//     percent-encoded with upper-case hex: the URL Standard's (space " # <
//     > ? ^ ` { } and every non-ASCII byte of the UTF-8 encoding) plus "|",
//     which Chromium encodes in paths too. "[", "]", "'", ";" and the other
//     sub-delimiters stay as they are.
//   - Query: kept in order, byte for byte, "+" stays "+"; the
//     special-query percent-encode set (space " # < > ' and non-ASCII) is
//     percent-encoded. A trailing "?" with an empty query is kept ("/a?"),
//     as browsers send it.
//   - Fragment: dropped (browsers never send it).
//   - Existing escapes are kept exactly, hex case included: "%2F" stays
//     "%2F" (never decoded to "/") and "%2f" stays "%2f", as Chromium sends
//     them. Two spellings that differ only in hex case are different cache
//     objects on the edge; WildcardRegex matches both.
//
// Deliberate differences from a browser, because an API caller that sends
// them has almost certainly made a mistake: control characters (U+0000 to
// U+001F and U+007F, including tab and newline, which browsers silently
// strip), a "%" not followed by two hex digits (browsers send it as is),
// user info ("user@host"), and input that is not valid UTF-8 are refused.
// Leading and trailing spaces are trimmed, as browsers do.
package cachekey

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid URL")

// Error names the part of the input that is not a valid URL and why.
type Error struct {
	Part   string // url, scheme, host, port, path, query or pattern
	Input  string // the value that was refused
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Part, e.Input, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

func fail(part, input, format string, args ...any) error {
	return &Error{Part: part, Input: input, Reason: fmt.Sprintf(format, args...)}
}

// Key is a canonical URL split the way an edge sees a request.
type Key struct {
	Scheme string // "http" or "https"
	// Host is the canonical host name without port: lower-case ASCII
	// (IDN as punycode A-labels), IPv4 dotted decimal or IPv6 in brackets.
	Host string
	// Port is "" for the scheme's default port, else decimal.
	Port string
	// PathQuery is the request target a browser sends (Varnish's req.url):
	// path starting with "/", then "?" and the query if the URL has one.
	PathQuery string
}

// Authority is the Host header a browser sends: Host, plus ":" and Port
// when the port is not the scheme's default.
func (k Key) Authority() string {
	if k.Port == "" {
		return k.Host
	}
	return k.Host + ":" + k.Port
}

// String is the canonical absolute URL, without fragment.
func (k Key) String() string { return k.Scheme + "://" + k.Authority() + k.PathQuery }

// Parse canonicalises an absolute http or https URL. Errors are *Error
// (wrapping ErrInvalid) naming the part that is wrong.
func Parse(raw string) (Key, error) {
	s, err := precheck("url", raw)
	if err != nil {
		return Key{}, err
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return Key{}, fail("url", raw, "not an absolute URL: it needs http:// or https://")
	}
	var k Key
	switch scheme := strings.ToLower(s[:colon]); scheme {
	case "http", "https":
		k.Scheme = scheme
	default:
		return Key{}, fail("scheme", s[:colon], "scheme must be http or https")
	}
	rest := s[colon+1:]
	if !strings.HasPrefix(rest, "//") && !strings.HasPrefix(rest, `\\`) {
		return Key{}, fail("url", raw, "%s: must be followed by //", k.Scheme)
	}
	rest = rest[2:]
	end := strings.IndexAny(rest, `/\?#`)
	if end < 0 {
		end = len(rest)
	}
	authority, target := rest[:end], rest[end:]
	if k.Host, k.Port, err = splitAuthority(k.Scheme, authority); err != nil {
		return Key{}, err
	}
	if k.PathQuery, err = canonTarget(target); err != nil {
		return Key{}, err
	}
	return k, nil
}

// ParseHostPath canonicalises a request for pathQuery (path, optional
// "?query", optional "#fragment", starting with "/") on host (a host name
// with an optional ":port") over scheme ("" means http).
func ParseHostPath(scheme, host, pathQuery string) (Key, error) {
	if scheme == "" {
		scheme = "http"
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return Key{}, fail("scheme", scheme, "scheme must be http or https")
	}
	h, err := precheck("host", host)
	if err != nil {
		return Key{}, err
	}
	if strings.ContainsAny(h, `/\?#`) {
		return Key{}, fail("host", host, "a host must not contain / \\ ? or #")
	}
	k := Key{Scheme: scheme}
	if k.Host, k.Port, err = splitAuthority(scheme, h); err != nil {
		return Key{}, err
	}
	if k.PathQuery, err = PathQuery(pathQuery); err != nil {
		return Key{}, err
	}
	return k, nil
}

// PathQuery canonicalises a request target alone: a path starting with "/"
// (or "\"), an optional "?query" and an optional "#fragment" (dropped). The
// result is what Varnish sees as req.url for that target.
func PathQuery(target string) (string, error) {
	s, err := precheck("path", target)
	if err != nil {
		return "", err
	}
	if s == "" || (s[0] != '/' && s[0] != '\\') {
		return "", fail("path", target, "must start with /")
	}
	return canonTarget(s)
}

// Host canonicalises a host name alone ("Example.COM", "例え.jp",
// "[::1]"); a ":port" suffix is refused. It is the host form edges store.
func Host(host string) (string, error) {
	h, err := precheck("host", host)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(h, `/\?#@`) {
		return "", fail("host", host, "a host must not contain / \\ ? # or @")
	}
	return canonHost(h)
}

// precheck trims surrounding spaces and refuses what no part may hold.
func precheck(part, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fail(part, s, "not valid UTF-8")
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fail(part, s, "control character U+%04X at byte %d", r, i)
		}
	}
	return strings.Trim(s, " "), nil
}

func splitAuthority(scheme, a string) (host, port string, err error) {
	if strings.Contains(a, "@") {
		return "", "", fail("host", a, "user info (user@host) is not allowed")
	}
	h, p := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", "", fail("host", a, "IPv6 address without closing ]")
		}
		h, p = a[:end+1], a[end+1:]
		if p != "" && p[0] != ':' {
			return "", "", fail("host", a, "unexpected %q after the IPv6 address", p)
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		h, p = a[:i], a[i:]
	}
	if host, err = canonHost(h); err != nil {
		return "", "", err
	}
	if p != "" {
		if port, err = canonPort(scheme, p[1:]); err != nil {
			return "", "", err
		}
	}
	return host, port, nil
}

func canonPort(scheme, p string) (string, error) {
	if p == "" {
		return "", nil // "host:" has no port (URL Standard port state)
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return "", fail("port", p, "a port is decimal digits only")
		}
	}
	t := strings.TrimLeft(p, "0")
	if len(t) > 5 {
		return "", fail("port", p, "larger than 65535")
	}
	n, _ := strconv.Atoi("0" + t)
	if n > 65535 {
		return "", fail("port", p, "larger than 65535")
	}
	if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
		return "", nil
	}
	return strconv.Itoa(n), nil
}

// whatwgIDNA is UTS #46 ToASCII with the URL Standard's flags (§3.3
// domain to ASCII, beStrict false).
var whatwgIDNA = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
	idna.VerifyDNSLength(false),
)

// forbiddenDomain lists the URL Standard's forbidden domain code points
// that can survive ToASCII (C0 controls and "%" are refused earlier or
// here).
const forbiddenDomain = " #%/:<>?@[\\]^|"

func canonHost(h string) (string, error) {
	if h == "" {
		return "", fail("host", h, "empty host")
	}
	if h[0] == '[' {
		if h[len(h)-1] != ']' {
			return "", fail("host", h, "IPv6 address without closing ]")
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fail("host", h, "not a valid IPv6 address")
		}
		return "[" + ipv6String(a) + "]", nil
	}
	dec, err := percentDecode(h)
	if err != nil {
		return "", fail("host", h, "%v", err)
	}
	if !utf8.ValidString(dec) {
		return "", fail("host", h, "percent-decodes to bytes that are not UTF-8")
	}
	ascii, err := whatwgIDNA.ToASCII(dec)
	if err != nil {
		return "", fail("host", h, "not a valid internationalised domain name: %v", err)
	}
	if ascii == "" || ascii == "." {
		return "", fail("host", h, "empty host")
	}
	for i := 0; i < len(ascii); i++ {
		c := ascii[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(forbiddenDomain, c) >= 0 {
			return "", fail("host", h, "character %q is not allowed in a host name", rune(c))
		}
	}
	if endsInNumber(ascii) {
		v4, err := parseIPv4(ascii)
		if err != nil {
			return "", fail("host", h, "%v", err)
		}
		return v4, nil
	}
	return ascii, nil
}

// ipv6String serialises per URL Standard §3.6: lower-case hex groups, the
// first longest run of two or more zero groups as "::", and IPv4-mapped
// addresses in hex too (unlike netip's String).
func ipv6String(a netip.Addr) string {
	b := a.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	bestAt, bestLen := -1, 1
	for i := 0; i < 8; {
		if g[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i > bestLen {
			bestAt, bestLen = i, j-i
		}
		i = j
	}
	var sb strings.Builder
	for i := 0; i < 8; i++ {
		if i == bestAt {
			sb.WriteString("::")
			i += bestLen - 1
			continue
		}
		if i > 0 && i != bestAt+bestLen {
			sb.WriteByte(':')
		}
		sb.WriteString(strconv.FormatUint(uint64(g[i]), 16))
	}
	return sb.String()
}

// endsInNumber is the URL Standard's "ends in a number checker".
func endsInNumber(h string) bool {
	parts := strings.Split(h, ".")
	if parts[len(parts)-1] == "" {
		if len(parts) == 1 {
			return false
		}
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := ipv4Number(last)
	return ok
}

// ipv4Number parses one part: 0x/0X hex, leading-zero octal or decimal.
func ipv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		// Out of range is still a number (and too large for IPv4).
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 1 << 40, true
		}
		return 0, false
	}
	return n, true
}

// parseIPv4 is the URL Standard's IPv4 parser.
func parseIPv4(h string) (string, error) {
	parts := strings.Split(h, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return "", errors.New("an IPv4 address has at most 4 parts")
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := ipv4Number(p)
		if !ok {
			return "", fmt.Errorf("IPv4 part %q is not a number", p)
		}
		nums[i] = n
	}
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return "", errors.New("IPv4 part larger than 255")
		}
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return "", errors.New("IPv4 address out of range")
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		v += n << (8 * (3 - i))
	}
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// checkEscape reports whether s[i] == '%' starts a valid escape.
func checkEscape(s string, i int) error {
	if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
		end := i + 3
		if end > len(s) {
			end = len(s)
		}
		return fmt.Errorf("bad escape %q at byte %d: %% must be followed by two hex digits (write a literal %% as %%25)", s[i:end], i)
	}
	return nil
}

func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if err := checkEscape(s, i); err != nil {
			return "", err
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

// Percent-encode sets of the URL Standard (§1.3), for the bytes 0x20-0x7e;
// every byte >= 0x80 is encoded in both (controls are refused earlier).
var (
	pathSet  = encodeSet(" \"#<>?^`{|}")
	querySet = encodeSet(" \"#<>'")
)

func encodeSet(chars string) (set [256]bool) {
	for i := 0x80; i < 256; i++ {
		set[i] = true
	}
	for i := 0; i < 0x20; i++ {
		set[i] = true
	}
	set[0x7f] = true
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return set
}

const upperHexDigits = "0123456789ABCDEF"

// appendEncoded writes s with the bytes of set percent-encoded; existing
// escapes are checked and copied unchanged.
func appendEncoded(b *strings.Builder, s string, set *[256]bool) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if err := checkEscape(s, i); err != nil {
				return err
			}
			b.WriteString(s[i : i+3])
			i += 2
		case set[c]:
			b.WriteByte('%')
			b.WriteByte(upperHexDigits[c>>4])
			b.WriteByte(upperHexDigits[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return nil
}

// canonTarget canonicalises path[?query][#fragment]; "" is "/".
func canonTarget(t string) (string, error) {
	if i := strings.IndexByte(t, '#'); i >= 0 {
		t = t[:i]
	}
	path, query, hasQuery := strings.Cut(t, "?")
	var b strings.Builder
	b.Grow(len(t) + len(t)/2)
	if err := appendPath(&b, path); err != nil {
		return "", fail("path", path, "%v", err)
	}
	if hasQuery {
		b.WriteByte('?')
		if err := appendEncoded(&b, query, &querySet); err != nil {
			return "", fail("query", query, "%v", err)
		}
	}
	return b.String(), nil
}

// singleDot and doubleDot are the URL Standard's dot segments.
func singleDot(s string) bool { return s == "." || strings.EqualFold(s, "%2e") }

func doubleDot(s string) bool {
	switch strings.ToLower(s) {
	case "..", ".%2e", "%2e.", "%2e%2e":
		return true
	}
	return false
}

// appendPath resolves dot segments (RFC 3986 §5.2.4 as the URL Standard's
// path state applies it) and encodes each segment.
func appendPath(b *strings.Builder, p string) error {
	if p == "" {
		b.WriteByte('/')
		return nil
	}
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case doubleDot(s):
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		case singleDot(s):
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	for _, s := range out {
		b.WriteByte('/')
		if err := appendEncoded(b, s, &pathSet); err != nil {
			return err
		}
	}
	if len(out) == 0 {
		b.WriteByte('/')
	}
	return nil
}
