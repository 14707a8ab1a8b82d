package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/dns/dnsmessage"
)

// MaxCacheTTL is the longest an answer is used: with a record TTL of at
// most 30 s, an address change is followed within 60 s (30 s here plus at
// most the TTL in the upstream resolver).
const MaxCacheTTL = 30 * time.Second

// maxEntries is the cache size at which entries past their stale bound
// are swept (then, if still full, every entry past its TTL).
const maxEntries = 1024

// lookupTimeout bounds one resolution (all queries of it).
const lookupTimeout = 5 * time.Second

// DefaultServeStale is how long after its TTL the last good answer of an
// origin name is still used while the resolver fails (Options.DNSServeStale
// 0). RFC 8767 section 5 suggests 1 to 3 days for a recursive resolver;
// an origin connector keeps it short so a name moved away while DNS was
// down is not used for long.
const DefaultServeStale = time.Hour

// Serve-stale timers of RFC 8767 section 5: a request waits at most
// staleAnswerWait for a refresh before it gets the stale answer (the
// "client response timer", 1.8 s there), and after a failed refresh the
// stale answer is used without asking again for staleRecheck (the "failure
// recheck timer", 30 s there).
const (
	staleAnswerWait = 1800 * time.Millisecond
	staleRecheck    = 30 * time.Second
)

// resolver resolves origin names to all their A and AAAA addresses and
// caches each answer for min(record TTL, maxTTL). Lookups go through Go's
// own DNS client (net.Resolver with PreferGo), which reads /etc/hosts and
// /etc/resolv.conf, or asks server when set; the answers' TTLs are read off
// the DNS responses as they pass (see ttlConn). Answers without a TTL
// (/etc/hosts) are cached for maxTTL.
//
// Serve-stale (RFC 8767): when a refresh fails because the resolver did
// not answer (timeout, SERVFAIL, REFUSED, network error; see
// resolverFailed), the last good answer is used for up to staleFor past
// its TTL. An authoritative "no such name" or "no addresses" answer ends
// it at once. Failures are never cached as answers.
type resolver struct {
	r        *net.Resolver
	maxTTL   time.Duration
	staleFor time.Duration // 0: no serve-stale
	// now is the clock of TTLs and stale bounds; answerWait and
	// lookupTimeout are staleAnswerWait and lookupTimeout. Tests set a
	// clock they move forward and shorter timers (Options.testResolver).
	now           func() time.Time
	answerWait    time.Duration
	lookupTimeout time.Duration
	log           *zap.Logger

	mu      sync.Mutex
	entries map[string]*dnsEntry
}

// dnsEntry is one name: its last good answer and the refresh under way.
// Fields are guarded by resolver.mu; addrs is replaced, never changed.
type dnsEntry struct {
	addrs    []netip.Addr // last good answer; nil before the first
	expires  time.Time    // end of its TTL
	failedAt time.Time    // last refresh the resolver failed (zero: none since the answer)
	fill     *dnsFill     // the refresh under way, or nil
}

// dnsFill is one resolution; ready is closed once addrs/err are set.
type dnsFill struct {
	ready   chan struct{}
	started time.Time
	addrs   []netip.Addr
	err     error
}

// usableUntil is the end of the stale bound of e's answer (zero: none).
func (r *resolver) usableUntil(e *dnsEntry) time.Time {
	if e.addrs == nil {
		return time.Time{}
	}
	return e.expires.Add(r.staleFor)
}

func newResolver(server string, maxTTL, staleFor time.Duration, log *zap.Logger) *resolver {
	if maxTTL <= 0 || maxTTL > MaxCacheTTL {
		maxTTL = MaxCacheTTL
	}
	switch {
	case staleFor == 0:
		staleFor = DefaultServeStale
	case staleFor < 0:
		staleFor = 0
	}
	d := &net.Dialer{Timeout: lookupTimeout}
	res := &resolver{maxTTL: maxTTL, staleFor: staleFor, now: time.Now, answerWait: staleAnswerWait, lookupTimeout: lookupTimeout,
		log: log, entries: map[string]*dnsEntry{}}
	res.r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		if server != "" {
			address = server
		}
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		col, _ := ctx.Value(ttlKey{}).(*ttlCollector)
		if col == nil {
			return c, nil
		}
		tc := &ttlConn{Conn: c, col: col}
		if pc, ok := c.(net.PacketConn); ok {
			return &ttlPacketConn{ttlConn: tc, pc: pc}, nil
		}
		tc.stream = true
		return tc, nil
	}}
	return res
}

// lookup returns every address of host (an IP literal is its own answer),
// IPv4-mapped addresses unmapped, in the order the resolver gave them: the
// cached answer within its TTL, else a fresh one. While the resolver fails,
// the last good answer within its stale bound is returned instead of the
// error (after at most staleAnswerWait).
func (r *resolver) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	now := r.now()
	r.mu.Lock()
	e := r.entries[host]
	if e != nil && e.addrs != nil && now.Before(e.expires) {
		addrs := e.addrs
		r.mu.Unlock()
		return addrs, nil
	}
	if e == nil {
		if len(r.entries) >= maxEntries {
			r.sweep(now)
		}
		e = &dnsEntry{}
		r.entries[host] = e
	}
	stale := now.Before(r.usableUntil(e))
	if e.fill == nil && !(stale && now.Before(e.failedAt.Add(staleRecheck))) {
		e.fill = &dnsFill{ready: make(chan struct{}), started: now}
		go r.refresh(host, e, e.fill)
	}
	f, staleAddrs := e.fill, e.addrs
	r.mu.Unlock()
	if !stale {
		select {
		case <-f.ready:
			return f.addrs, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f == nil { // a refresh failed moments ago: no new one yet
		return staleAddrs, nil
	}
	wait := time.NewTimer(max(f.started.Add(r.answerWait).Sub(now), 0))
	defer wait.Stop()
	select {
	case <-f.ready:
		if f.err == nil || !resolverFailed(f.err) {
			return f.addrs, f.err
		}
	case <-wait.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return staleAddrs, nil
}

// sweep drops entries past their stale bound with no refresh under way;
// when that leaves the cache full, also every entry past its TTL. r.mu is
// held.
func (r *resolver) sweep(now time.Time) {
	for _, ttlToo := range []bool{false, true} {
		for h, e := range r.entries {
			if e.fill == nil && (!now.Before(r.usableUntil(e)) || (ttlToo && !now.Before(e.expires))) {
				delete(r.entries, h)
			}
		}
		if len(r.entries) < maxEntries {
			return
		}
	}
}

// errNoAddresses is an answer without A or AAAA records.
var errNoAddresses = errors.New("no addresses")

// resolverFailed tells a failure of the resolver (timeout, SERVFAIL,
// REFUSED, a network error) from an answer that the name has no address
// (NXDOMAIN, no A/AAAA records): only the former is served stale (RFC 8767
// section 4) or worth retrying soon.
func resolverFailed(err error) bool {
	var de *net.DNSError
	if errors.Is(err, errNoAddresses) || (errors.As(err, &de) && de.IsNotFound) {
		return false
	}
	return true
}

// refresh resolves host into f, outside any caller's cancellation, and
// records the outcome in e: a good answer replaces the last; a resolver
// failure keeps the last good answer while its stale bound lasts; an
// authoritative "no such name" drops it.
func (r *resolver) refresh(host string, e *dnsEntry, f *dnsFill) {
	col := &ttlCollector{}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ttlKey{}, col), r.lookupTimeout)
	defer cancel()
	ips, err := r.r.LookupNetIP(ctx, "ip", host)
	ttl := r.maxTTL
	if t, ok := col.min(); ok && t < ttl {
		ttl = t
	}
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("lookup %s: %w", host, errNoAddresses)
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	f.addrs, f.err = ips, err
	e.fill = nil
	close(f.ready)
	switch {
	case err == nil:
		e.addrs, e.expires, e.failedAt = ips, now.Add(ttl), time.Time{}
		return
	case resolverFailed(err) && now.Before(r.usableUntil(e)):
		e.failedAt = now
		r.log.Warn("origin DNS resolver failed; serving the last good addresses",
			zap.String("host", host), zap.Duration("expiredFor", now.Sub(e.expires).Round(time.Second)),
			zap.Time("staleUntil", r.usableUntil(e)), zap.Strings("addresses", addrStrings(e.addrs)), zap.Error(err))
		return
	}
	if r.entries[host] == e {
		delete(r.entries, host)
	}
}

func addrStrings(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

type ttlKey struct{}

// ttlCollector keeps the smallest TTL of the answer records seen.
type ttlCollector struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen bool
}

func (c *ttlCollector) observe(msg []byte) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || !h.Response || h.RCode != dnsmessage.RCodeSuccess {
		return
	}
	if err := p.SkipAllQuestions(); err != nil {
		return
	}
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			return
		}
		if err := p.SkipAnswer(); err != nil {
			return
		}
		if rh.Type != dnsmessage.TypeA && rh.Type != dnsmessage.TypeAAAA && rh.Type != dnsmessage.TypeCNAME {
			continue
		}
		t := time.Duration(rh.TTL) * time.Second
		c.mu.Lock()
		if !c.seen || t < c.ttl {
			c.ttl, c.seen = t, true
		}
		c.mu.Unlock()
	}
}

func (c *ttlCollector) min() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ttl, c.seen
}

// ttlConn hands every DNS response read through it to col. Over UDP a
// Read is one message; over TCP messages carry a 2-byte length prefix and
// may arrive in pieces.
type ttlConn struct {
	net.Conn
	col    *ttlCollector
	stream bool
	buf    []byte
}

func (c *ttlConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if !c.stream {
			c.col.observe(b[:n])
		} else {
			c.buf = append(c.buf, b[:n]...)
			for len(c.buf) >= 2 {
				l := int(c.buf[0])<<8 | int(c.buf[1])
				if len(c.buf) < 2+l {
					break
				}
				c.col.observe(c.buf[2 : 2+l])
				c.buf = c.buf[2+l:]
			}
		}
	}
	return n, err
}

// ttlPacketConn keeps the net.PacketConn side visible: Go's DNS client
// picks the UDP or the TCP message format by it.
type ttlPacketConn struct {
	*ttlConn
	pc net.PacketConn
}

func (c *ttlPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.pc.ReadFrom(b)
	if n > 0 {
		c.col.observe(b[:n])
	}
	return n, a, err
}

func (c *ttlPacketConn) WriteTo(b []byte, a net.Addr) (int, error) { return c.pc.WriteTo(b, a) }
