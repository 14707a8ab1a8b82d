package cachekey

import (
	"regexp"
	"strings"
)

// NHN WILDCARD purge limits.
const (
	// MaxWildcardPatterns is how many WILDCARD patterns one NHN purge seq
	// holds (NHN Cloud CDN v1.5, "キャッシュ再配布": ITEM and WILDCARD lists
	// over the limit are split into several purge requests, and only the
	// first seq is answered). Longer lists are split into seqs of this size.
	MaxWildcardPatterns = 10
	// MaxPatternLen bounds one pattern in bytes, as the purge API bounds
	// one path.
	MaxPatternLen = 2048
	// MaxPatternWildcards bounds the "*" and "?" of one pattern: every
	// wildcard multiplies the work of the edge's regex engine on each
	// cached object a lurker tests.
	MaxPatternWildcards = 16
)

// Regular expressions over canonical text (see the package doc): every
// character is either one byte other than "%" or one %XX escape.
const (
	// reAnyRun is "*": any run of whole canonical characters, "/" and "?"
	// included. It never ends inside a %XX escape.
	reAnyRun = `(?:[^%]|%[0-9A-Fa-f]{2})*`
	// reOneChar is "?": one character as the user sees it, that is one
	// byte other than "%", one escaped ASCII byte (%00-%7F), or one whole
	// UTF-8 encoded code point (two to four escapes with the lead byte's
	// count of continuation bytes); an escaped byte that can never start a
	// UTF-8 sequence (%80-%C1, %F5-%FF) counts as one character too.
	reOneChar = `(?:[^%]` +
		`|%[0-7][0-9A-Fa-f]` +
		`|%(?:[Cc][2-9A-Fa-f]|[Dd][0-9A-Fa-f])` + reCont +
		`|%[Ee][0-9A-Fa-f]` + reCont + reCont +
		`|%[Ff][0-4]` + reCont + reCont + reCont +
		`|%(?:[89ABab][0-9A-Fa-f]|[Cc][01]|[Ff][5-9A-Fa-f]))`
	reCont = `%[89ABab][0-9A-Fa-f]`
)

// WildcardRegex translates an NHN WILDCARD pattern into an anchored regular
// expression (RE2 and PCRE2 alike: Go's regexp and Varnish's bans) over the
// canonical request target (Key.PathQuery, Varnish's req.url).
//
// Grammar (NHN Cloud CDN purge, WILDCARD type):
//   - "*" matches any run of characters, anywhere: "/images/games/*.jpg",
//     "/*/sports/*.jpg". It crosses "/" and the query, so "/img/*" covers
//     "/img/a/b.png?v=2" while "/img/*.png" (anchored at the end) does not.
//   - "?" matches exactly one character as a user sees it: one ASCII
//     character, or one non-ASCII code point, which the canonical target
//     holds as two to four %XX escapes of its UTF-8 bytes ("/?.png"
//     matches "/%E7%94%BB.png").
//   - "\" makes the next character literal: "\*", "\?", "\\". A query is
//     written after a literal "\?": "/search\?q=*".
//
// Literal text is canonicalised as Parse does (non-ASCII and unsafe bytes
// percent-encoded, "\" in the path is "/", existing escapes kept), so
// "/画像/*" matches "/%E7%94%BB%E5%83%8F/a.png". An escape matches in
// either hex case ("%2F" and "%2f"), the spellings being one URL (RFC 3986
// §6.2.2.1). Everything else matches case-sensitively, as edges key.
//
// Refused, with an *Error naming the problem: a pattern not starting with
// "/", a lone trailing "\", "#", control characters, a "%" not followed by
// two hex digits, a dot segment ("/./", "/../", which browsers never send),
// more than MaxPatternWildcards wildcards, or more than MaxPatternLen bytes.
// Surrounding spaces are trimmed. The result holds only printable ASCII
// without spaces or double quotes, so it is always one ban argument.
func WildcardRegex(pattern string) (string, error) {
	p, err := precheck("pattern", pattern)
	if err != nil {
		return "", err
	}
	if len(p) > MaxPatternLen {
		return "", fail("pattern", p[:64]+"...", "longer than %d bytes", MaxPatternLen)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fail("pattern", pattern, "must start with /")
	}
	var (
		re       strings.Builder
		lit      strings.Builder // pending literal text, not yet encoded
		seg      strings.Builder // literal text of the current path segment
		segWild  bool            // the current path segment has a wildcard
		inQuery  bool
		wildcard int
		lastStar bool
	)
	re.WriteByte('^')
	flush := func() error {
		if lit.Len() == 0 {
			return nil
		}
		set := &pathSet
		if inQuery {
			set = &querySet
		}
		var enc strings.Builder
		if err := appendEncoded(&enc, lit.String(), set); err != nil {
			return fail("pattern", pattern, "%v", err)
		}
		lit.Reset()
		re.WriteString(literalRegex(enc.String()))
		return nil
	}
	endSegment := func() error {
		if !inQuery && !segWild && (singleDot(seg.String()) || doubleDot(seg.String())) {
			return fail("pattern", pattern, "dot segment %q: browsers resolve it before sending, write the resolved path", seg.String())
		}
		seg.Reset()
		segWild = false
		return nil
	}
	addLiteral := func(c rune) error {
		lastStar = false
		switch {
		case c == '#':
			return fail("pattern", pattern, "# starts a fragment, which never reaches an edge")
		case !inQuery && (c == '/' || c == '\\'):
			// The first "/" opens the first segment.
			if re.Len() > 1 || lit.Len() > 0 {
				if err := endSegment(); err != nil {
					return err
				}
			}
			lit.WriteByte('/')
			return nil
		case !inQuery && c == '?':
			if err := endSegment(); err != nil {
				return err
			}
			inQuery = true
			if err := flush(); err != nil {
				return err
			}
			re.WriteString(`\?`)
			return nil
		}
		lit.WriteRune(c)
		if !inQuery {
			seg.WriteRune(c)
		}
		return nil
	}
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch c {
		case '\\':
			if i+1 == len(rs) {
				return "", fail("pattern", pattern, `ends with a lone \ (write \\ for a literal backslash)`)
			}
			i++
			if err := addLiteral(rs[i]); err != nil {
				return "", err
			}
		case '*', '?':
			wildcard++
			if wildcard > MaxPatternWildcards {
				return "", fail("pattern", pattern, "more than %d wildcards", MaxPatternWildcards)
			}
			if err := flush(); err != nil {
				return "", err
			}
			segWild = true
			if c == '?' {
				re.WriteString(reOneChar)
				lastStar = false
			} else if !lastStar {
				re.WriteString(reAnyRun)
				lastStar = true
			}
		default:
			if err := addLiteral(c); err != nil {
				return "", err
			}
		}
	}
	if err := flush(); err != nil {
		return "", err
	}
	if !inQuery {
		if err := endSegment(); err != nil {
			return "", err
		}
	}
	re.WriteByte('$')
	out := re.String()
	if err := checkBanArg(out); err != nil {
		return "", fail("pattern", pattern, "%v", err)
	}
	return out, nil
}

// literalRegex quotes canonical text; each %XX escape matches in either
// hex case.
func literalRegex(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteByte('%')
			b.WriteString(hexClass(s[i+1]))
			b.WriteString(hexClass(s[i+2]))
			i += 2
			continue
		}
		b.WriteString(regexp.QuoteMeta(s[i : i+1]))
	}
	return b.String()
}

func hexClass(c byte) string {
	if c >= '0' && c <= '9' {
		return string(c)
	}
	up, low := c&^0x20, c|0x20
	return "[" + string(up) + string(low) + "]"
}

// checkBanArg is the last guard before text becomes part of a ban: one
// token of printable ASCII, no quote that could end or start a string.
func checkBanArg(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return &Error{Part: "pattern", Input: s, Reason: "would not be one ban argument"}
		}
	}
	return nil
}
