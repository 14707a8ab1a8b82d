package service

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

// DistributionBody is one distribution in POST, or the body of PUT and
// PATCH. Pointers tell "absent" from "zero", which PATCH needs.
type DistributionBody struct {
	Domain                         *string       `json:"domain"`
	Region                         *string       `json:"region"`
	UseOriginHTTPProtocolDowngrade *bool         `json:"useOriginHttpProtocolDowngrade"`
	ForwardHostHeader              *string       `json:"forwardHostHeader"`
	UseOrigin                      *string       `json:"useOrigin"`
	ReferrerType                   *string       `json:"referrerType"`
	Description                    *string       `json:"description"`
	DomainAlias                    *string       `json:"domainAlias"`
	MaxAge                         *int64        `json:"maxAge"`
	Referrers                      *string       `json:"referrers"`
	IsAllowWhenEmptyReferrer       *bool         `json:"isAllowWhenEmptyReferrer"`
	Origins                        *[]OriginBody `json:"origins"`
	Callback                       *CallbackBody `json:"callback"`
	// CachePolicy is cdnflow's cache policy extension
	// (distribution.CachePolicy, docs/nhn.md): accepted in the NHN create
	// and PUT bodies and in /v1 PATCH.
	CachePolicy *CachePolicyBody `json:"cachePolicy"`
}

// CachePolicyBody is cachePolicy of a request. In PATCH an absent field
// keeps its value; in create and PUT it takes the default (no cookies
// forwarded, private answers never stored).
type CachePolicyBody struct {
	ForwardCookies *[]string `json:"forwardCookies"`
	CachePrivate   *bool     `json:"cachePrivate"`
}

// OriginBody is origins[] of a request.
type OriginBody struct {
	Origin     *string `json:"origin"`
	Port       *int    `json:"port"`
	HTTPPort   *int    `json:"httpPort"`
	HTTPSPort  *int    `json:"httpsPort"`
	OriginPath *string `json:"originPath"`
}

// CallbackBody is callback of a request.
type CallbackBody struct {
	HTTPMethod *string `json:"httpMethod"`
	URL        *string `json:"url"`
}

// Modes of distribution validation: the spec's required fields differ.
type bodyMode int

const (
	modeCreate bodyMode = iota
	modePut
	modePatch
)

// MaxAgeLimit is the spec's upper bound of maxAge.
const MaxAgeLimit = 2_147_483_647

// buildConfig validates b for mode and returns the resulting config; for
// PATCH, absent fields keep their value in base. Fields are checked in a
// fixed order and the first invalid one is reported.
func buildConfig(b DistributionBody, mode bodyMode, base distribution.Config) (distribution.Config, error) {
	c := base
	for _, step := range []func(DistributionBody, bodyMode, *distribution.Config) error{
		buildSwitches, buildTexts, buildTargets, buildCachePolicy,
	} {
		if err := step(b, mode, &c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// required refuses a field missing from a POST or PUT body.
func required(present bool, mode bodyMode, field string) error {
	if !present && mode != modePatch {
		return invalid("%s is required", field)
	}
	return nil
}

// buildSwitches sets region, useOriginHttpProtocolDowngrade, useOrigin and
// referrerType.
func buildSwitches(b DistributionBody, mode bodyMode, c *distribution.Config) error {
	if mode == modeCreate {
		if b.Region == nil {
			return invalid("region is required")
		}
	}
	if b.Region != nil {
		if *b.Region != "GLOBAL" {
			return invalid("region must be GLOBAL, not %q", *b.Region)
		}
		c.Region = *b.Region
	}
	if c.Region == "" {
		c.Region = "GLOBAL"
	}
	if err := required(b.UseOriginHTTPProtocolDowngrade != nil, mode, "useOriginHttpProtocolDowngrade"); err != nil {
		return err
	}
	if b.UseOriginHTTPProtocolDowngrade != nil {
		c.UseOriginHTTPProtocolDowngrade = *b.UseOriginHTTPProtocolDowngrade
	}
	if err := required(b.UseOrigin != nil, mode, "useOrigin"); err != nil {
		return err
	}
	if b.UseOrigin != nil {
		if *b.UseOrigin != "Y" && *b.UseOrigin != "N" {
			return invalid("useOrigin must be Y or N, not %q", *b.UseOrigin)
		}
		c.UseOrigin = *b.UseOrigin
	}
	if err := required(b.ReferrerType != nil, mode, "referrerType"); err != nil {
		return err
	}
	if b.ReferrerType != nil {
		if *b.ReferrerType != "BLACKLIST" && *b.ReferrerType != "WHITELIST" {
			return invalid("referrerType must be BLACKLIST or WHITELIST, not %q", *b.ReferrerType)
		}
		c.ReferrerType = *b.ReferrerType
	}
	return nil
}

// buildTexts sets description, domainAlias, maxAge and referrers.
func buildTexts(b DistributionBody, _ bodyMode, c *distribution.Config) error {
	if b.Description != nil {
		if len([]rune(*b.Description)) > 255 {
			return invalid("description is longer than 255 characters")
		}
		c.Description = *b.Description
	}
	if b.DomainAlias != nil {
		if len(*b.DomainAlias) > 255 {
			return invalid("domainAlias is longer than 255 characters")
		}
		for _, a := range strings.Split(*b.DomainAlias, "\n") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if !validHostname(strings.ToLower(a)) {
				return invalid("domainAlias %q is not a valid domain name", a)
			}
		}
		c.DomainAlias = strings.TrimSpace(*b.DomainAlias)
	}
	if b.MaxAge != nil {
		if *b.MaxAge < 0 || *b.MaxAge > MaxAgeLimit {
			return invalid("maxAge must be between 0 and 2147483647")
		}
		c.MaxAge = *b.MaxAge
	}
	if b.Referrers != nil {
		if len(*b.Referrers) > 1024 {
			return invalid("referrers is longer than 1024 characters")
		}
		for _, r := range strings.Split(*b.Referrers, "\n") {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			if err := vcl.CheckReferrerPattern(r); err != nil {
				return invalid("referrers: %v", err)
			}
		}
		c.Referrers = *b.Referrers
	}
	return nil
}

// buildTargets sets isAllowWhenEmptyReferrer, forwardHostHeader (its
// default depends on the aliases), origins and callback.
func buildTargets(b DistributionBody, mode bodyMode, c *distribution.Config) error {
	if b.IsAllowWhenEmptyReferrer != nil {
		c.IsAllowWhenEmptyReferrer = *b.IsAllowWhenEmptyReferrer
	} else if mode == modeCreate {
		c.IsAllowWhenEmptyReferrer = true
	}
	if b.ForwardHostHeader != nil {
		if *b.ForwardHostHeader != vcl.ForwardOriginHostname && *b.ForwardHostHeader != vcl.ForwardRequestHost {
			return invalid("forwardHostHeader must be ORIGIN_HOSTNAME or REQUEST_HOST_HEADER, not %q", *b.ForwardHostHeader)
		}
		c.ForwardHostHeader = *b.ForwardHostHeader
	} else if mode != modePatch || c.ForwardHostHeader == "" {
		// The spec's default depends on whether the distribution has aliases.
		c.ForwardHostHeader = vcl.ForwardOriginHostname
		if c.DomainAlias != "" {
			c.ForwardHostHeader = vcl.ForwardRequestHost
		}
	}
	if err := required(b.Origins != nil, mode, "origins"); err != nil {
		return err
	}
	if b.Origins != nil {
		origins, err := buildOrigins(*b.Origins, mode)
		if err != nil {
			return err
		}
		c.Origins = origins
	}
	if b.Callback != nil {
		cb, err := buildCallback(*b.Callback)
		if err != nil {
			return err
		}
		c.Callback = cb
	}
	return nil
}

func buildOrigins(list []OriginBody, mode bodyMode) ([]distribution.Origin, error) {
	if len(list) == 0 {
		return nil, invalid("origins must list at least one origin")
	}
	if len(list) > 10 {
		return nil, invalid("origins lists %d origins; at most 10", len(list))
	}
	var out []distribution.Origin
	for i, o := range list {
		var w distribution.Origin
		if o.Origin == nil || *o.Origin == "" {
			return nil, invalid("origins[%d].origin is required", i)
		}
		host := strings.ToLower(strings.TrimSpace(*o.Origin))
		if len(host) > 255 || (!validHostname(host) && net.ParseIP(host) == nil) {
			return nil, invalid("origins[%d].origin %q is not a domain name or IP address", i, *o.Origin)
		}
		w.Origin = host
		if o.Port != nil && (o.HTTPPort != nil || o.HTTPSPort != nil) {
			return nil, invalid("origins[%d]: set port, or httpPort/httpsPort, not both", i)
		}
		if o.Port == nil && o.HTTPPort == nil && o.HTTPSPort == nil {
			return nil, invalid("origins[%d]: one of port, httpPort or httpsPort is required", i)
		}
		for name, p := range map[string]*int{"port": o.Port, "httpPort": o.HTTPPort, "httpsPort": o.HTTPSPort} {
			if p != nil && (*p < 1 || *p > 65535) {
				return nil, invalid("origins[%d].%s must be between 1 and 65535", i, name)
			}
		}
		if o.Port != nil {
			w.Port = *o.Port
		}
		if o.HTTPPort != nil {
			w.HTTPPort = *o.HTTPPort
		}
		if o.HTTPSPort != nil {
			w.HTTPSPort = *o.HTTPSPort
		}
		if o.OriginPath == nil && mode == modePatch {
			return nil, invalid("origins[%d].originPath is required when origins is set", i)
		}
		if o.OriginPath != nil && *o.OriginPath != "" {
			p := *o.OriginPath
			if !strings.HasPrefix(p, "/") {
				return nil, invalid("origins[%d].originPath %q must start with /", i, p)
			}
			if p != "/" {
				if err := vcl.CheckOriginPath(strings.TrimSuffix(p, "/")); err != nil {
					return nil, invalid("origins[%d].originPath: %v", i, err)
				}
			}
			w.OriginPath = strings.TrimSuffix(p, "/")
		}
		out = append(out, w)
	}
	return out, nil
}

func buildCallback(b CallbackBody) (*distribution.Callback, error) {
	if b.HTTPMethod == nil || b.URL == nil {
		return nil, invalid("callback needs httpMethod and url")
	}
	m := strings.ToUpper(*b.HTTPMethod)
	if m != "GET" && m != "POST" && m != "PUT" {
		return nil, invalid("callback.httpMethod must be GET, POST or PUT, not %q", *b.HTTPMethod)
	}
	if len(*b.URL) > 1024 {
		return nil, invalid("callback.url is longer than 1024 characters")
	}
	probe := strings.NewReplacer("{appKey}", "a", "{status}", "s", "{domain}", "d").Replace(*b.URL)
	u, err := url.Parse(probe)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("callback.url %q is not an http(s) URL", *b.URL)
	}
	return &distribution.Callback{HTTPMethod: m, URL: *b.URL}, nil
}

// buildCachePolicy sets cachePolicy (distribution.CachePolicy.Check gives
// the bounds). Create and PUT replace the policy (absent: the default);
// PATCH changes the fields it names.
func buildCachePolicy(b DistributionBody, mode bodyMode, c *distribution.Config) error {
	var p distribution.CachePolicy
	if mode == modePatch && c.CachePolicy != nil {
		p = *c.CachePolicy
		p.ForwardCookies = slices.Clone(p.ForwardCookies)
	}
	if b.CachePolicy == nil && mode == modePatch {
		return nil
	}
	if cp := b.CachePolicy; cp != nil {
		if cp.ForwardCookies != nil {
			p.ForwardCookies = slices.Clone(*cp.ForwardCookies)
		}
		if cp.CachePrivate != nil {
			p.CachePrivate = *cp.CachePrivate
		}
	}
	if err := p.Check(); err != nil {
		return invalid("%v", err)
	}
	c.CachePolicy = nil
	if !p.IsZero() {
		c.CachePolicy = &p
	}
	return nil
}
