package service

// Prewarm targets as CloudFront Extensions clients send them:
// cf_domain names a distribution, the URLs may be on any of its hosts
// (domain or domainAlias), and target_type may be left out.
//
// The rules, also stated in the README's Prewarm section:
//
//   - cf_domain given and it is the domain or a domainAlias of a live
//     distribution: every URL must be on one of that distribution's hosts.
//   - cf_domain given but no distribution has it: when the edges serve
//     hosts without a distribution (a default origin is configured), every
//     URL's host must equal cf_domain; otherwise
//     it is a 400.
//   - cf_domain omitted: the first URL's host picks the distribution and
//     every other URL must be on it; a host no distribution serves is a 400
//     unless the edges serve it by default, in which case all URLs must be
//     on that one host.
//   - The job's domain (status `domain`, CdnflowDomain) is the
//     distribution's domain, or the default-served host.
//
// appKey scoping: the Prewarm API's x-api-key is an operator key, not an
// NHN appKey, and every edge serves the hosts of every appKey (a host
// belongs to one live distribution of any appKey, docs/nhn.md#host-ownership,
// and a distribution lists only the hosts it applied), so a host names one
// distribution whatever its appKey. Resolution therefore
// looks at the live distributions of all appKeys, and the job carries the
// owning appKey in CdnflowAppKey so it can be listed with that appKey's
// other jobs. A prewarm only sends the GETs a visitor could send.
//
// Lookup per host (prewarm_lookup.go), never a scan of the distributions:
// an alias is found through its host claim (workflows.HostWorkflow), a
// generated domain through visibility filtered on that domain, and the
// distribution found counts only if its published state lists the host as
// applied. A host with no claim running (never claimed, or released) and
// no distribution of that domain is served by no distribution.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/inventory"
)

// prewarmSite is a live distribution as prewarm resolution sees it.
type prewarmSite struct {
	AppKey string
	Domain string
	Status string
	// Hosts are the domain and the aliases, lower-case.
	Hosts []string
}

func (d prewarmSite) serves(host string) bool { return slices.Contains(d.Hosts, host) }

// siteSource answers, for a lower-case host, the live distributions that
// list it as applied (distribution.State.Hosts). resolvePrewarmTarget asks
// it about at most two hosts per resolution, whatever the URL count.
type siteSource interface {
	sites(host string) ([]prewarmSite, error)
}

// hostIndex is a siteSource held in memory: a lower-case host to the live
// distributions claiming it.
type hostIndex map[string][]prewarmSite

func (idx hostIndex) add(d prewarmSite) {
	for _, h := range d.Hosts {
		idx[h] = append(idx[h], d)
	}
}

func (idx hostIndex) sites(host string) ([]prewarmSite, error) { return idx[host], nil }

// claimedTwiceError is a host two healthy distributions list as applied.
type claimedTwiceError struct{ msg string }

func (e *claimedTwiceError) Error() string { return e.msg }

// lookupSite answers the distribution serving host. A host belongs to one
// live distribution (docs/nhn.md#host-ownership: one claim, one holder)
// and each lists only the hosts it applied (distribution.State.Hosts), so
// several entries come only from two appKeys that drew one generated
// domain (domainSites); the one not in ERROR is what edges serve. Two
// healthy entries are a *claimedTwiceError naming both; any other error
// is src's (Temporal's).
func lookupSite(src siteSource, host string) (prewarmSite, bool, error) {
	claims, err := src.sites(host)
	if err != nil {
		return prewarmSite{}, false, err
	}
	if len(claims) > 1 {
		var healthy []prewarmSite
		for _, c := range claims {
			if c.Status != distribution.StatusError {
				healthy = append(healthy, c)
			}
		}
		if len(healthy) > 0 {
			claims = healthy
		}
	}
	switch len(claims) {
	case 0:
		return prewarmSite{}, false, nil
	case 1:
		return claims[0], true, nil
	}
	names := make([]string, len(claims))
	for i, c := range claims {
		names[i] = c.Domain
	}
	return prewarmSite{}, false, &claimedTwiceError{fmt.Sprintf("host %s is claimed by distributions %s", host, strings.Join(names, " and "))}
}

// lookupRefusal turns a *claimedTwiceError from lookupSite into the
// request's *ValidationError prefixed by where (the field that named the
// host); Temporal's errors pass unchanged.
func lookupRefusal(err error, where string) error {
	var twice *claimedTwiceError
	if errors.As(err, &twice) {
		return invalid("%s: %v", where, err)
	}
	return err
}

// prewarmTarget is what cf_domain and the URL hosts resolved to.
type prewarmTarget struct {
	// Domain is the distribution's domain, or the host the edges serve by
	// default; it becomes the job's domain.
	Domain string
	// AppKey owns the distribution; "" for a default-served host.
	AppKey string
}

// checkPrewarm is the whole check of a Prewarm body: ValidatePrewarm (the
// shape, the targets) and then the URL hosts against cf_domain and the
// live distributions, looked up per host (prewarm_lookup.go: at most two
// hosts, each one claim query and one distribution read, cached for
// hostsTTL). The returned job's domain is the resolved one.
// Errors: *ValidationError for the caller, anything else is Temporal's.
func (s *Service) checkPrewarm(ctx context.Context, req PrewarmRequest) (validPrewarm, prewarmTarget, error) {
	v, err := ValidatePrewarm(req, s.inventory, s.config.PrewarmDefaultTimeout)
	if err != nil {
		return v, prewarmTarget{}, err
	}
	src := &prewarmLookup{ctx: ctx, s: s}
	t, err := resolvePrewarmTarget(req.CFDomain, req.URLList, src, s.config.DefaultOrigin != "")
	var ve *ValidationError
	if errors.As(err, &ve) && src.cached {
		// A refusal from a shared read may miss a distribution created
		// or changed since: only fresh reads refuse.
		src = &prewarmLookup{ctx: ctx, s: s, fresh: true}
		t, err = resolvePrewarmTarget(req.CFDomain, req.URLList, src, s.config.DefaultOrigin != "")
	}
	if err != nil {
		return v, t, err
	}
	v.domain = t.Domain
	return v, t, nil
}

// resolvePrewarmTarget applies the rules at the top of this file to
// cf_domain and url_list (already checked to be http(s) URLs with valid
// host names) given the live distributions' hosts from src. defaultServed
// says the edges serve hosts without a distribution (a default origin is
// set). src is asked about the name that picks the distribution and, only
// when a URL is not on that distribution, about that URL's host: two
// hosts at most, however many URLs and hosts the request names.
// Errors are *ValidationError naming the URL (by url_list index) and why,
// or src's own (Temporal's).
func resolvePrewarmTarget(cfDomain string, urlList []string, src siteSource, defaultServed bool) (prewarmTarget, error) {
	hosts := make([]string, len(urlList))
	for i, raw := range urlList {
		k, err := prewarmKey(strings.TrimSpace(raw))
		if err != nil {
			return prewarmTarget{}, invalid("url_list[%d] %q is not an http(s) URL: %v", i, raw, err)
		}
		hosts[i] = strings.TrimSuffix(k.Host, ".")
	}
	if len(hosts) == 0 {
		return prewarmTarget{}, invalid("url_list must list at least one URL")
	}
	cf := strings.ToLower(strings.TrimSpace(cfDomain))
	picked := "cf_domain " + cf
	name := cf
	if cf == "" {
		name = hosts[0]
		picked = fmt.Sprintf("url_list[0] %q", urlList[0])
	}
	dist, found, err := lookupSite(src, name)
	if err != nil {
		if cf != "" {
			return prewarmTarget{}, lookupRefusal(err, "cf_domain")
		}
		return prewarmTarget{}, lookupRefusal(err, fmt.Sprintf("url_list[0] %q", urlList[0]))
	}
	if !found {
		return defaultServedTarget(cf, urlList, hosts, src, defaultServed)
	}
	switch dist.Status {
	case distribution.StatusSuspend:
		return prewarmTarget{}, invalid("distribution %s (%s) is suspended: its edges answer 403; resume it before a prewarm", dist.Domain, picked)
	case distribution.StatusClosing:
		return prewarmTarget{}, invalid("distribution %s (%s) is being deleted", dist.Domain, picked)
	}
	for i, h := range hosts {
		if dist.serves(h) {
			continue
		}
		other, ok, err := lookupSite(src, h)
		switch {
		case err != nil:
			return prewarmTarget{}, lookupRefusal(err, fmt.Sprintf("url_list[%d] %q", i, urlList[i]))
		case ok:
			return prewarmTarget{}, invalid("url_list[%d] %q is on distribution %s, not on distribution %s (%s): one request warms one distribution", i, urlList[i], other.Domain, dist.Domain, picked)
		default:
			return prewarmTarget{}, invalid("url_list[%d] %q: host %s is not served by distribution %s (%s), whose hosts are %s, nor by any other distribution", i, urlList[i], h, dist.Domain, picked, strings.Join(dist.Hosts, ", "))
		}
	}
	return prewarmTarget{Domain: dist.Domain, AppKey: dist.AppKey}, nil
}

// defaultServedTarget is the rule for a name no distribution has: with a
// default origin every URL must be on that one host (cf_domain, or the
// first URL's host when cf_domain is omitted); without one it is an error.
func defaultServedTarget(cf string, urlList, hosts []string, src siteSource, defaultServed bool) (prewarmTarget, error) {
	if !defaultServed {
		if cf != "" {
			return prewarmTarget{}, invalid("cf_domain %s is neither the domain nor a domainAlias of a live distribution (and edges serve no host without one: no default origin is configured)", cf)
		}
		return prewarmTarget{}, invalid("url_list[0] %q: host %s is served by no distribution (no live distribution has it as domain or domainAlias) and cf_domain is not set", urlList[0], hosts[0])
	}
	domain, where := cf, "cf_domain "+cf
	if cf == "" {
		domain, where = hosts[0], fmt.Sprintf("%s, the host of url_list[0] (cf_domain is not set)", hosts[0])
	}
	for i, h := range hosts {
		if h == domain {
			continue
		}
		why := ""
		d, ok, err := lookupSite(src, h)
		var twice *claimedTwiceError
		if err != nil && !errors.As(err, &twice) {
			return prewarmTarget{}, err
		}
		if ok {
			why = fmt.Sprintf(" (its host is on distribution %s)", d.Domain)
		}
		return prewarmTarget{}, invalid("url_list[%d] %q is not on %s%s: URLs on hosts without a distribution must all be on that one host", i, urlList[i], where, why)
	}
	return prewarmTarget{Domain: domain}, nil
}

// inferTargetType answers target_type: the given one (lower-cased), or,
// when it is omitted, the kind every region value belongs to — "all" or
// region codes: region; inventory PoP ids: pop; country names: country.
// A mix of kinds, a value of no kind, or a value of several kinds is a
// *ValidationError naming the field and listing the valid values.
func inferTargetType(given string, values []string, inv *inventory.Inventory) (string, error) {
	if given = strings.ToLower(strings.TrimSpace(given)); given != "" {
		return given, nil
	}
	if len(values) == 0 {
		return "", invalid("region must name at least one region, PoP or country")
	}
	if len(values) == 1 && strings.EqualFold(strings.TrimSpace(values[0]), "all") {
		return inventory.TargetRegion, nil
	}
	pops := inv.IDs()
	kindsOf := func(v string) []string {
		var kinds []string
		norm := strings.ToLower(strings.TrimSpace(v))
		if slices.Contains(inventory.Regions, norm) {
			kinds = append(kinds, inventory.TargetRegion)
		}
		if _, ok := inv.Get(v); ok {
			// A draining PoP is a PoP too: Select then says it drains.
			kinds = append(kinds, inventory.TargetPoP)
		}
		if slices.Contains(inventory.Countries, norm) {
			kinds = append(kinds, inventory.TargetCountry)
		}
		return kinds
	}
	valid := func() string {
		return fmt.Sprintf(`"all" or region codes (%s), PoP ids (%s) or country names (%s)`,
			strings.Join(inventory.Regions, ", "), strings.Join(pops, ", "), strings.Join(inventory.Countries, ", "))
	}
	// Candidate kinds: those every value belongs to.
	cands := []string{inventory.TargetRegion, inventory.TargetPoP, inventory.TargetCountry}
	firstOf := map[string]string{}
	for _, v := range values {
		kinds := kindsOf(v)
		if len(kinds) == 0 {
			return "", invalid("region %q is no region code, PoP id or country name (target_type is not set, so it is inferred from region; valid: %s)", v, valid())
		}
		for _, k := range kinds {
			if _, ok := firstOf[k]; !ok {
				firstOf[k] = v
			}
		}
		cands = slices.DeleteFunc(cands, func(k string) bool { return !slices.Contains(kinds, k) })
	}
	switch len(cands) {
	case 1:
		return cands[0], nil
	case 0:
		var seen []string
		for _, k := range []string{inventory.TargetRegion, inventory.TargetPoP, inventory.TargetCountry} {
			if v, ok := firstOf[k]; ok {
				seen = append(seen, fmt.Sprintf("%s %q", k, v))
			}
		}
		return "", invalid("region mixes kinds of target (%s): list one kind, or set target_type (pop, region or country); valid: %s", strings.Join(seen, ", "), valid())
	}
	return "", invalid("region %s fits target_type %s alike: set target_type", strings.Join(quoteList(values), ", "), strings.Join(cands, " and "))
}

func quoteList(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
