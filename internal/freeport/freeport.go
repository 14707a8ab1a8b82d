// Package freeport hands out TCP ports that are free now and stay out of
// the way of outgoing connections: ports below the kernel's ephemeral
// range (Linux default 32768–60999, /proc/sys/net/ipv4/ip_local_port_range),
// never the same port twice in one process. A port from net.Listen(":0")
// is an ephemeral one: between learning it and binding it, any outgoing
// connection (a Temporal client, a test's HTTP request) may take it as its
// source port, which is how dev and test stacks failed to start with
// "address already in use".
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// The ports handed out: [low, high).
const (
	low  = 15000
	high = 32768
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Get returns a port on ip that nothing listens on and this process has
// not handed out before. Errors: no free port after many tries.
func Get(ip string) (int, error) {
	return Block(ip, 1)
}

// Block returns the first of n consecutive such ports (the embedded
// Temporal server takes its frontend port and the four after it).
func Block(ip string, n int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		base := low + rand.IntN(high-low-n)
		if free(ip, base, n) {
			for p := base; p < base+n; p++ {
				given[p] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on %s in %d–%d", n, ip, low, high)
}

// free reports whether ports base..base+n-1 were never handed out and can
// be bound now.
func free(ip string, base, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close() // held only to prove the port free
		}
	}()
	for p := base; p < base+n; p++ {
		if given[p] {
			return false
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}
