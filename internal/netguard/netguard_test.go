package netguard

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Moved from activities (the callback policy) and extended with the
// ranges the origin policy needs.
func TestForbidden(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.16.0.9": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "0.0.0.0": true, "224.0.0.1": true, "fd00:ec2::254": true,
		"100.64.0.1": true, "100.127.255.254": true, "0.1.2.3": true, "255.255.255.255": true,
		"::ffff:127.0.0.1": true, "::ffff:169.254.169.254": true, "64:ff9b::a9fe:a9fe": true, "ff02::1": true,
		"fc00::1": true, "::": true,
		"8.8.8.8": false, "1.1.1.1": false, "2606:4700:4700::1111": false, "100.128.0.1": false,
		"64:ff9b::808:808": false,
	} {
		if got := Forbidden(net.ParseIP(ip)); got != want {
			t.Errorf("Forbidden(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for ip, want := range map[string]Class{
		"10.0.0.5": Private, "100.64.1.1": Private, "fd12::1": Private,
		"127.0.0.2": Loopback, "::1": Loopback, "::ffff:127.0.0.1": Loopback,
		"169.254.169.254": Reserved, "fd00:ec2::254": Reserved, "169.254.170.2": Reserved, "239.1.1.1": Reserved,
		"93.184.215.14": Public,
	} {
		if got := Classify(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Classify(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestParseLoopbackAllow(t *testing.T) {
	got, err := ParseLoopbackAllow([]string{"8090, 127.0.0.2:443", "[::1]:8443"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"8090", "127.0.0.2:443", "[::1]:8443"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"0", "70000", "10.0.0.1:80", "localhost:80", "127.0.0.1", "127.0.0.1:0", "x"} {
		if _, err := ParseLoopbackAllow([]string{bad}); err == nil {
			t.Errorf("ParseLoopbackAllow(%q) accepted", bad)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	allow, err := ParseLoopbackAllow([]string{"8090", "127.0.0.2:9000"})
	if err != nil {
		t.Fatal(err)
	}
	strict := &Policy{Loopback: allow, DenyPorts: []uint16{9000}}
	private := &Policy{AllowPrivate: true}
	for _, c := range []struct {
		p     *Policy
		addr  string
		allow bool
	}{
		{strict, "93.184.215.14:443", true},
		{strict, "10.0.0.5:80", false},
		{private, "10.0.0.5:80", true},
		{private, "100.64.0.9:80", true},
		{private, "127.0.0.1:8090", false},
		{private, "169.254.169.254:80", false},
		{private, "[fd00:ec2::254]:80", false},
		{strict, "127.0.0.1:8090", true},
		{strict, "127.0.0.9:8090", true},
		{strict, "[::1]:8090", true},
		{strict, "127.0.0.1:7233", false},
		{strict, "127.0.0.2:9000", false}, // listed, but a denied port
		{strict, "[::ffff:127.0.0.1]:8090", true},
		{strict, "169.254.169.254:8090", false},
	} {
		err := c.p.Check(netip.MustParseAddrPort(c.addr))
		if (err == nil) != c.allow {
			t.Errorf("Check(%s) with %+v = %v, want allowed=%v", c.addr, *c.p, err, c.allow)
		}
		var refused *RefusedError
		if err != nil && !errors.As(err, &refused) {
			t.Errorf("Check(%s) = %T, want *RefusedError", c.addr, err)
		}
	}
}

// The hook runs at connect time on a real dialer: a refused port never
// sees a connection, an allowed one does.
func TestControlRefusesBeforeConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // also ends the accept loop
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close() // the count is the finding
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	refuse := &Policy{}
	d := net.Dialer{Timeout: 2 * time.Second, Control: refuse.Control}
	// "localhost" resolves at dial time; the hook sees the address.
	_, err = d.Dial("tcp", net.JoinHostPort("localhost", strconv.Itoa(port)))
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Class != Loopback {
		t.Fatalf("dial refused port: %v", err)
	}
	allow := &Policy{Loopback: []LoopbackAllow{{Port: uint16(port)}}}
	d.Control = allow.Control
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial allowed port: %v", err)
	}
	_ = c.Close() // the server counts the connection; its close is not under test
	deadline := time.Now().Add(2 * time.Second)
	for accepted.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if accepted.Load() != 1 {
		t.Fatalf("listener accepted %d connections, want exactly the allowed one", accepted.Load())
	}
}

// TestEmbeddedAndMetadataForms: IPv6 forms that carry an internal IPv4
// address, 192.0.0.0/24 and the cloud metadata endpoints are refused by
// the strict policy and by one that admits private origins.
func TestEmbeddedAndMetadataForms(t *testing.T) {
	strict := &Policy{}
	private := &Policy{AllowPrivate: true}
	for _, c := range []struct {
		addr  string
		class Class
	}{
		{"2002:7f00:1::", Reserved},          // 6to4 of 127.0.0.1 (bits 16-47)
		{"2002:a00:1:1234::1", Reserved},     // 6to4 of 10.0.0.1
		{"2002:a9fe:a9fe::", Reserved},       // 6to4 of 169.254.169.254
		{"2002:c0a8:101::", Reserved},        // 6to4 of 192.168.1.1
		{"2002:808:808::1", Public},          // 6to4 of 8.8.8.8
		{"::127.0.0.1", Reserved},            // IPv4-compatible
		{"::10.1.2.3", Reserved},             // IPv4-compatible
		{"::a9fe:a9fe", Reserved},            // IPv4-compatible metadata
		{"::8.8.8.8", Public},                // IPv4-compatible public
		{"::1", Loopback},                    // not IPv4-compatible
		{"::", Reserved},                     // unspecified
		{"::ffff:10.0.0.1", Private},         // IPv4-mapped: the IPv4 address itself
		{"::ffff:100.100.100.200", Reserved}, // mapped Alibaba metadata
		{"64:ff9b::10.0.0.1", Reserved},      // well-known NAT64 of a private address
		{"64:ff9b::127.0.0.1", Reserved},
		{"64:ff9b::8.8.8.8", Public},
		{"64:ff9b:1::a00:1", Reserved},                     // local-use NAT64
		{"64:ff9b:1:ffff::808:808", Reserved},              // local-use NAT64, whatever it carries
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", Reserved}, // Teredo
		{"192.0.0.8", Reserved},
		{"192.0.0.170", Reserved},
		{"192.0.1.1", Public},
		{"169.254.169.254", Reserved},
		{"fd00:ec2::254", Reserved},
		{"fd00:ec2::23", Reserved},
		{"169.254.170.2", Reserved},
		{"169.254.170.23", Reserved},
		{"100.100.100.200", Reserved}, // inside 100.64.0.0/10, still refused
		{"100.100.100.201", Private},
		{"169.254.0.23", Reserved},
		{"192.0.0.192", Reserved},
		{"fd00:ec2::253", Private},
	} {
		a := netip.MustParseAddr(c.addr)
		if got := Classify(a); got != c.class {
			t.Errorf("Classify(%s) = %v, want %v", c.addr, got, c.class)
		}
		ap := netip.AddrPortFrom(a, 80)
		wantStrict := c.class == Public
		wantPrivate := c.class == Public || c.class == Private
		if err := strict.Check(ap); (err == nil) != wantStrict {
			t.Errorf("strict Check(%s) = %v", ap, err)
		}
		if err := private.Check(ap); (err == nil) != wantPrivate {
			t.Errorf("allow-private Check(%s) = %v", ap, err)
		}
		if Forbidden(a.AsSlice()) == (c.class == Public) {
			t.Errorf("Forbidden(%s) = %v", c.addr, !wantStrict)
		}
	}
}
