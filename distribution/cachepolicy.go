package distribution

import (
	"fmt"
	"slices"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// CachePolicy is a distribution's cache policy: a cdnflow extension of the
// NHN v1.5 distribution (field cachePolicy of the create, PUT and /v1
// PATCH bodies; docs/nhn.md). nil (the default) is the zero policy.
//
// By default cookies are neither part of the cache key nor sent to the
// origin for GET and HEAD (as CloudFront's default cache policy): the edge
// drops the Cookie header before the lookup, so a browser holding an
// analytics cookie gets the object a prewarm (which sends none) warmed.
// ForwardCookies names the cookies (1 to connector.MaxForwardCookies,
// each an RFC 6265 cookie-name of at most connector.MaxCookieNameLen
// bytes) the origin needs: those, and only those, are kept on the request
// and become part of the cache key (one object per combination of their
// values).
//
// Answers with Cache-Control private, no-store or no-cache are never
// stored or shared, whatever maxAge and useOrigin say, unless
// CachePrivate is true: DANGEROUS, it lets one visitor's private answer
// be served to the next (the shape of Steam's 2015 leak of account pages
// through a CDN). Answers that set a cookie (Set-Cookie) are never
// shared, CachePrivate or not.
type CachePolicy struct {
	ForwardCookies []string `json:"forwardCookies,omitempty"`
	CachePrivate   bool     `json:"cachePrivate,omitempty"`
}

// Check validates p: at most connector.MaxForwardCookies distinct cookie
// names, each a token of 1 to connector.MaxCookieNameLen bytes. The error
// names the bad value.
func (p CachePolicy) Check() error {
	if len(p.ForwardCookies) > connector.MaxForwardCookies {
		return fmt.Errorf("cachePolicy.forwardCookies lists %d cookies; at most %d", len(p.ForwardCookies), connector.MaxForwardCookies)
	}
	for i, n := range p.ForwardCookies {
		if err := (connector.CachePolicy{Cookies: []string{n}}).Check(); err != nil {
			return fmt.Errorf("cachePolicy.forwardCookies[%d]: %w (RFC 6265 cookie-name: letters, digits, !#$%%&'*+.^_`|~-)", i, err)
		}
		if slices.Contains(p.ForwardCookies[:i], n) {
			return fmt.Errorf("cachePolicy.forwardCookies[%d] %q is listed twice", i, n)
		}
	}
	return nil
}

// IsZero reports whether p is the default policy.
func (p CachePolicy) IsZero() bool { return len(p.ForwardCookies) == 0 && !p.CachePrivate }

// Site is p as the edge's site table entry holds it (connector.Site.Cache):
// nil for the default policy, so entries of distributions without a policy
// are unchanged. Cookie names are sorted: equal policies, equal entries.
func (p *CachePolicy) Site() *connector.CachePolicy {
	if p == nil || p.IsZero() {
		return nil
	}
	cookies := slices.Clone(p.ForwardCookies)
	slices.Sort(cookies)
	return &connector.CachePolicy{Cookies: cookies, CachePrivate: p.CachePrivate}
}
