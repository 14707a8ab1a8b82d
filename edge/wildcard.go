package edge

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/inventory"
)

// Object fields the edge VCL (edge/vcl, vcl_backend_response) stores on
// every cached object, so bans test the object alone and the ban lurker
// can evict in the background ("lurker-friendly"): the client's normalised
// Host and the request target it asked for (req.url).
const (
	BanHostField = "obj.http.x-cdn-host"
	BanURLField  = "obj.http.x-cdn-url"
)

// edgeHost is the host form the edge VCL stores: lower case, no port, no
// trailing dot; names of [a-z0-9_.-] or a bracketed IPv6 address.
var edgeHost = regexp.MustCompile(`^([a-z0-9_.-]+|\[[0-9a-f:.]+\])$`)

// BanHostsRegex is the anchored regex "^(?:a\.example|b\.example)$" matching
// exactly the given hosts (a distribution's domain and its aliases) as the
// edge stores them: each is canonicalised (cachekey.Host: lower case, IDN
// as punycode) without its trailing dot, then regex-quoted; duplicates are
// dropped and the order is sorted. Errors name the host that is refused.
func BanHostsRegex(hosts []string) (string, error) {
	if len(hosts) == 0 {
		return "", fmt.Errorf("%w: a ban needs at least one host", ErrInvalidRequest)
	}
	seen := map[string]bool{}
	var quoted []string
	for _, h := range hosts {
		c, err := cachekey.Host(h)
		if err != nil {
			return "", fmt.Errorf("%w: ban host: %w", ErrInvalidRequest, err)
		}
		c = strings.TrimSuffix(c, ".")
		if !edgeHost.MatchString(c) {
			return "", fmt.Errorf("%w: ban host %q is not a host name edges serve", ErrInvalidRequest, h)
		}
		if !seen[c] {
			seen[c] = true
			quoted = append(quoted, regexp.QuoteMeta(c))
		}
	}
	sort.Strings(quoted)
	return "^(?:" + strings.Join(quoted, "|") + ")$", nil
}

// WildcardBanExpression is the Varnish ban expression that invalidates, on
// the hosts (domain and aliases), every object whose request target matches
// the NHN WILDCARD pattern (grammar: cachekey.WildcardRegex):
//
//	obj.http.x-cdn-host ~ ^(?:a\.example|b\.example)$ && obj.http.x-cdn-url ~ ^/images/(?:...)*$
//
// Both arguments are single tokens of printable ASCII without spaces or
// quotes, so nothing in the pattern can end an argument or add a clause.
// Send it through the CLI (varnishadm.Conn.Ban); it is also the text
// ban.list shows for the ban. Errors wrap ErrInvalidRequest and the
// cachekey.Error that names the problem.
func WildcardBanExpression(hosts []string, pattern string) (string, error) {
	hostRe, err := BanHostsRegex(hosts)
	if err != nil {
		return "", err
	}
	urlRe, err := cachekey.WildcardRegex(pattern)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return BanHostField + " ~ " + hostRe + " && " + BanURLField + " ~ " + urlRe, nil
}

// BanURLRegex invalidates every object of host whose request target
// matches urlRegex, an anchored regex over canonical targets such as
// cachekey.WildcardRegex returns, through the edge's HTTP BAN (the
// X-Ban-Url-Regex form BanPrefix uses; the edge refuses a regex with white
// space or double quotes with 400). One request per host: the HTTP form is
// host-scoped by the edge itself.
func (c *Client) BanURLRegex(ctx context.Context, e inventory.Edge, host, urlRegex string) error {
	if !strings.HasPrefix(urlRegex, "^") || urlRegex == "^" {
		return fmt.Errorf("%w: ban url regex %q must be anchored with ^", ErrInvalidRequest, urlRegex)
	}
	for _, r := range urlRegex {
		if r <= ' ' || r == '"' || r >= 0x7f {
			return fmt.Errorf("%w: ban url regex %q contains %q; it must be one token of printable ASCII", ErrInvalidRequest, urlRegex, r)
		}
	}
	_, err := c.expectOK(ctx, e, "BAN", host, "/", http.Header{"X-Ban-Url-Regex": {urlRegex}}, c.opts.BanTimeout)
	return err
}
