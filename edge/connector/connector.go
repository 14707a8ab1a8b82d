// Package connector is the origin connector that runs beside each Varnish
// edge (`cdnflow connector`). Varnish OSS cannot open TLS to a backend, and
// it resolves a backend name once, at VCL load, refusing names with several
// addresses; the connector does both for it. Varnish's only origin backend
// is the connector on loopback; each distribution's VCL names the origins
// of a fetch in request headers (HeaderOrigins, HeaderOriginHost), and the
// connector:
//
//   - resolves each origin name (A and AAAA) and spreads requests
//     round-robin over ALL its addresses, skipping addresses that fail to
//     connect (for 10 s); answers are cached for the record TTL and never
//     longer than MaxCacheTTL (30 s), so an address change is followed
//     within 60 s with no VCL reload; while the resolver fails, the last
//     good answer is used for a bounded time (Options.DNSServeStale);
//   - checks every address against the shared address policy
//     (internal/netguard) when the name is resolved AND in a net.Dialer
//     Control hook on every connection, so no DNS change reaches loopback,
//     link-local, metadata, multicast, private or 100.64.0.0/10 addresses
//     unless the operator allowed them;
//   - speaks TLS to https origins with SNI = the origin host name, verifying
//     the certificate against the system CAs plus an optional PEM bundle
//     (Options.CAFile); any failure is a 502 with HeaderError saying why;
//   - keeps connections alive per origin address (one http.Transport per
//     scheme and TLS server name, pooling per IP:port).
//
// It also holds the edge's site table (Table, the admin protocol at
// AdminPath), kept in a state file (Options.StateFile) so a restarted
// connector serves the same sites; besides the table, the only state is
// cached DNS answers and idle connections.
package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/internal/netguard"
)

// Options configure a connector. The same Options serve Run (one per edge)
// and New (for Probe in activities), so a probe sees what the edges see.
type Options struct {
	// Listen is the loopback host:port Run listens on (an IP literal, e.g.
	// "127.0.0.1:6090"). Other addresses are refused.
	Listen string
	// AllowPrivate admits RFC 1918, fc00::/7 and 100.64.0.0/10 origin
	// addresses (--allow-private-origins). Loopback, link-local, metadata
	// and multicast stay refused.
	AllowPrivate bool
	// AllowLoopback lists the loopback destinations admitted: "PORT" or
	// "LOOPBACK-IP:PORT" (netguard.ParseLoopbackAllow). `cdnflow dev` lists
	// its demo origin only, never admin, Temporal or API ports. The
	// connector's own port is always refused.
	AllowLoopback []string
	// CAFile is a PEM bundle trusted for https origins in addition to the
	// system CAs (--origin-ca-file, CDNFLOW_ORIGIN_CA_FILE).
	CAFile string
	// DNSServer (host:port) receives every DNS query; empty uses
	// /etc/resolv.conf (and /etc/hosts first).
	DNSServer string
	// MaxCacheTTL caps how long a DNS answer is used; 0 or more than
	// MaxCacheTTL means MaxCacheTTL (30 s).
	MaxCacheTTL time.Duration
	// DNSServeStale is how long past its TTL the last good answer of an
	// origin name is used while the resolver fails (timeout, SERVFAIL,
	// REFUSED; never after NXDOMAIN), RFC 8767 serve-stale
	// (--origin-dns-serve-stale); 0: DefaultServeStale (1 h); negative:
	// never. The address policy applies to stale addresses as to fresh.
	DNSServeStale time.Duration
	// DialTimeout bounds one TCP connect (default 5 s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an origin's response
	// headers (default 60 s; Varnish's first_byte_timeout should be
	// shorter).
	ResponseHeaderTimeout time.Duration
	// StateFile keeps the site table across restarts (--state-file): read
	// at New, rewritten after each change; "" keeps it in memory (probes,
	// tests). One connector per file (it is locked).
	StateFile string
	// ClosedRetention is how long a deleted site's hosts keep answering
	// 404 (--closed-retention); 0: DefaultClosedRetention (7 days).
	ClosedRetention time.Duration
	// MaxClosed caps the deleted sites remembered; 0: DefaultMaxClosed.
	MaxClosed int
	// ControlSecretFile is the edge's Varnish CLI secret (varnishd -S,
	// inventory secretFile; --control-secret-file): when set, admin
	// requests must carry its ControlTokenFile in HeaderControl (403
	// otherwise), and New fails when the file cannot be read.
	ControlSecretFile string
	// Parent, when set, is the edge's shield: misses go to it instead of
	// the origin (tier.go, docs/tiers.md). SetParent changes it.
	Parent *Parent
	// ParentConnections caps the connections to the parent edge (0:
	// DefaultParentConnections); a fetch beyond them waits for one
	// (--parent-connections, docs/tiers.md).
	ParentConnections int

	Logger *zap.Logger
	// Traffic turns on the edge's live traffic (traffic.go).
	Traffic TrafficOptions

	// testResolver, when set, adjusts the DNS resolver before New returns
	// (tests: a clock they move forward, shorter serve-stale timers).
	testResolver func(*resolver)
}

// Connector is an http.Handler proxying Varnish's backend requests to the
// origins they name. Safe for concurrent use.
type Connector struct {
	opts   Options
	log    *zap.Logger
	policy netguard.Policy
	self   atomic.Uint32 // the port this connector listens on, refused
	res    *resolver
	roots  *x509.CertPool
	dialer *net.Dialer
	proxy  *httputil.ReverseProxy

	table *Table
	tier  *tierState

	mu         sync.Mutex
	transports map[string]*transportEntry
	lastSweep  time.Time
	counters   map[string]*atomic.Uint64
	down       map[netip.AddrPort]time.Time

	// unstorable counts answers refused for the edge's limits (limits.go).
	unstorable unstorableCounts
	// traffic is the edge's live traffic, once enabled (traffic.go).
	traffic atomic.Pointer[traffic.Aggregator]
}

type transportEntry struct {
	t        *http.Transport
	lastUsed time.Time
}

const (
	// downFor is how long an address that failed to connect is tried
	// last.
	downFor = 10 * time.Second
	// idleTransport is how long an unused per-origin transport is kept.
	idleTransport = 10 * time.Minute
	maxCounters   = 4096
)

// New checks o and builds a connector, loading its site table from
// o.StateFile. Errors name the bad option or file. Close releases the
// state file.
func New(o Options) (*Connector, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	allow, err := netguard.ParseLoopbackAllow(o.AllowLoopback)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	if o.ControlSecretFile != "" {
		if _, err := ControlTokenFile(o.ControlSecretFile); err != nil {
			return nil, fmt.Errorf("connector: %w", err)
		}
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("connector: origin CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("connector: origin CA file %s holds no PEM certificate", o.CAFile)
		}
	}
	table, err := OpenTable(TableOptions{StateFile: o.StateFile, ClosedRetention: o.ClosedRetention, MaxClosed: o.MaxClosed,
		Logger: o.Logger.Named("sites")})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		opts:       o,
		log:        o.Logger,
		policy:     netguard.Policy{AllowPrivate: o.AllowPrivate, Loopback: allow},
		res:        newResolver(o.DNSServer, o.MaxCacheTTL, o.DNSServeStale, o.Logger.Named("dns")),
		roots:      roots,
		table:      table,
		transports: map[string]*transportEntry{},
		counters:   map[string]*atomic.Uint64{},
		down:       map[netip.AddrPort]time.Time{},
		tier:       newTierState(o),
	}
	if o.testResolver != nil {
		o.testResolver(c.res)
	}
	if ap, err := netip.ParseAddrPort(o.Listen); err == nil {
		c.self.Store(uint32(ap.Port()))
	}
	c.dialer = &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Control: c.control}
	c.proxy = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    (*originTransport)(c),
		ErrorHandler: c.proxyError,
		ErrorLog:     zap.NewStdLog(c.log.Named("proxy")),
	}
	return c, nil
}

// check applies the address policy, plus the connector's own port.
func (c *Connector) check(ap netip.AddrPort) error {
	p := c.policy
	if self := c.self.Load(); self != 0 {
		p.DenyPorts = []uint16{uint16(self)}
	}
	return p.Check(ap)
}

// control is the dialer's Control hook: the last word on every connection.
func (c *Connector) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("connector: unexpected dial address %q: %w", address, err)
	}
	return c.check(ap)
}

type targetKey struct{}

// target is what one request asked for.
type target struct {
	key     string // the HeaderOrigins value or site name, for round-robin
	origins []Origin
	paths   []string // per origin: path prefix ("" none); nil = none
	host    string   // Host to send; "" = each origin's HostHeader
	ttl     int64    // HeaderTTL to answer; 0 none
	// cachePrivate answers HeaderCachePrivate (CachePolicy.CachePrivate).
	cachePrivate bool
	// site names the answers' site in the unstorable counters.
	site string
	// visitorHost is the Host Varnish sent (the visitor's): what a
	// parent edge is asked with.
	visitorHost string
	// fallback is the parent's id when it could not be reached and the
	// origin answers instead (HeaderTierFallback).
	fallback string
}

// Table is the edge's site table (the admin protocol's state).
func (c *Connector) Table() *Table { return c.table }

// ServeHTTP proxies r to the origins of the site serving its Host (the
// site table), answers 404 "closed" for a host of a closed site, else
// proxies to the origins its HeaderOrigins names (the edge's default
// origin), else answers 404 "unknown host". HealthPath with HeaderHealth
// is Varnish's health probe; requests with HeaderAdmin go to the admin
// protocol (AdminPath) once allowAdmin admits them. Requests without
// valid internal headers are answered 502 with HeaderError; the internal
// headers never go upstream.
func (c *Connector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if serveHealth(w, r) {
		return
	}
	if r.Header.Get(HeaderAdmin) != "" {
		if c.allowAdmin(w, r) && !c.serveTraffic(w, r) {
			c.serveAdmin(w, r)
		}
		return
	}
	raw := strings.Join(r.Header.Values(HeaderOrigins), ",")
	hostVals := r.Header.Values(HeaderOriginHost)
	for k := range r.Header {
		if strings.HasPrefix(k, internalPrefix) {
			delete(r.Header, k)
		}
	}
	switch site, rt := c.table.route(hostOf(r.Host)); rt {
	case routeSite:
		c.serveSite(w, r, site)
		return
	case routeClosed:
		writeStatus(w, http.StatusNotFound, "Distribution closed")
		return
	}
	if raw == "" {
		writeStatus(w, http.StatusNotFound, "unknown host")
		return
	}
	origins, err := ParseOrigins(raw)
	if err != nil {
		c.refuse(w, r, err.Error())
		return
	}
	t := &target{key: FormatOrigins(origins), origins: origins, site: DefaultSite, visitorHost: r.Host}
	if len(hostVals) > 1 {
		c.refuse(w, r, HeaderOriginHost+" is given more than once")
		return
	}
	if len(hostVals) == 1 {
		t.host = strings.TrimSpace(hostVals[0])
		if t.host == "" || !httpguts.ValidHostHeader(t.host) {
			c.refuse(w, r, fmt.Sprintf("%s %q is not a valid Host", HeaderOriginHost, hostVals[0]))
			return
		}
	}
	c.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// refuse answers a request the connector will not forward.
func (c *Connector) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	c.log.Warn("request refused", zap.String("reason", reason), zap.String("host", r.Host), zap.String("url", r.URL.RequestURI()))
	writeError(w, reason)
}

// serveSite proxies r to site's origins, or answers 404 while it is
// suspended.
func (c *Connector) serveSite(w http.ResponseWriter, r *http.Request, site Site) {
	if site.Suspended {
		writeStatus(w, http.StatusNotFound, "Distribution suspended")
		return
	}
	t := &target{key: "s|" + site.Name, ttl: site.TTL, cachePrivate: site.cachePrivate(), site: site.Name, visitorHost: r.Host}
	for _, o := range site.Origins {
		t.origins = append(t.origins, o.Origin)
		t.paths = append(t.paths, o.Path)
	}
	if site.ForwardRequestHost {
		t.host = hostOf(r.Host)
	}
	c.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// writeStatus answers the connector's own non-502 answers (unknown host,
// closed, suspended): never stored by the cache.
func writeStatus(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "%d %s\n", code, reason)
}

func writeError(w http.ResponseWriter, reason string) {
	w.Header().Set(HeaderError, headerSafe(reason))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = fmt.Fprintf(w, "502 origin fetch failed: %s\n", headerSafe(reason))
}

// headerSafe keeps a reason on one line of printable ASCII, at most 512
// bytes.
func headerSafe(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch < 0x20 || ch > 0x7e {
			b[i] = ' '
		}
	}
	if len(b) > 512 {
		b = b[:512]
	}
	return string(b)
}

// rewrite keeps the client's path and query and Varnish's X-Forwarded-*
// headers; scheme, address and Host are set per attempt by originTransport.
func rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "origin.invalid"
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
}

// proxyError answers a failed fetch 502 with its reason and logs it with
// the origin and address.
func (c *Connector) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *OriginError
	if !errors.As(err, &oe) {
		oe = &OriginError{Kind: KindHTTP, Err: err}
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// Varnish went away (client gone, timeout): nothing to answer.
		c.log.Debug("fetch canceled", zap.String("origin", oe.Origin.String()), zap.String("url", r.URL.RequestURI()))
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	fields := []zap.Field{zap.String("origin", oe.Origin.String()), zap.String("kind", string(oe.Kind)),
		zap.String("reason", oe.Reason()), zap.String("url", r.URL.RequestURI())}
	if oe.Addr.IsValid() {
		fields = append(fields, zap.String("address", oe.Addr.String()))
	}
	c.log.Warn("origin fetch failed", fields...)
	writeError(w, oe.Reason())
}

// originTransport is the proxy's RoundTripper: it picks origin and address
// for each attempt.
type originTransport Connector

func (t *originTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := (*Connector)(t)
	tg, _ := req.Context().Value(targetKey{}).(*target)
	if tg == nil || len(tg.origins) == 0 {
		return nil, errors.New("connector: request without a target")
	}
	resp, parent, err := c.viaParent(req, tg)
	if err != nil {
		return nil, err
	}
	if parent != nil {
		return c.deliver(req, resp, parentOrigin(parent), tg)
	}
	replayable := req.Body == nil || req.Body == http.NoBody
	start := int(c.counter("o|"+tg.key).Add(1)-1) % len(tg.origins)
	var last error
	for i := range tg.origins {
		n := (start + i) % len(tg.origins)
		o := tg.origins[n]
		path := ""
		if tg.paths != nil {
			path = tg.paths[n]
		}
		resp, err := c.fetch(req, o, path, tg.host, replayable)
		if err == nil {
			return c.deliver(req, resp, o, tg)
		}
		last = err
		var oe *OriginError
		if !replayable || !errors.As(err, &oe) || !oe.Kind.beforeRequest() {
			break
		}
	}
	return nil, last
}

// deliver checks an answer of o (admit), removes internal headers and
// adds the site's: its TTL, cache-private policy and, for an origin's
// answer while the parent was unreachable, HeaderTierFallback.
func (c *Connector) deliver(req *http.Request, resp *http.Response, o Origin, tg *target) (*http.Response, error) {
	if err := c.admit(req, resp, o, tg.site); err != nil {
		return nil, err
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, internalPrefix) {
			delete(resp.Header, k)
		}
	}
	if tg.ttl > 0 {
		resp.Header.Set(HeaderTTL, strconv.FormatInt(tg.ttl, 10))
	}
	if tg.cachePrivate {
		resp.Header.Set(HeaderCachePrivate, "1")
	}
	if tg.fallback != "" {
		resp.Header.Set(HeaderTierFallback, "origin; parent="+tg.fallback)
	} else {
		resp.Header.Del(HeaderTierFallback)
	}
	return resp, nil
}

// admit refuses an origin answer the edge could not store or pass
// (checkAnswer), counting it for site with its cause: the error becomes a
// 502 whose HeaderError says why.
func (c *Connector) admit(req *http.Request, resp *http.Response, o Origin, site string) error {
	host := req.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = hostOf(req.Host)
	}
	cause, reason := checkAnswer(resp.Header, host)
	if cause == "" {
		return nil
	}
	_ = resp.Body.Close() // the answer is refused: its body is not read
	c.unstorable.add(site, cause)
	return &OriginError{Origin: o, Kind: KindHTTP, Err: fmt.Errorf("%s (%s)", reason, cause)}
}

// Unstorable are the answers refused since start for the edge's limits,
// per site and cause.
func (c *Connector) Unstorable() []Unstorable { return c.unstorable.rows() }

// fetch sends req to o (its path prefixed with path), trying its
// addresses in round-robin order and moving on from an address only when
// connecting to it failed.
func (c *Connector) fetch(req *http.Request, o Origin, path, host string, replayable bool) (*http.Response, error) {
	addrs, err := c.addresses(req.Context(), o, false)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = o.HostHeader()
	}
	tr := c.transportFor(o)
	var last error
	for _, ap := range c.order(o, addrs) {
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = o.Scheme, ap.String(), host
		if path != "" {
			prefixPath(out.URL, path)
		}
		resp, err := tr.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		oe := classify(o, ap, err)
		if !oe.Kind.beforeRequest() {
			return nil, oe
		}
		c.markDown(ap)
		last = oe
		if !replayable {
			break
		}
	}
	return nil, last
}

// addresses resolves o and applies the policy. strict refuses the origin
// when any address is refused (Probe); otherwise refused addresses are
// skipped and only an origin with none left is refused.
func (c *Connector) addresses(ctx context.Context, o Origin, strict bool) ([]netip.AddrPort, error) {
	ips, err := c.res.lookup(ctx, o.Host)
	if err != nil {
		kind := KindResolve
		if resolverFailed(err) {
			kind = KindResolver
		}
		return nil, &OriginError{Origin: o, Kind: kind, Err: err}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	var refused error
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(o.Port))
		if err := c.check(ap); err != nil {
			if strict {
				return nil, &OriginError{Origin: o, Addr: ap, Kind: KindRefused, Err: err}
			}
			refused = err
			c.log.Warn("origin address refused", zap.String("origin", o.String()), zap.Error(err))
			continue
		}
		out = append(out, ap)
	}
	if len(out) == 0 {
		return nil, &OriginError{Origin: o, Kind: KindRefused, Err: refused}
	}
	return out, nil
}

// order rotates addrs by the origin's round-robin counter and puts
// addresses that recently failed to connect last.
func (c *Connector) order(o Origin, addrs []netip.AddrPort) []netip.AddrPort {
	n := int(c.counter("a|"+o.String()).Add(1)-1) % len(addrs)
	rot := append(slices.Clone(addrs[n:]), addrs[:n]...)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	up := rot[:0:0]
	var down []netip.AddrPort
	for _, ap := range rot {
		if until, ok := c.down[ap]; ok && now.Before(until) {
			down = append(down, ap)
		} else {
			delete(c.down, ap)
			up = append(up, ap)
		}
	}
	return append(up, down...)
}

func (c *Connector) markDown(ap netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.down) >= maxCounters {
		clear(c.down)
	}
	c.down[ap] = time.Now().Add(downFor)
}

func (c *Connector) counter(key string) *atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.counters[key]
	if n == nil {
		if len(c.counters) >= maxCounters {
			clear(c.counters)
		}
		n = new(atomic.Uint64)
		c.counters[key] = n
	}
	return n
}

// transportFor returns the pool for o: one per scheme and TLS server name,
// so a connection made with one SNI never carries another origin's
// requests; inside it, connections are pooled per IP:port.
func (c *Connector) transportFor(o Origin) *http.Transport {
	sni := ""
	if _, isIP := o.ip(); o.Scheme == "https" && !isIP {
		sni = o.Host
	}
	key := o.Scheme + "|" + sni
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastSweep) > time.Minute {
		c.lastSweep = now
		for k, e := range c.transports {
			if now.Sub(e.lastUsed) > idleTransport {
				e.t.CloseIdleConnections()
				delete(c.transports, k)
			}
		}
	}
	e := c.transports[key]
	if e == nil {
		e = &transportEntry{t: &http.Transport{
			Proxy:       nil, // never an environment proxy
			DialContext: c.dialer.DialContext,
			// An empty ServerName (IP-literal origin) makes the transport
			// verify the certificate against the IP address.
			TLSClientConfig:       &tls.Config{RootCAs: c.roots, ServerName: sni, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: c.opts.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       60 * time.Second,
			// Varnish's Accept-Encoding goes through as sent.
			DisableCompression: true,
		}}
		c.transports[key] = e
	}
	e.lastUsed = now
	return e.t
}

// Close drops idle origin connections and releases the state file (the
// table then refuses changes). Safe to call more than once.
func (c *Connector) Close() {
	c.table.Close()
	c.closeTier()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.transports {
		e.t.CloseIdleConnections()
	}
}

// Serve answers Varnish on ln until ctx ends, then shuts down gracefully
// (10 s). ln must be on a loopback address. Its port is refused as an
// origin so the connector cannot be made to call itself.
func (c *Connector) Serve(ctx context.Context, ln net.Listener) error {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("connector: listen address %s is not loopback", ln.Addr())
	}
	c.self.Store(uint32(ap.Port()))
	c.startTraffic(ctx)
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: zap.NewStdLog(c.log.Named("http"))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	c.log.Info("connector listening", zap.String("address", ln.Addr().String()))
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		err = nil
	}
	c.Close()
	if err != nil {
		return fmt.Errorf("connector: serve: %w", err)
	}
	return nil
}

// Run is `cdnflow connector`: New(o), listen on o.Listen (a loopback
// IP:port), Serve until ctx ends.
func Run(ctx context.Context, o Options) error {
	ap, err := netip.ParseAddrPort(o.Listen)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("connector: listen address %q must be a loopback IP:port", o.Listen)
	}
	c, err := New(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		c.Close()
		return fmt.Errorf("connector: listen: %w", err)
	}
	return c.Serve(ctx, ln)
}
