package connector

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// MaxCacheTTL is the longest an answer is used: with a record TTL of at
// most 30 s, an address change is followed within 60 s (30 s here plus at
// most the TTL in the upstream resolver).
const MaxCacheTTL = 30 * time.Second

// maxEntries is the cache size at which expired answers are swept.
const maxEntries = 1024

// lookupTimeout bounds one resolution (all queries of it).
const lookupTimeout = 5 * time.Second

// resolver resolves origin names to all their A and AAAA addresses and
// caches each answer for min(record TTL, maxTTL). Lookups go through Go's
// own DNS client (net.Resolver with PreferGo), which reads /etc/hosts and
// /etc/resolv.conf, or asks server when set; the answers' TTLs are read off
// the DNS responses as they pass (see ttlConn). Answers without a TTL
// (/etc/hosts) are cached for maxTTL. Failures are not cached.
type resolver struct {
	r      *net.Resolver
	maxTTL time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*dnsEntry
}

type dnsEntry struct {
	ready   chan struct{} // closed when addrs/err/expires are set
	addrs   []netip.Addr
	err     error
	expires time.Time
}

func newResolver(server string, maxTTL time.Duration) *resolver {
	if maxTTL <= 0 || maxTTL > MaxCacheTTL {
		maxTTL = MaxCacheTTL
	}
	d := &net.Dialer{Timeout: lookupTimeout}
	res := &resolver{maxTTL: maxTTL, now: time.Now, entries: map[string]*dnsEntry{}}
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
// IPv4-mapped addresses unmapped, in the order the resolver gave them.
func (r *resolver) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	r.mu.Lock()
	e := r.entries[host]
	if e != nil {
		select {
		case <-e.ready:
			if e.err != nil || !r.now().Before(e.expires) {
				e = nil
			}
		default: // a lookup is under way: share it
		}
	}
	if e == nil {
		if len(r.entries) >= maxEntries {
			r.sweep()
		}
		e = &dnsEntry{ready: make(chan struct{})}
		r.entries[host] = e
		go r.fill(host, e)
	}
	r.mu.Unlock()
	select {
	case <-e.ready:
		return e.addrs, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sweep drops finished, expired entries; r.mu is held.
func (r *resolver) sweep() {
	now := r.now()
	for h, e := range r.entries {
		select {
		case <-e.ready:
			if !now.Before(e.expires) {
				delete(r.entries, h)
			}
		default:
		}
	}
}

// fill resolves host into e, outside any caller's cancellation.
func (r *resolver) fill(host string, e *dnsEntry) {
	col := &ttlCollector{}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ttlKey{}, col), lookupTimeout)
	defer cancel()
	ips, err := r.r.LookupNetIP(ctx, "ip", host)
	ttl := r.maxTTL
	if t, ok := col.min(); ok && t < ttl {
		ttl = t
	}
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("lookup %s: no addresses", host)
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	r.mu.Lock()
	e.addrs, e.err, e.expires = ips, err, r.now().Add(ttl)
	if err != nil && r.entries[host] == e {
		delete(r.entries, host)
	}
	close(e.ready)
	r.mu.Unlock()
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
