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
	t := &wildcardTranslator{pattern: pattern}
	t.re.WriteByte('^')
	if err := t.translate([]rune(p)); err != nil {
		return "", err
	}
	t.re.WriteByte('$')
	out := t.re.String()
	if err := checkBanArg(out); err != nil {
		return "", fail("pattern", pattern, "%v", err)
	}
	return out, nil
}

// wildcardTranslator is the state of one WildcardRegex translation.
type wildcardTranslator struct {
	pattern  string
	re       strings.Builder // the regular expression so far
	lit      strings.Builder // pending literal text, not yet encoded
	seg      strings.Builder // literal text of the current path segment
	segWild  bool            // the current path segment has a wildcard
	inQuery  bool
	wildcard int
	lastStar bool
}

// translate walks the pattern's characters: escapes, wildcards, literals.
func (t *wildcardTranslator) translate(rs []rune) error {
	for i := 0; i < len(rs); i++ {
		var err error
		switch c := rs[i]; c {
		case '\\':
			if i+1 == len(rs) {
				return fail("pattern", t.pattern, `ends with a lone \ (write \\ for a literal backslash)`)
			}
			i++
			err = t.addLiteral(rs[i])
		case '*', '?':
			err = t.addWildcard(c)
		default:
			err = t.addLiteral(c)
		}
		if err != nil {
			return err
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !t.inQuery {
		return t.endSegment()
	}
	return nil
}

// addWildcard writes "*" (any run; repeated stars collapse) or "?" (one
// character).
func (t *wildcardTranslator) addWildcard(c rune) error {
	t.wildcard++
	if t.wildcard > MaxPatternWildcards {
		return fail("pattern", t.pattern, "more than %d wildcards", MaxPatternWildcards)
	}
	if err := t.flush(); err != nil {
		return err
	}
	t.segWild = true
	if c == '?' {
		t.re.WriteString(reOneChar)
		t.lastStar = false
	} else if !t.lastStar {
		t.re.WriteString(reAnyRun)
		t.lastStar = true
	}
	return nil
}

// flush encodes the pending literal text (path or query rules) and writes
// it quoted.
func (t *wildcardTranslator) flush() error {
	if t.lit.Len() == 0 {
		return nil
	}
	set := &pathSet
	if t.inQuery {
		set = &querySet
	}
	var enc strings.Builder
	if err := appendEncoded(&enc, t.lit.String(), set); err != nil {
		return fail("pattern", t.pattern, "%v", err)
	}
	t.lit.Reset()
	t.re.WriteString(literalRegex(enc.String()))
	return nil
}

// endSegment refuses a literal dot segment and starts the next segment.
func (t *wildcardTranslator) endSegment() error {
	if seg := t.seg.String(); !t.inQuery && !t.segWild && (singleDot(seg) || doubleDot(seg)) {
		return fail("pattern", t.pattern, "dot segment %q: browsers resolve it before sending, write the resolved path", seg)
	}
	t.seg.Reset()
	t.segWild = false
	return nil
}

// addLiteral adds one literal character: "/" (or "\") ends a path
// segment, an escaped "?" in the path starts the query, "#" is refused.
func (t *wildcardTranslator) addLiteral(c rune) error {
	t.lastStar = false
	switch {
	case c == '#':
		return fail("pattern", t.pattern, "# starts a fragment, which never reaches an edge")
	case !t.inQuery && (c == '/' || c == '\\'):
		// The first "/" opens the first segment.
		if t.re.Len() > 1 || t.lit.Len() > 0 {
			if err := t.endSegment(); err != nil {
				return err
			}
		}
		t.lit.WriteByte('/')
		return nil
	case !t.inQuery && c == '?':
		if err := t.endSegment(); err != nil {
			return err
		}
		t.inQuery = true
		if err := t.flush(); err != nil {
			return err
		}
		t.re.WriteString(`\?`)
		return nil
	}
	t.lit.WriteRune(c)
	if !t.inQuery {
		t.seg.WriteRune(c)
	}
	return nil
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
