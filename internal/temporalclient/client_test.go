package temporalclient

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// frontend answers GetSystemInfo, the call the SDK makes when it dials, and
// records the compression of each request as it arrived on the wire.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu        sync.Mutex
	encodings []string
}

func (f *frontend) GetSystemInfo(ctx context.Context, _ *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	enc := "?"
	if st, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string }); ok {
		enc = st.RecvCompress()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.encodings = append(f.encodings, enc)
	return &workflowservice.GetSystemInfoResponse{}, nil
}

func (f *frontend) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.encodings) == 0 {
		return "none received"
	}
	return f.encodings[len(f.encodings)-1]
}

// A client dialed to a loopback frontend sends its requests uncompressed;
// dialed to the same frontend by a non-loopback address it gzips them (the
// SDK's default, kept for remote servers).
func TestRequestsUncompressedOnLoopbackOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontend{}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := map[string]string{net.JoinHostPort("127.0.0.1", itoa(port)): "", net.JoinHostPort("localhost", itoa(port)): ""}
	if ip := nonLoopbackIP(); ip != "" {
		cases[net.JoinHostPort(ip, itoa(port))] = "gzip"
	} else {
		t.Log("no non-loopback address on this host: the gzip case is not run")
	}
	for addr, want := range cases {
		c, err := Dial(ctx, Settings{TemporalAddress: addr, Namespace: "default"}, zap.NewNop())
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		c.Close()
		if got := f.last(); got != want {
			t.Errorf("dialed %s: request compression %q, want %q", addr, got, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// nonLoopbackIP is an IPv4 address of this host other than loopback, ""
// when it has none.
func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
