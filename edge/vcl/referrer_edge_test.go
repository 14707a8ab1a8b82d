package vcl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/vcl"
)

// Every referrer pattern the API admits (vcl.CheckReferrerPattern), the
// worst shapes it allows among them, is matched by a real edge against
// Referers built to make PCRE2 backtrack, up to and beyond
// vcl.MaxReferrerLen: no answer is a 503; a whitelist refuses a Referer
// beyond the length (403), a blacklist admits it.
func TestReferrerRulesNeverAnswer503(t *testing.T) {
	patterns := []string{
		`.*a.*b$`, `a.*b`, `^x[^/]*y[^/]*z`, `(.*\.)?example\.com.*foo`, `[a-z]*[a-z]*!`,
		`^https?://[a-z0-9.-]*\.example\.com(/.*)?$`, `(.*a)?(.*b)?c`, `a{32}b{32}`, `(a|aa|b)?x*y`, `^(www\.)?example\.com`,
		`\w+\d+$`, `[^a]*a[^b]*b`, `a[a-z]*[a-z]*!`, `a.*a.*!`, `x\w*\w*y`, `(a|b)[ab]*[ab]+c`, `[ab]*[ab]*$`,
	}
	o := newCacheOrigin(t)
	b := o.backend(t)
	var sites []vcl.Site
	for i, p := range patterns {
		if err := vcl.CheckReferrerPattern(p); err != nil {
			t.Fatalf("the API must admit %s for this test: %v", p, err)
		}
		sites = append(sites,
			vcl.Site{Name: fmt.Sprintf("w%d", i), Hosts: []string{fmt.Sprintf("w%d.example.com", i)}, Origins: []vcl.Backend{b},
				ReferrerType: vcl.ReferrerWhitelist, Referrers: []string{p}},
			vcl.Site{Name: fmt.Sprintf("b%d", i), Hosts: []string{fmt.Sprintf("b%d.example.com", i)}, Origins: []vcl.Backend{b},
				ReferrerType: vcl.ReferrerBlacklist, Referrers: []string{p}})
	}
	addr := startCacheEdge(t, sites...)
	n := vcl.MaxReferrerLen
	var referers []string
	for _, unit := range []string{"!a", "xy!", "a", "ab", "ba", "xy", "a.", ".example.com", "aaaaaaaaaab", "1 ", "\xff\xfe"} {
		body := strings.Repeat(unit, n/len(unit)+1)
		referers = append(referers, body[:n-1]+"!", "b"+body[:n-1], "https://"+body[:n-8])
	}
	referers = append(referers, strings.Repeat("a", 15000), "https://www.example.com/page")
	for i, p := range patterns {
		for _, ref := range referers {
			for _, host := range []string{fmt.Sprintf("w%d.example.com", i), fmt.Sprintf("b%d.example.com", i)} {
				a := get(t, addr, "GET", host, fmt.Sprintf("/r%d", len(ref)), "Referer: "+ref)
				if a.status != 200 && a.status != 403 {
					t.Errorf("%s (%s), Referer %.40q… (%d bytes): %d %q", host, p, ref, len(ref), a.status, a.body)
				}
				if len(ref) > n && a.status != map[bool]int{true: 403, false: 200}[host[0] == 'w'] {
					t.Errorf("%s, Referer of %d bytes: %d, want a whitelist to refuse and a blacklist to admit", host, len(ref), a.status)
				}
			}
		}
	}
	if a := get(t, addr, "GET", "w9.example.com", "/ok", "Referer: www.example.com/x"); a.status != 200 {
		t.Errorf("a matching Referer on a whitelist: %+v", a)
	}
}
