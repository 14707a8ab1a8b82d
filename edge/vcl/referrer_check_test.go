package vcl

import "testing"

// Patterns PCRE2 can backtrack over for long are refused; the usual
// shapes of referrer rules are accepted.
func TestCheckReferrerPatternRefusesBacktracking(t *testing.T) {
	for _, p := range []string{
		`^https?://(www\.)?example\.com/`, `example\.com`, `^https?://[a-z0-9.-]*\.example\.com(/.*)?$`,
		`(.*\.)?example\.com`, `spam`, `^https?://(www\.|m\.)?example\.(com|net)/`, `a{1,32}`, `ünï`, `(a+)?b`,
	} {
		if err := CheckReferrerPattern(p); err != nil {
			t.Errorf("%s refused: %v", p, err)
		}
	}
	for _, p := range []string{
		`^(a+)+$`, `(a|aa)*c`, `(ab)*z`, `(x+x+)+y`, `^https?://([a-z0-9-]+\.)*example\.com/`, `(a*)*`,
		`.*a.*b.*c`, `a{1,1000}`, `(a?){30}a{30}`, `((a)?b?)+`, `(\w+\s?)+$`,
	} {
		if err := CheckReferrerPattern(p); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}
