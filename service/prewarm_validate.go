package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// validPrewarm is a checked request ready to become a job.
type validPrewarm struct {
	urls    []string
	domain  string
	scheme  string
	edges   []inventory.Edge
	timeout time.Duration
	header  map[string]string
}

// ValidatePrewarm checks a request against the spec and the inventory: the
// shape of every field, URLs with valid hosts, and the targets (target_type
// inferred from region when omitted). Which distribution the URL hosts are
// on is checked by (*Service).checkPrewarm, which also sets the domain; an
// empty scheme means each URL's own.
func ValidatePrewarm(req PrewarmRequest, inv *inventory.Inventory, defaultTimeout time.Duration) (validPrewarm, error) {
	var v validPrewarm
	if len(req.URLList) == 0 {
		return v, invalid("url_list must list at least one URL")
	}
	if len(req.URLList) > MaxPrewarmURLs {
		return v, invalid("url_list has %d URLs; at most %d per request", len(req.URLList), MaxPrewarmURLs)
	}
	v.domain = strings.ToLower(strings.TrimSpace(req.CFDomain))
	if v.domain != "" && !validHostname(v.domain) {
		return v, invalid("cf_domain %q is not a valid domain name", req.CFDomain)
	}
	switch p := strings.ToLower(req.Protocol); p {
	case "":
		v.scheme = "" // each URL's own scheme
	case "http":
		v.scheme = "http"
	case "https":
		v.scheme = "https"
	default:
		return v, invalid("protocol must be http or https, not %q", req.Protocol)
	}
	// Dedup by the canonical cache key (internal/cachekey): two spellings
	// of one browser request are one object on the edge. The list keeps
	// each URL as given (first spelling wins); the activity and the status
	// rows derive the key from it.
	var err error
	if v.urls, err = dedupURLs(req.URLList); err != nil {
		return v, err
	}
	regions, err := parseRegion(req.Region)
	if err != nil {
		return v, err
	}
	targetType, err := inferTargetType(req.TargetType, regions, inv)
	if err != nil {
		return v, err
	}
	v.edges, err = inv.Select(targetType, regions)
	if err != nil {
		return v, invalid("%s", err.Error())
	}
	if len(v.edges) > workflows.MaxPrewarmEdges {
		return v, invalid("the target selects %d edges; at most %d per request", len(v.edges), workflows.MaxPrewarmEdges)
	}
	if pairs := len(v.urls) * len(v.edges); pairs > MaxPrewarmPairs {
		return v, invalid("url_list has %d URLs on %d edges: %d fetches, at most %d per request (URLs × edges); split the list or target fewer edges",
			len(v.urls), len(v.edges), pairs, MaxPrewarmPairs)
	}
	if v.scheme == "https" {
		for _, e := range v.edges {
			if e.HTTPSAddress == "" {
				return v, invalid("protocol https: edge %s has no HTTPS listener in the inventory", e.ID)
			}
		}
	}
	v.timeout = defaultTimeout
	if len(req.Timeout) > 0 && string(req.Timeout) != "null" {
		if v.timeout, err = parseTimeout(req.Timeout); err != nil {
			return v, err
		}
	}
	if v.header, err = parseHeader(req.Header); err != nil {
		return v, err
	}
	return v, nil
}

// dedupURLs checks every url_list entry and keeps the first spelling of
// each canonical cache key, in order.
func dedupURLs(list []string) ([]string, error) {
	var urls []string
	seen := make(map[string]bool, len(list))
	for i, raw := range list {
		if len(raw) > MaxPrewarmURLLen {
			return nil, invalid("url_list[%d] is %d bytes long; at most %d", i, len(raw), MaxPrewarmURLLen)
		}
		given := strings.TrimSpace(raw)
		k, err := prewarmKey(given)
		if err != nil {
			return nil, invalid("url_list[%d] %q is not an http(s) URL: %v", i, raw, err)
		}
		// Hosts are matched to cf_domain and the distributions by checkPrewarm.
		if !validHostname(strings.TrimSuffix(k.Host, ".")) {
			return nil, invalid("url_list[%d] %q has no valid host name (a DNS name; IP addresses are not served)", i, raw)
		}
		if !seen[k.String()] {
			seen[k.String()] = true
			urls = append(urls, given)
		}
	}
	return urls, nil
}

func parseRegion(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid(`region is required: a list, or "all" for target_type region or country`)
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid(`region must be a list of strings or "all"`)
	}
	return list, nil
}

func parseTimeout(raw json.RawMessage) (time.Duration, error) {
	var secs float64
	var d time.Duration
	if err := json.Unmarshal(raw, &secs); err == nil {
		d = time.Duration(secs * float64(time.Second))
	} else {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, invalid(`timeout must be seconds (a number) or a duration such as "15m"`)
		}
		if d, err = time.ParseDuration(s); err != nil {
			n, convErr := strconv.ParseFloat(s, 64)
			if convErr != nil {
				return 0, invalid(`timeout %q is not a duration such as "15m"`, s)
			}
			d = time.Duration(n * float64(time.Second))
		}
	}
	if d < time.Second || d > MaxPrewarmTimeout {
		return 0, invalid("timeout must be between 1s and %s", MaxPrewarmTimeout)
	}
	return d, nil
}

// parseHeader accepts {"Name": "value"} or ["Name: value", ...].
func parseHeader(raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, invalid(`header must be an object {"Name": "value"} or a list ["Name: value"]`)
		}
		m = map[string]string{}
		for _, h := range list {
			k, val, ok := strings.Cut(h, ":")
			if !ok {
				return nil, invalid("header %q is not Name: value", h)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	if len(m) > 32 {
		return nil, invalid("header has %d entries; at most 32", len(m))
	}
	for k, val := range m {
		if !validHeaderName(k) || strings.ContainsAny(val, "\r\n\x00") || len(val) > 4096 {
			return nil, invalid("header %q is not a valid HTTP header", k)
		}
		if reservedHeader(k) {
			return nil, invalid("header %s cannot be set by a prewarm: it is HTTP's own (Host, hop-by-hop, framing) or cdnflow's edge protocol (X-Cdnflow-*, X-Purge-*, X-Ban-*, X-Forwarded-Host)", k)
		}
		out[http.CanonicalHeaderKey(k)] = val
	}
	return out, nil
}

// reservedHeaders are the header names a prewarm's `header` may not set:
// Host and the message framing (RFC 9112 §6), the hop-by-hop fields
// (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection), and
// the names of cdnflow's edge protocol that are not X-Cdnflow-* (edge/vcl:
// PURGE/BAN control headers, and X-Forwarded-Host that bans and surrogate
// keys are scoped by). Every X-Cdnflow-* name is refused by prefix
// (edge/connector, edge/probe.go, edge/vcl/render.go).
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true, "keep-alive": true,
	"proxy-connection": true, "te": true, "trailer": true, "upgrade": true, "proxy-authorization": true,
	"proxy-authenticate": true, "expect": true,
	"x-purge-tag": true, "x-purge-soft": true, "x-ban-url-regex": true, "x-forwarded-host": true, "xkey": true,
	"surrogate-key": true,
}

func reservedHeader(k string) bool {
	l := strings.ToLower(k)
	return reservedHeaders[l] || strings.HasPrefix(l, "x-cdnflow-") || strings.HasPrefix(l, "x-purge-") || strings.HasPrefix(l, "x-ban-")
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// prewarmKey is the canonical cache key of one url_list entry
// (cachekey.Parse: the URL as a browser sends it; see docs/prewarm.md).
func prewarmKey(raw string) (cachekey.Key, error) {
	k, err := cachekey.Parse(raw)
	if err != nil {
		return k, fmt.Errorf("canonical cache key: %w", err)
	}
	return k, nil
}
