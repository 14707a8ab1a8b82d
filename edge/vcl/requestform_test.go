package vcl_test

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/vcl"
)

// One way in: whatever form a request takes, the site's rules see the
// host it is served as. An http/https absolute-form target's authority
// replaces Host (RFC 9112 §3.2.2); other schemes and forms are refused
// 400; methods other than GET and HEAD are refused 405 (control requests
// still need the ACL and the token: 403); every spelling of a host
// (case, port, trailing dot) gets that host's referrer rule.
func TestRequestFormsObeyTheSiteOrAreRefused(t *testing.T) {
	o := newCacheOrigin(t)
	b := o.backend(t)
	addr := startCacheEdge(t,
		vcl.Site{Name: "guarded", Hosts: []string{"guarded.example.com"}, Origins: []vcl.Backend{b}, ForwardHostHeader: vcl.ForwardRequestHost,
			ReferrerType: vcl.ReferrerWhitelist, Referrers: []string{`^https://good\.example/`}},
		vcl.Site{Name: "open", Hosts: []string{"open.example.com"}, Origins: []vcl.Backend{b}, ForwardHostHeader: vcl.ForwardRequestHost},
	)
	req := func(line, host string, extra ...string) string {
		s := line + "\r\n"
		if host != "" {
			s += "Host: " + host + "\r\n"
		}
		for _, e := range extra {
			s += e + "\r\n"
		}
		return s + "Connection: close\r\n\r\n"
	}
	for _, tc := range []struct {
		name, req string
		status    int
		served    string // the host the origin saw, for 200
	}{
		{"absolute-form names the other site", req("GET http://open.example.com/x HTTP/1.1", "guarded.example.com"), 200, "open.example.com"},
		{"absolute-form names the guarded site", req("GET http://guarded.example.com/x HTTP/1.1", "open.example.com"), 403, ""},
		{"https absolute-form, mismatched Host", req("GET https://open.example.com/y HTTP/1.1", "guarded.example.com"), 200, "open.example.com"},
		{"https absolute-form to the guarded site", req("GET HTTPS://Guarded.Example.COM.:443/y HTTP/1.1", "open.example.com"), 403, ""},
		{"absolute-form with a good Referer", req("GET http://guarded.example.com/z HTTP/1.1", "open.example.com", "Referer: https://good.example/p"), 200, "guarded.example.com"},
		{"absolute-form without a path", req("GET http://open.example.com HTTP/1.1", "guarded.example.com"), 200, "open.example.com"},
		{"ftp scheme", req("GET ftp://open.example.com/x HTTP/1.1", "open.example.com"), 400, ""},
		{"ftp scheme to the guarded host", req("GET ftp://guarded.example.com/x HTTP/1.1", "guarded.example.com", "Referer: https://good.example/"), 400, ""},
		{"userinfo in the authority", req("GET http://user@open.example.com/x HTTP/1.1", "open.example.com"), 400, ""},
		{"authority-form", req("GET open.example.com:80 HTTP/1.1", "open.example.com"), 400, ""},
		{"no Host", req("GET /x HTTP/1.0", ""), 400, ""},
		{"Host with case, port, trailing dot", req("GET /h HTTP/1.1", "GUARDED.Example.com.:8080"), 403, ""},
		{"Host spelled otherwise, good Referer", req("GET /h HTTP/1.1", "Guarded.Example.Com.", "Referer: https://good.example/"), 200, "guarded.example.com"},
		{"POST", req("POST /x HTTP/1.1", "open.example.com", "Content-Length: 0"), 405, ""},
		{"PUT", req("PUT /x HTTP/1.1", "open.example.com", "Content-Length: 0"), 405, ""},
		{"DELETE", req("DELETE /x HTTP/1.1", "open.example.com"), 405, ""},
		{"PATCH", req("PATCH /x HTTP/1.1", "open.example.com", "Content-Length: 0"), 405, ""},
		{"OPTIONS", req("OPTIONS /x HTTP/1.1", "open.example.com"), 405, ""},
		{"OPTIONS *", req("OPTIONS * HTTP/1.1", "open.example.com"), 405, ""},
		{"TRACE", req("TRACE /x HTTP/1.1", "open.example.com"), 405, ""},
		{"made-up method", req("BREW /x HTTP/1.1", "open.example.com"), 405, ""},
		{"made-up method, absolute-form", req("FETCHALL http://open.example.com/x HTTP/1.1", "open.example.com"), 405, ""},
		{"PURGE without the token", req("PURGE /x HTTP/1.1", "open.example.com"), 403, ""},
		{"BAN without the token", req("BAN /x HTTP/1.1", "open.example.com"), 403, ""},
		{"HEAD", req("HEAD /x HTTP/1.1", "open.example.com"), 200, ""},
	} {
		a := raw(t, addr, tc.req)
		if a.status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, a.status, a.body, tc.status)
			continue
		}
		if tc.served != "" && !strings.HasPrefix(a.body, tc.served+" ") {
			t.Errorf("%s: served %q, want it served as %s", tc.name, a.body, tc.served)
		}
	}
}
