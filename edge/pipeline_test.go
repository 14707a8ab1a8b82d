package edge_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/origin"
)

// PURGEs pipelined on one connection to a real varnishd answer
// like PurgeVerified one by one: every unit verified, cached objects gone
// (hard and soft), an unwritable path refused alone, in units' order over
// more than one exchange (MaxPipelined).
func TestPurgeVerifiedBatchOnVarnish(t *testing.T) {
	srv := httptest.NewServer(&origin.Handler{})
	t.Cleanup(srv.Close)
	oh, op, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(op)
	e := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, DefaultBackend: &vcl.Backend{Host: oh, Port: port}}
	})[0].Edge
	c := edge.NewClient(edge.Options{})
	ctx := context.Background()
	const host = "pipe.test"
	cached := []string{"/a.css", "/b.css", "/c.css"}
	for _, soft := range []bool{false, true} {
		for _, p := range cached {
			if r := fetch(t, c, e, host, p); r.Status != 200 {
				t.Fatalf("GET %s = %+v", p, r)
			}
		}
		var units []edge.PurgeUnit
		for _, p := range cached {
			units = append(units, edge.PurgeUnit{Host: host, Path: p})
		}
		for i := 0; i < edge.MaxPipelined+20; i++ {
			units = append(units, edge.PurgeUnit{Host: host, Path: fmt.Sprintf("/never/%d.js", i)})
		}
		units = append(units, edge.PurgeUnit{Host: host, Path: "/with space"})
		answers := c.PurgeVerifiedBatch(ctx, e, units, soft)
		if len(answers) != len(units) {
			t.Fatalf("%d answers for %d units", len(answers), len(units))
		}
		for i, a := range answers[:len(units)-1] {
			if a.Err != nil || !a.Verified || a.Probe.Fresh || a.Sent.IsZero() {
				t.Fatalf("soft %v: unit %d (%s) = %+v; want verified, no fresh copy", soft, i, units[i].Path, a)
			}
		}
		if err := answers[len(units)-1].Err; !errors.Is(err, edge.ErrInvalidRequest) {
			t.Fatalf("path with a space: %v, want ErrInvalidRequest", err)
		}
		for _, p := range cached {
			if r, err := c.Probe(ctx, e, host, p); err != nil || r.Fresh {
				t.Fatalf("soft %v: %s after the pipelined purge: %+v %v, want no fresh copy", soft, p, r, err)
			}
		}
	}
}

// startPipeServer answers pipelined PURGEs like the edge VCL ("404
// absent"), the first connection only answerFirst of them before it
// closes.
func startPipeServer(t *testing.T, answerFirst int) *rawServer {
	return startRawServer(t, func(conn int32, k int, _ *http.Request) (string, bool) {
		return "HTTP/1.1 404 absent\r\nContent-Length: 0\r\n\r\n", conn > 1 || k < answerFirst
	})
}

// A connection that breaks mid-batch: the answers read stand, the rest
// are sent again on a new connection; one that breaks before any answer
// leaves every unit unconfirmed, with a transport error, and no loop.
func TestPurgeVerifiedBatchBrokenConnection(t *testing.T) {
	units := make([]edge.PurgeUnit, 5)
	for i := range units {
		units[i] = edge.PurgeUnit{Host: "h.test", Path: fmt.Sprintf("/%d", i)}
	}
	ctx := context.Background()

	s := startPipeServer(t, 2)
	c := edge.NewClient(edge.Options{})
	answers := c.PurgeVerifiedBatch(ctx, fakeEdge(t, "E1", s.ln.Addr().String()), units, false)
	for i, a := range answers {
		if a.Err != nil || !a.Verified {
			t.Fatalf("unit %d = %+v, want answered after the resend", i, a)
		}
	}
	// The server counts an answer after writing it: the client may have
	// read the last one first.
	eventually.WithinEvery(t, 2*time.Second, 10*time.Millisecond, func() error {
		if s.conns.Load() != 2 || s.answered.Load() != 5 {
			return fmt.Errorf("%d connections, %d answers; want 2 and 5 (2 on the first, 3 resent)", s.conns.Load(), s.answered.Load())
		}
		return nil
	})

	dead := startPipeServer(t, 0)
	c = edge.NewClient(edge.Options{})
	// The first connection closes without an answer; it was fresh, so the
	// batch fails without trying another.
	e := fakeEdge(t, "E2", dead.ln.Addr().String())
	answers = c.PurgeVerifiedBatch(ctx, e, units, false)
	for i, a := range answers {
		if a.Err == nil || !edge.IsRetryable(a.Err) {
			t.Fatalf("unit %d on a closing edge = %+v, want a retryable transport error", i, a)
		}
	}
	if n := dead.conns.Load(); n != 1 {
		t.Fatalf("%d connections to an edge that closes them, want 1", n)
	}
}
