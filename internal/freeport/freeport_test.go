package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestBlockIsBindableOutsideEphemeralRangeAndNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		base, err := Block("127.0.0.1", 5)
		if err != nil {
			t.Fatal(err)
		}
		if base < low || base+5 > high {
			t.Fatalf("block %d+5 outside %d–%d", base, low, high)
		}
		for p := base; p < base+5; p++ {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				t.Fatalf("port %d: %v", p, err)
			}
			_ = l.Close()
		}
	}
}

func TestGetSkipsABoundPort(t *testing.T) {
	p, err := Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	delete(given, p) // as if another process had picked it
	mu.Unlock()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	mu.Lock()
	ok := free("127.0.0.1", p, 1)
	mu.Unlock()
	if ok {
		t.Fatalf("port %d is bound but reported free", p)
	}
}
