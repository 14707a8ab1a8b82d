package vcl

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// writer accumulates VCL with indentation.
type writer struct {
	b     strings.Builder
	depth int
}

func (w *writer) line(format string, args ...any) {
	if format == "" {
		w.b.WriteByte('\n')
		return
	}
	w.b.WriteString(strings.Repeat("    ", w.depth))
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

func (w *writer) open(format string, args ...any) {
	w.line(format+" {", args...)
	w.depth++
}

func (w *writer) close() {
	w.depth--
	w.line("}")
}

// orElse continues an if-chain: "} elsif (...) {" or "} else {".
func (w *writer) orElse(format string, args ...any) {
	w.depth--
	w.line("} "+format+" {", args...)
	w.depth++
}

func (w *writer) String() string { return w.b.String() }

// str is a VCL string literal of a value the checks above limited to
// characters that cannot end it.
func str(s string) string { return `"` + s + `"` }

// longStr is a VCL long string, for regular expressions with quotes.
func longStr(s string) string { return `{"` + s + `"}` }

// hostCond is the condition "v is one of the hosts".
func hostCond(v string, hosts []string) string {
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = v + " == " + str(h)
	}
	return strings.Join(parts, " || ")
}

// Internal request headers. Client copies are removed on arrival so a
// client cannot forge them.
const (
	hdrPass        = "X-Cdnflow-Pass"
	hdrPurgedCount = "X-Purged-Count"
	// HdrProbe asks for a cache-only lookup (see writeRecv): the edge
	// answers from its cache and never fetches from the origin.
	hdrProbe = "X-Cdnflow-Probe"
	// hdrTTL carries connector.HeaderTTL inside vcl_backend_response.
	hdrTTL = "X-Cdnflow-Forced-Ttl"
)

// connectorBackend is the name of the origin connector backend.
const connectorBackend = "cdnflow_connector"

// cacheableForcedTTL lists the statuses a forced TTL applies to; errors keep
// the origin's (or Varnish's default) lifetime so an outage is not pinned.
var cacheableForcedTTL = []int{200, 203, 204, 300, 301, 302, 304, 307, 308, 410}

func (p *renderPlan) write(w *writer) {
	w.line("vcl 4.1;")
	w.line("")
	if p.edgeID != "" {
		w.line("# cdnflow edge %s. Generated: changes are overwritten on the next apply.", p.edgeID)
	} else {
		w.line("# cdnflow edge. Generated: changes are overwritten on the next apply.")
	}
	w.line("")
	w.line("import std;")
	w.line("import purge;")
	w.line("import xkey;")
	w.line("")
	p.writeBackends(w)
	w.open("acl cdnflow_purgers")
	for _, a := range p.acl {
		w.line("%s", a)
	}
	w.close()
	w.line("")
	p.writeRecv(w)
	p.writeInvalidation(w)
	p.writeBackendSide(w)
	p.writeDelivery(w)
	for _, s := range p.sites {
		p.writeSite(w, s)
	}
}

// writeBackends declares the only backend: this edge's origin connector
// on loopback (edge/connector). Each fetch names its origins in
// connector.HeaderOrigins (vcl_backend_fetch); the connector resolves,
// balances, checks addresses and speaks TLS.
func (p *renderPlan) writeBackends(w *writer) {
	w.open("backend %s", connectorBackend)
	w.line(`.host = "127.0.0.1";`)
	w.line(".port = %s;", str(strconv.Itoa(p.connectorPort)))
	w.line(".connect_timeout = 3s;")
	// Below the connector's own wait for origin headers (60 s) so Varnish,
	// not the connector, decides when a slow origin has failed.
	w.line(".first_byte_timeout = 30s;")
	w.line(".between_bytes_timeout = 10s;")
	w.close()
	w.line("")
}

func (p *renderPlan) writeRecv(w *writer) {
	w.open("sub vcl_recv")
	w.line("unset req.http.%s;", hdrPass)
	w.line("unset req.http.%s;", hdrPurgedCount)
	w.line("# Only the VCL names origins (vcl_backend_fetch); piped requests skip it.")
	w.line("unset req.http.%s;", connector.HeaderOrigins)
	w.line("unset req.http.%s;", connector.HeaderOriginHost)
	w.line("unset req.http.%s;", connector.HeaderTTL)
	w.line("# Absolute-form request targets carry the host in the URL.")
	w.open(`if (req.url ~ "(?i)^https?://")`)
	w.line(`set req.http.host = regsub(req.url, "(?i)^https?://([^/?#]*).*$", "\1");`)
	w.line(`set req.url = regsub(req.url, "(?i)^https?://[^/?#]*", "");`)
	w.open(`if (req.url !~ "^/")`)
	w.line(`set req.url = "/" + req.url;`)
	w.close()
	w.close()
	w.line("# Host is part of the cache key and of every purge, ban and surrogate")
	w.line("# key: one spelling per name (lower case, no port, no trailing dot),")
	w.line("# and nothing that could split a ban or xkey argument.")
	w.open("if (req.http.host)")
	w.line(`set req.http.host = std.tolower(regsub(req.http.host, "\.?(:[0-9]*)?$", ""));`)
	w.open(`if (req.http.host !~ "^([a-z0-9_.-]+|\[[0-9a-f:.]+\])$")`)
	w.line(`return (synth(400, "Invalid Host header"));`)
	w.close()
	w.close()
	w.open(`if (req.method == "PURGE" || req.method == "BAN")`)
	w.open("if (client.ip !~ cdnflow_purgers)")
	w.line(`return (synth(403, "Forbidden"));`)
	w.close()
	w.open("if (!req.http.host)")
	w.line(`return (synth(400, "Host header required"));`)
	w.close()
	w.open(`if (req.method == "BAN")`)
	w.line("call cdnflow_ban;")
	w.close()
	w.open("if (req.http.X-Purge-Tag)")
	w.line("call cdnflow_purge_tag;")
	w.close()
	w.line("# Exact purge: look the object up, vcl_hit/vcl_miss evict it.")
	w.line("return (hash);")
	w.close()
	w.line("# Cache-only probe (purge verification): look the object up and answer")
	w.line("# 200 \"cached age=<s>\" (fresh), 404 \"stale\" or 404 \"absent\" from")
	w.line("# vcl_hit/vcl_miss/vcl_pass; never a fetch from the origin.")
	w.open("if (req.http.%s)", hdrProbe)
	w.open(`if (client.ip !~ cdnflow_purgers || (req.method != "GET" && req.method != "HEAD"))`)
	w.line(`return (synth(403, "Forbidden"));`)
	w.close()
	w.line("return (hash);")
	w.close()
	w.line("# The site table's admin protocol (connector.AdminPath), for the purge")
	w.line("# ACL only; the connector serves it.")
	w.open("if (req.http.%s)", connector.HeaderAdmin)
	w.open("if (client.ip !~ cdnflow_purgers)")
	w.line(`return (synth(403, "Forbidden"));`)
	w.close()
	w.line("set req.backend_hint = %s;", connectorBackend)
	w.line("return (pass);")
	w.close()
	w.line("# Every host is fetched through the connector: it routes by Host over")
	w.line("# the edge's site table (unknown hosts: the default origin or 404).")
	w.line("set req.backend_hint = %s;", connectorBackend)
	for i, s := range p.sites {
		if i == 0 {
			w.open("if (%s)", hostCond("req.http.host", s.hosts))
		} else {
			w.orElse("elsif (%s)", hostCond("req.http.host", s.hosts))
		}
		w.line("call %s;", s.sub("recv"))
	}
	if len(p.sites) > 0 {
		w.close()
	}
	w.line("# Fall through to the built-in vcl_recv: it passes requests with")
	w.line("# Cookie or Authorization so private answers are never shared.")
	w.close()
	w.line("")
}

func (p *renderPlan) writeInvalidation(w *writer) {
	w.open("sub cdnflow_ban")
	w.line("# Ban arguments are split on white space and a leading quote starts a")
	w.line("# quoted token, so either would let the value change the expression.")
	w.open("if (req.http.X-Ban-Url-Regex)")
	w.open(`if (req.http.X-Ban-Url-Regex == "" || req.http.X-Ban-Url-Regex ~ {"[\s"]"})`)
	w.line(`return (synth(400, "X-Ban-Url-Regex must be one PCRE without white space or quotes (use \s, \x22)"));`)
	w.close()
	w.open(`if (std.ban("obj.http.x-cdn-host == " + req.http.host + " && obj.http.x-cdn-url ~ " + req.http.X-Ban-Url-Regex))`)
	w.line(`return (synth(200, "Ban added"));`)
	w.close()
	w.orElse(`elsif (std.ban("obj.http.x-cdn-host == " + req.http.host))`)
	w.line(`return (synth(200, "Ban added"));`)
	w.close()
	w.line(`return (synth(400, "Ban rejected: " + std.ban_error()));`)
	w.close()
	w.line("")

	w.open("sub cdnflow_purge_tag")
	w.line("# xkey splits on white space and commas: one tag, always host-scoped.")
	w.open(`if (req.http.X-Purge-Tag !~ "^[^\s,]+$")`)
	w.line(`return (synth(400, "X-Purge-Tag must be one tag without white space or commas"));`)
	w.close()
	w.open(`if (req.http.X-Purge-Soft == "1")`)
	w.line(`set req.http.%s = xkey.softpurge(req.http.host + "#" + req.http.X-Purge-Tag);`, hdrPurgedCount)
	w.orElse("else")
	w.line(`set req.http.%s = xkey.purge(req.http.host + "#" + req.http.X-Purge-Tag);`, hdrPurgedCount)
	w.close()
	w.line(`return (synth(200, "Purged"));`)
	w.close()
	w.line("")

	w.open("sub cdnflow_purge_object")
	w.open(`if (req.http.X-Purge-Soft == "1")`)
	w.line("# Expire now but keep grace: the next client gets the stale copy")
	w.line("# while Varnish refetches in the background.")
	w.line("set req.http.%s = purge.soft();", hdrPurgedCount)
	w.orElse("else")
	w.line("set req.http.%s = purge.hard();", hdrPurgedCount)
	w.close()
	w.line(`return (synth(200, "Purged"));`)
	w.close()
	w.line("")

	w.open("sub vcl_hit")
	w.open(`if (req.method == "PURGE")`)
	w.line("call cdnflow_purge_object;")
	w.close()
	w.open("if (req.http.%s)", hdrProbe)
	w.open("if (obj.ttl > 0s)")
	w.line(`return (synth(200, "cached age=" + obj.age));`)
	w.close()
	w.line(`return (synth(404, "stale"));`)
	w.close()
	w.close()
	w.line("")
	w.open("sub vcl_miss")
	w.open(`if (req.method == "PURGE")`)
	w.line("call cdnflow_purge_object;")
	w.close()
	w.open("if (req.http.%s)", hdrProbe)
	w.line(`return (synth(404, "absent"));`)
	w.close()
	w.close()
	w.line("")
	w.open("sub vcl_pass")
	w.open("if (req.http.%s)", hdrProbe)
	w.line(`return (synth(404, "absent"));`)
	w.close()
	w.open(`if (req.method == "PURGE")`)
	w.line("# Only a hit-for-pass marker is cached under this key: nothing to purge.")
	w.line("set req.http.%s = \"0\";", hdrPurgedCount)
	w.line(`return (synth(200, "Purged"));`)
	w.close()
	w.line("set req.http.%s = \"1\";", hdrPass)
	w.close()
	w.line("")
}

func (p *renderPlan) writeBackendSide(w *writer) {
	w.open("sub vcl_backend_fetch")
	w.line("unset bereq.http.%s;", hdrPass)
	w.line("# The client's (normalised) Host, kept for bans and surrogate keys")
	w.line("# when a site sends the origin's name instead.")
	w.line("set bereq.http.X-Forwarded-Host = bereq.http.host;")
	w.line("# Hosts without a site in the connector's table go to the default origin.")
	w.line("unset bereq.http.%s;", connector.HeaderOrigins)
	w.line("unset bereq.http.%s;", connector.HeaderOriginHost)
	if p.def != "" {
		w.line("set bereq.http.%s = %s;", connector.HeaderOrigins, str(p.def))
		w.line("set bereq.http.%s = bereq.http.host;", connector.HeaderOriginHost)
	}
	w.close()
	w.line("")

	w.open("sub vcl_backend_response")
	w.line("# Lurker-friendly bans match on the object only: store what the")
	w.line("# client asked for (the connector adds each origin's path).")
	w.line("set beresp.http.x-cdn-host = bereq.http.X-Forwarded-Host;")
	w.line("set beresp.http.x-cdn-url = bereq.url;")
	w.line("# Only cdnflow sets xkey, so every key is scoped to the client host.")
	w.line("unset beresp.http.xkey;")
	w.open("if (beresp.http.Surrogate-Key)")
	w.line(`std.collect(beresp.http.Surrogate-Key, " ");`)
	w.line(`set beresp.http.xkey = regsuball(beresp.http.Surrogate-Key, "([^\s,]+)", bereq.http.X-Forwarded-Host + "#\1");`)
	w.close()
	conds := make([]string, len(cacheableForcedTTL))
	for i, c := range cacheableForcedTTL {
		conds[i] = "beresp.status == " + strconv.Itoa(c)
	}
	w.line("# A site's forced lifetime (connector.HeaderTTL, from the site table)")
	w.line("# ignores origin caching headers, but never shares a response that")
	w.line("# sets a cookie.")
	w.open("if (beresp.http.%s)", connector.HeaderTTL)
	w.line("set beresp.http.%s = beresp.http.%s;", hdrTTL, connector.HeaderTTL)
	w.line("unset beresp.http.%s;", connector.HeaderTTL)
	w.open("if ((%s) && !beresp.http.Set-Cookie)", strings.Join(conds, " || "))
	w.line(`set beresp.ttl = std.duration(beresp.http.%s + "s", 0s);`, hdrTTL)
	w.line("unset beresp.http.%s;", hdrTTL)
	w.line("return (deliver);")
	w.close()
	w.line("unset beresp.http.%s;", hdrTTL)
	w.close()
	w.close()
	w.line("")
}

func (p *renderPlan) writeDelivery(w *writer) {
	edgeID := "server.identity"
	if p.edgeID != "" {
		edgeID = str(p.edgeID)
	}
	w.open("sub vcl_deliver")
	w.open("if (obj.uncacheable)")
	w.open("if (req.http.%s)", hdrPass)
	w.line(`set resp.http.X-Cache = "PASS";`)
	w.orElse("else")
	w.line(`set resp.http.X-Cache = "UNCACHEABLE";`)
	w.close()
	w.orElse("elsif (obj.hits > 0)")
	w.line(`set resp.http.X-Cache = "HIT";`)
	w.orElse("else")
	w.line(`set resp.http.X-Cache = "MISS";`)
	w.close()
	// Remaining lifetime, so operators can check a distribution's maxAge.
	w.line("set resp.http.X-Cache-TTL = obj.ttl;")
	w.line("set resp.http.X-Edge-Id = %s;", edgeID)
	w.line("unset resp.http.x-cdn-host;")
	w.line("unset resp.http.x-cdn-url;")
	w.line("unset resp.http.xkey;")
	w.line("unset resp.http.Surrogate-Key;")
	w.line("# The connector's reason for a 502 names the origin and its failure")
	w.line("# (certificate, address policy): for operators (varnishlog), not clients.")
	w.line("unset resp.http.%s;", connector.HeaderError)
	w.close()
	w.line("")
	w.open("sub vcl_synth")
	w.line("set resp.http.X-Edge-Id = %s;", edgeID)
	w.open("if (req.http.%s)", hdrPurgedCount)
	w.line("set resp.http.%s = req.http.%s;", hdrPurgedCount, hdrPurgedCount)
	w.close()
	w.line(`set resp.http.Content-Type = "text/plain; charset=utf-8";`)
	w.line(`synthetic(resp.status + " " + resp.reason);`)
	w.line("return (deliver);")
	w.close()
	w.line("")
}

// writeSite writes the recv sub of a site with a referrer rule: the only
// per-site VCL (everything else is in the connector's site table).
func (p *renderPlan) writeSite(w *writer, s *sitePlan) {
	w.line("# site %s: %s", s.name, strings.Join(s.hosts, " "))
	w.open("sub %s", s.sub("recv"))
	w.open(`if (!req.http.Referer || req.http.Referer == "")`)
	if !s.allowEmpty {
		w.line(`return (synth(403, "Referer required"));`)
	}
	conds := make([]string, len(s.referrers))
	for i, r := range s.referrers {
		conds[i] = "req.http.Referer ~ " + longStr(r)
	}
	switch {
	case s.refType == ReferrerBlacklist && len(conds) > 0:
		w.orElse("elsif (%s)", strings.Join(conds, " || "))
		w.line(`return (synth(403, "Referer denied"));`)
	case s.refType == ReferrerWhitelist && len(conds) > 0:
		w.orElse("elsif (!(%s))", strings.Join(conds, " || "))
		w.line(`return (synth(403, "Referer denied"));`)
	case s.refType == ReferrerWhitelist:
		// An empty whitelist admits no Referer at all.
		w.orElse("else")
		w.line(`return (synth(403, "Referer denied"));`)
	}
	w.close()
	w.close()
	w.line("")
}
