package cachekey_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/internal/cachekey"
)

func TestWildcardRegexMatches(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string // canonical request targets
		miss    []string
	}{
		{"/画像/*", []string{"/%E7%94%BB%E5%83%8F/a.png", "/%e7%94%bb%e5%83%8f/a.png", "/%E7%94%BB%E5%83%8F/", "/%E7%94%BB%E5%83%8F/x/y.png?v=1"},
			[]string{"/%E7%94%BB%E5%83%8F", "/%E7%94%BB%E5%83%8Fx/a.png", "/images/a.png"}},
		{"/images/games/*.jpg", []string{"/images/games/a.jpg", "/images/games/x/y.jpg", "/images/games/.jpg"},
			[]string{"/images/games/a.jpeg", "/images/games/a.jpg?v=1", "/images/game/a.jpg", "/x/images/games/a.jpg"}},
		{"/*/sports/*.jpg", []string{"/x/sports/y.jpg", "/images/sports/acme/a.jpg", "/a/b/sports/c.jpg"},
			[]string{"/sports/y.jpg", "/x/sport/y.jpg", "/x/sports/y.png"}},
		{"/images/sports/ac?e/*", []string{"/images/sports/acme/a.jpg", "/images/sports/acne/a.jpg", "/images/sports/ac%20e/a", "/images/sports/ac%E7%94%BBe/a"},
			[]string{"/images/sports/ace/a.jpg", "/images/sports/acmme/a.jpg", "/images/sports/ac%E7e/a"}},
		{"/?.png", []string{"/a.png", "/%E7%94%BB.png", "/%F0%9F%98%80.png", "/%D0%9D.png", "/%25.png"},
			[]string{"/ab.png", "/%E7%94%BB%E5%83%8F.png", "/.png"}},
		{"/a\\*b", []string{"/a*b"}, []string{"/axb", "/a%2Ab"}},
		{"/a\\?b", []string{"/a?b"}, []string{"/axb"}},
		{"/search\\?q=日本*", []string{"/search?q=%E6%97%A5%E6%9C%AC", "/search?q=%E6%97%A5%E6%9C%AC&page=2"},
			[]string{"/search?q=%E6%97%A5", "/searchq=%E6%97%A5%E6%9C%AC"}},
		{"/v1.2/*", []string{"/v1.2/app.js"}, []string{"/v1x2/app.js"}},
		{"/a b/*", []string{"/a%20b/c"}, []string{"/a b/c", "/a+b/c"}},
		{"/a%2Fb/*", []string{"/a%2Fb/c", "/a%2fb/c"}, []string{"/a/b/c"}},
		{"/a+b/c(1)[2]{3}$^|.x", []string{"/a+b/c(1)[2]%7B3%7D$%5E%7C.x"}, []string{"/aab/c(1)[2]%7B3%7D$%5E%7C.x"}},
		{"/a\\\\b", []string{"/a/b"}, []string{"/a%5Cb", `/a\b`}},
		{"/**", []string{"/", "/x/y?z"}, nil},
		{"/*", []string{"/", "/anything"}, []string{""}},
	}
	for _, c := range cases {
		re, err := cachekey.WildcardRegex(c.pattern)
		if err != nil {
			t.Errorf("WildcardRegex(%q): %v", c.pattern, err)
			continue
		}
		rx := regexp.MustCompile(re)
		for _, m := range c.match {
			if !rx.MatchString(m) {
				t.Errorf("%q (%s) does not match %q", c.pattern, re, m)
			}
		}
		for _, m := range c.miss {
			if rx.MatchString(m) {
				t.Errorf("%q (%s) matches %q", c.pattern, re, m)
			}
		}
	}
}

// TestWildcardMatchesCanonicalKeys ties the two halves together: a pattern
// typed as the user sees the URL matches the key Parse gives that URL.
func TestWildcardMatchesCanonicalKeys(t *testing.T) {
	for pattern, url := range map[string]string{
		"/画像/*":             "http://example.com/画像/a.png",
		"/이미지/*.jpg":        "http://example.com/이미지/사진.jpg",
		"/Новости/????.css": "http://example.com/Новости/файл.css",
		"/صور/*\\?lang=*":   "http://example.com/صور/ملف.png?lang=عربي",
		"/q\\?name=??":      "http://example.com/q?name=日本",
		"/*/a b.txt":        "http://example.com/x/a b.txt",
	} {
		k, err := cachekey.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		re, err := cachekey.WildcardRegex(pattern)
		if err != nil {
			t.Fatalf("%q: %v", pattern, err)
		}
		if !regexp.MustCompile(re).MatchString(k.PathQuery) {
			t.Errorf("%q (%s) does not match %q (key of %q)", pattern, re, k.PathQuery, url)
		}
	}
}

func TestWildcardRegexRefuses(t *testing.T) {
	for pattern, reason := range map[string]string{
		"":                              "must start with /",
		"images/*":                      "must start with /",
		"*.jpg":                         "must start with /",
		"/a\\":                          `lone \`,
		"/a#b":                          "fragment",
		"/a\nb":                         "control character",
		"/a\x00":                        "control character",
		"/a%zz/*":                       "bad escape",
		"/a%?1":                         "bad escape",
		"/a/../b/*":                     "dot segment",
		"/a/./*":                        "dot segment",
		"/a/%2E%2e/*":                   "dot segment",
		"/a/..":                         "dot segment",
		"/" + strings.Repeat("*a", 17):  "wildcards",
		"/" + strings.Repeat("a", 2048): "longer than",
	} {
		_, err := cachekey.WildcardRegex(pattern)
		var ce *cachekey.Error
		if !errors.As(err, &ce) || !errors.Is(err, cachekey.ErrInvalid) || ce.Part != "pattern" || !strings.Contains(err.Error(), reason) {
			t.Errorf("WildcardRegex(%q) = %v; want a pattern error about %q", pattern, err, reason)
		}
	}
	// Segments that only look like dot segments are fine.
	for _, ok := range []string{"/a/..b/*", "/a/.*", "/a/*./b", "/q\\?x=../*"} {
		if _, err := cachekey.WildcardRegex(ok); err != nil {
			t.Errorf("WildcardRegex(%q): %v", ok, err)
		}
	}
}

// TestWildcardHostileInput: whatever is typed, the result is one ban
// argument (no space, quote or control character) and a literal is never
// regex syntax.
func TestWildcardHostileInput(t *testing.T) {
	for _, p := range []string{
		`/a" && obj.status != 0 && "`,
		`/x && obj.http.x-cdn-host ~ .`,
		`/x || req.url ~ .*`,
		`/a'b'c`,
		`/(.*)+[a-z]{2,}$|^/`,
		`/a\.b`,
		`/\\"`,
		`/{"}`,
		"/a\u00a0b\u2028c",
		`/%22%20&&%20`,
	} {
		re, err := cachekey.WildcardRegex(p)
		if err != nil {
			t.Errorf("WildcardRegex(%q): %v", p, err)
			continue
		}
		if strings.ContainsAny(re, " \t\r\n\"") {
			t.Errorf("WildcardRegex(%q) = %q holds a space or quote", p, re)
		}
		rx := regexp.MustCompile(re)
		key, err := cachekey.PathQuery(strings.ReplaceAll(p, `\`, ""))
		if err == nil && !strings.ContainsAny(p, `\`) && !rx.MatchString(key) {
			t.Errorf("%q (%s) does not match its own literal key %q", p, re, key)
		}
		if rx.MatchString("/") || rx.MatchString("/anything") {
			t.Errorf("%q (%s) matches unrelated targets", p, re)
		}
	}
}
