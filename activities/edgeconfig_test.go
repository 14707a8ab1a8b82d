package activities

import (
	"testing"

	"github.com/cdnflow/cdnflow/distribution"
)

// Only a referrer rule that refuses something reaches the edge's VCL: an
// NHN distribution always names a referrerType, and a BLACKLIST of
// nothing that admits an empty Referer must not cost a VCL compile.
func TestEntryOfDropsNoOpReferrer(t *testing.T) {
	spec := func(typ, referrers string, allowEmpty bool) distribution.SiteSpec {
		return distribution.SiteSpec{Domain: "a.cdn.example", Version: 1, Created: 1, Config: distribution.Config{
			UseOrigin: "Y", ReferrerType: typ, Referrers: referrers, IsAllowWhenEmptyReferrer: allowEmpty,
			Origins: []distribution.Origin{{Origin: "origin.example", Port: 80}},
		}}
	}
	for _, c := range []struct {
		name     string
		spec     distribution.SiteSpec
		wantRule bool
	}{
		{"blacklist of nothing, empty admitted", spec("BLACKLIST", "", true), false},
		{"blacklist of nothing, empty refused", spec("BLACKLIST", "", false), true},
		{"blacklist with a pattern", spec("BLACKLIST", `evil\.example`, true), true},
		{"whitelist of nothing", spec("WHITELIST", "", true), true},
		{"whitelist with a pattern", spec("WHITELIST", `good\.example`, true), true},
	} {
		e, err := EntryOf(c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := e.Referrer != nil; got != c.wantRule {
			t.Errorf("%s: referrer rule kept = %v, want %v (%+v)", c.name, got, c.wantRule, e.Referrer)
		}
	}
}
