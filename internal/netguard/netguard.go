// Package netguard is cdnflow's one address policy for outbound
// connections to user-supplied targets (distribution callbacks and origins):
// which IP addresses cdnflow never reaches on a user's say-so, and a
// net.Dialer Control hook that enforces it on every connection, after DNS
// resolution, so a DNS change or a redirect cannot get around it.
//
// The ranges are the IANA special-purpose registries (RFC 6890 and its
// updates): loopback 127.0.0.0/8 and ::1; private RFC 1918 and unique
// local fc00::/7 (RFC 4193); shared address space 100.64.0.0/10 (RFC
// 6598, carrier-grade NAT, used inside some clouds); link-local
// 169.254.0.0/16 and fe80::/10, which hold cloud metadata and credential
// endpoints; multicast; "this network" 0.0.0.0/8 (Linux connects 0.0.0.0
// to the local host), ::, the limited broadcast address and the IETF
// protocol assignments 192.0.0.0/24 (RFC 6890: DS-Lite, NAT64 discovery).
// The cloud metadata endpoints (Metadata) are refused even where they sit
// in a range an option admits. IPv4-mapped IPv6 (::ffff:a.b.c.d) addresses
// are judged as the IPv4 address they carry; the other IPv6 forms that
// carry one (NAT64 64:ff9b::/96, 6to4 2002::/16, IPv4-compatible ::/96)
// are refused unless it is public; local-use NAT64 64:ff9b:1::/48 and
// Teredo 2001::/32 always.
package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Class is the kind of an address as far as the policy is concerned.
type Class int

// Address classes, from harmless to never allowed for origins.
const (
	// Public addresses are always allowed.
	Public Class = iota
	// Private is RFC 1918, fc00::/7 and 100.64.0.0/10: allowed for origins
	// only with the operator's allow-private option.
	Private
	// Loopback is 127.0.0.0/8 and ::1: allowed for origins only on the
	// host:ports an operator lists (the dev demo origin).
	Loopback
	// Reserved is link-local (metadata, credentials), multicast,
	// unspecified/this-network and broadcast: never an origin.
	Reserved
)

func (c Class) String() string {
	switch c {
	case Public:
		return "public"
	case Private:
		return "private"
	case Loopback:
		return "loopback"
	default:
		return "link-local, metadata, multicast or reserved"
	}
}

var (
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	ietfProto = netip.MustParsePrefix("192.0.0.0/24")
	broadcast = netip.MustParseAddr("255.255.255.255")
	// IPv6 forms that carry an IPv4 address (RFC 6052, 3056, 4291 §2.5.5.1,
	// 8215, 4380).
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	localNAT64 = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	v4Compat   = netip.MustParsePrefix("::/96")
	teredo     = netip.MustParsePrefix("2001::/32")
)

// Metadata lists the cloud metadata and credential endpoints refused as
// origins and callbacks whatever the options (Reserved), including those
// inside ranges --allow-private-origins admits: 169.254.169.254 (AWS, GCP,
// Azure, OCI, DigitalOcean, OpenStack instance metadata), fd00:ec2::254
// (AWS IMDS over IPv6), 169.254.170.2 (AWS ECS task metadata and
// credentials), 169.254.170.23 and fd00:ec2::23 (AWS EKS Pod Identity),
// 100.100.100.200 (Alibaba Cloud, inside 100.64.0.0/10), 169.254.0.23
// (Tencent Cloud), 192.0.0.192 (Oracle Cloud, legacy).
var Metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("169.254.170.23"),
	netip.MustParseAddr("fd00:ec2::23"), netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("169.254.0.23"), netip.MustParseAddr("192.0.0.192"),
}

// Classify returns the class of a (zone-less or zoned) address. An invalid
// address is Reserved. An IPv6 address that carries an IPv4 one (6to4
// 2002::/16, IPv4-compatible ::/96, NAT64 64:ff9b::/96) is Public only when
// the IPv4 address is, else Reserved; local-use NAT64 (64:ff9b:1::/48) and
// Teredo (2001::/32) are Reserved: their IPv4 address is not checkable.
// IPv4-mapped addresses (::ffff:a.b.c.d) are the IPv4 address itself.
func Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return Reserved
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if localNAT64.Contains(a) || teredo.Contains(a) {
			return Reserved
		}
		if v4, ok := embeddedV4(a); ok {
			if Classify(v4) != Public {
				return Reserved
			}
			return Public
		}
	}
	switch {
	case slices.Contains(Metadata, a):
		return Reserved
	case a.IsLoopback():
		return Loopback
	case a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || thisNet.Contains(a) || a == broadcast || ietfProto.Contains(a):
		return Reserved
	case a.IsPrivate() || cgnat.Contains(a):
		return Private
	}
	return Public
}

// embeddedV4 is the IPv4 address an IPv6 address carries: bits 96-127 of
// NAT64 (RFC 6052 §2.2, /96) and IPv4-compatible addresses (other than ::
// and ::1), bits 16-47 of 6to4 (RFC 3056 §2).
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a), v4Compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// Forbidden reports whether ip is anything but Public. It is the callback
// policy (activities.CallbackClient) and the base of the origin policy.
func Forbidden(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return !ok || Classify(a) != Public
}

// RefusedError is a connection the policy did not allow.
type RefusedError struct {
	Addr  netip.AddrPort
	Class Class
	// Hint names the option that would allow it, if any.
	Hint string
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("address %s is %s: refused", e.Addr, e.Class)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Policy decides which origin addresses may be connected to. The zero
// Policy allows public addresses only.
type Policy struct {
	// AllowPrivate admits Private addresses (--allow-private-origins).
	// Loopback and Reserved stay refused.
	AllowPrivate bool
	// Loopback lists the loopback destinations admitted, from
	// ParseLoopbackAllow. Reserved addresses are never admitted.
	Loopback []LoopbackAllow
	// DenyPorts are loopback ports refused even when Loopback lists them
	// (the connector's own port, so it cannot be made to call itself).
	DenyPorts []uint16
}

// LoopbackAllow is one admitted loopback destination: Port on any loopback
// address when Addr is invalid (zero), else exactly Addr:Port.
type LoopbackAllow struct {
	Addr netip.Addr
	Port uint16
}

func (l LoopbackAllow) String() string {
	if !l.Addr.IsValid() {
		return strconv.Itoa(int(l.Port))
	}
	return netip.AddrPortFrom(l.Addr, l.Port).String()
}

// ParseLoopbackAllow parses loopback allow-list entries: "8090" (that port
// on any loopback address) or "127.0.0.1:8090" / "[::1]:8090" (that
// address and port). Entries may be comma-separated. Hosts must be
// loopback IP literals; ports 1-65535. Errors name the entry.
func ParseLoopbackAllow(entries []string) ([]LoopbackAllow, error) {
	var out []LoopbackAllow
	for _, raw := range entries {
		for _, e := range strings.Split(raw, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			if p, err := strconv.ParseUint(e, 10, 16); err == nil {
				if p == 0 {
					return nil, fmt.Errorf("loopback allow entry %q: port must be 1-65535", e)
				}
				out = append(out, LoopbackAllow{Port: uint16(p)})
				continue
			}
			ap, err := netip.ParseAddrPort(e)
			if err != nil {
				return nil, fmt.Errorf("loopback allow entry %q: want PORT or LOOPBACK-IP:PORT", e)
			}
			if !ap.Addr().Unmap().IsLoopback() || ap.Port() == 0 {
				return nil, fmt.Errorf("loopback allow entry %q: not a loopback address with a port 1-65535", e)
			}
			out = append(out, LoopbackAllow{Addr: ap.Addr().Unmap(), Port: ap.Port()})
		}
	}
	return out, nil
}

// Check returns nil when ap may be connected to, else a *RefusedError.
func (p *Policy) Check(ap netip.AddrPort) error {
	a := ap.Addr().Unmap().WithZone("")
	ap = netip.AddrPortFrom(a, ap.Port())
	switch c := Classify(a); c {
	case Public:
		return nil
	case Private:
		if p.AllowPrivate {
			return nil
		}
		return &RefusedError{Addr: ap, Class: c, Hint: "allow with --allow-private-origins"}
	case Loopback:
		if !slices.Contains(p.DenyPorts, ap.Port()) {
			for _, l := range p.Loopback {
				if l.Port == ap.Port() && (!l.Addr.IsValid() || l.Addr == a) {
					return nil
				}
			}
		}
		return &RefusedError{Addr: ap, Class: c, Hint: "only listed loopback ports are allowed"}
	default:
		return &RefusedError{Addr: ap, Class: c}
	}
}

// Control is a net.Dialer Control hook: it runs on the resolved IP:port of
// every connection right before connect(2) and refuses what Check refuses.
func (p *Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: unexpected dial address %q: %w", address, err)
	}
	return p.Check(ap)
}
