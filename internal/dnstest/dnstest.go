// Package dnstest runs a DNS server for tests.
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is an authoritative DNS server on loopback (UDP and TCP on one
// port) answering A and AAAA from a zone the test changes at will, so
// tests control origin names without touching /etc/hosts (give Addr as
// --origin-dns-server). Unknown names answer NXDOMAIN.
type DNS struct {
	Addr string
	mu   sync.Mutex
	zone map[string]record // fqdn, lower case
	// queries counts the questions answered (Queries).
	queries atomic.Int64
	// outage is the Outage in force (OutageNone: answering).
	outage atomic.Int32
}

// Outage is how the server fails while it is set (SetOutage).
type Outage int32

// Outages a resolver meets: OutageDrop answers nothing (the client times
// out, as with a blackholed or stopped server), OutageServFail answers
// SERVFAIL (RCODE 2) and OutageRefused REFUSED (RCODE 5) to every question.
const (
	OutageNone Outage = iota
	OutageDrop
	OutageServFail
	OutageRefused
)

// SetOutage makes the server fail every question as o says from now on
// (OutageNone: answer from the zone again). Dropped questions are not
// counted in Queries.
func (d *DNS) SetOutage(o Outage) { d.outage.Store(int32(o)) }

// Queries is how many DNS questions the server has answered so far.
func (d *DNS) Queries() int64 { return d.queries.Load() }

type record struct {
	ttl   uint32
	addrs []netip.Addr
}

// Start serves a DNS until the test ends.
func Start(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{zone: map[string]record{}}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("dns: %v", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
	}
	if err != nil {
		t.Fatalf("dns: %v", err)
	}
	d.Addr = pc.LocalAddr().String()
	t.Cleanup(func() { _ = pc.Close(); _ = ln.Close() })
	go d.serveUDP(pc)
	go d.serveTCP(ln)
	return d
}

// Set makes name resolve to addrs (IP literals) with a record TTL in
// seconds.
func (d *DNS) Set(name string, ttl uint32, addrs ...string) {
	r := record{ttl: ttl}
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.zone[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = r
}

func (d *DNS) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

func (d *DNS) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }() // the client's reads report a broken connection
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out := d.answer(msg)
				if out == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
					return
				}
			}
		}()
	}
}

func (d *DNS) answer(msg []byte) []byte {
	outage := Outage(d.outage.Load())
	if outage == OutageDrop {
		return nil
	}
	d.queries.Add(1)
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	d.mu.Lock()
	r, known := d.zone[strings.ToLower(q.Name.String())]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	switch {
	case outage == OutageServFail:
		rh.RCode, r = dnsmessage.RCodeServerFailure, record{}
	case outage == OutageRefused:
		rh.RCode, r = dnsmessage.RCodeRefused, record{}
	case !known:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for _, a := range r.addrs {
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: r.ttl}
		switch {
		case a.Is4() && q.Type == dnsmessage.TypeA:
			_ = b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
		case a.Is6() && !a.Is4In6() && q.Type == dnsmessage.TypeAAAA:
			_ = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
