package activities

import (
	"net/url"
	"strings"

	"github.com/cdnflow/cdnflow/inventory"
)

// pairHostScheme says how one prewarm pair reaches edge e:
//
//   - Host (and the TLS server name) is the URL's own host, lower-case and
//     without port: what visitors request, so the warmed cache object is
//     theirs (the edge's cache key is host + path). A URL without a host
//     falls back to the job's domain.
//   - The scheme is the job's when the request gave `protocol`; when it did
//     not (Scheme ""), the URL's own. An https URL on an edge without an
//     HTTPS listener in the inventory goes over plain HTTP: TLS ends in
//     front of Varnish, whose cache key has no scheme, so HTTPS visitors get
//     the object warmed that way. An explicit protocol https is refused up
//     front for such edges instead.
func pairHostScheme(spec warmSpec, e inventory.Edge, u *url.URL) (host, scheme string) {
	host = strings.ToLower(u.Hostname())
	if host == "" {
		host = spec.Domain
	}
	scheme = spec.Scheme
	if scheme == "" {
		scheme = strings.ToLower(u.Scheme)
		if scheme != "https" || e.HTTPSAddress == "" {
			scheme = "http"
		}
	}
	return host, scheme
}
