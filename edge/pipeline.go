package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// PurgeUnit is one object of a pipelined purge: the content's host name
// and its canonical request target (cachekey.PathQuery).
type PurgeUnit struct{ Host, Path string }

// PurgeAnswer is the edge's answer to one unit of PurgeVerifiedBatch, as
// PurgeVerified answers it: Probe and Verified when Err is nil. Sent is
// when the request was written (the unit's purge time for a stale-copy
// check).
type PurgeAnswer struct {
	Probe    ProbeResult
	Verified bool
	Sent     time.Time
	Err      error
}

// Pipelining bounds: how many requests one connection carries at once and per batch.
const (
	// MaxPipelined is the most units PurgeVerifiedBatch writes on one
	// connection before it reads their answers; requests and answers are
	// a few hundred bytes, so both directions fit the sockets' buffers.
	MaxPipelined = 64
	// pipeIdleMax drops idle pipelined connections before Varnish's
	// timeout_idle (5 s by default) closes them under us.
	pipeIdleMax = 2 * time.Second
)

// PurgeVerifiedBatch is PurgeVerified for every unit, with the requests
// pipelined (HTTP/1.1, RFC 9112 §9.3.2) on one keep-alive connection to e:
// up to MaxPipelined requests are written at once and their answers read
// in order (each within Options.PurgeTimeout of the write or of the answer
// before it), one answer per unit in units' order. A unit without an answer
// (the connection broke, the context ended) has a transport error and was
// not confirmed: the caller sends it again. Answers already read stand.
// A connection that breaks after some answers (or a reused one that
// answers nothing: the edge closed it while idle) is replaced once per
// failure and the remaining units sent on the new one.
//
// With a trace in ctx every unit goes through PurgeVerified instead, so
// each request keeps its client span. Errors per unit: ErrInvalidRequest
// (a host or path that cannot be written), *StatusError, transport errors.
func (c *Client) PurgeVerifiedBatch(ctx context.Context, e inventory.Edge, units []PurgeUnit, soft bool) []PurgeAnswer {
	out := make([]PurgeAnswer, len(units))
	if trace.SpanContextFromContext(ctx).IsValid() {
		for i, u := range units {
			out[i].Sent = time.Now()
			out[i].Probe, out[i].Verified, out[i].Err = c.PurgeVerified(ctx, e, u.Host, u.Path, soft)
		}
		return out
	}
	tok, err := controlToken(e)
	if err != nil {
		for i := range out {
			out[i].Err = fmt.Errorf("PURGE: %w", err)
		}
		return out
	}
	pending := make([]int, 0, len(units))
	for i, u := range units {
		if err := checkTarget(u.Host, u.Path); err != nil {
			out[i].Err = err
			continue
		}
		pending = append(pending, i)
	}
	c.pipelined(ctx, e, pending, pipeExchange{
		method:  "PURGE",
		timeout: c.opts.PurgeTimeout,
		write:   func(w *bufio.Writer, i int) { writeVerifiedPurge(w, units[i], tok, soft) },
		answer: func(i int, resp *http.Response, _ int64, sent time.Time) {
			out[i].Sent = sent
			out[i].Probe, out[i].Verified, out[i].Err = verifiedAnswer(e, units[i].Path, resp)
		},
		fail: func(i int, err error) { out[i].Err = err },
	})
	return out
}

// pipeExchange is one kind of pipelined request for Client.pipelined:
// how unit i is written and what its answer (body read, n bytes) or its
// failure means to the caller.
type pipeExchange struct {
	method  string
	timeout time.Duration // per answer: from the write, or the previous answer
	write   func(w *bufio.Writer, i int)
	answer  func(i int, resp *http.Response, n int64, sent time.Time)
	fail    func(i int, err error)
	edgeID  string // set by pipelined, for errors
}

// pipelined sends the units numbered by pending to e over its pipelined
// connections (HTTP/1.1, RFC 9112 §9.3.2): up to MaxPipelined requests are
// written at once and their answers read in order. A unit whose answer
// does not come within x.timeout gets x.fail with a timeout (wrapping
// context.DeadlineExceeded) and the units after it go on a new connection;
// a unit without an answer otherwise (the connection broke, the context
// ended) gets x.fail with a transport error. A connection that breaks after some answers (or a
// reused one that answers nothing: the edge closed it while idle) is
// replaced once per failure and the remaining units sent on the new one.
func (c *Client) pipelined(ctx context.Context, e inventory.Edge, pending []int, x pipeExchange) {
	x.edgeID = e.ID
	failAll := func(idx []int, err error) {
		for _, i := range idx {
			x.fail(i, fmt.Errorf("%s via edge %s: %w", x.method, e.ID, err))
		}
	}
	pool := c.pipePool(e.Address)
	fresh := false
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			failAll(pending, err)
			return
		}
		pc, reused, err := pool.get(ctx, fresh)
		if err != nil {
			failAll(pending, err)
			return
		}
		batch := pending[:min(len(pending), MaxPipelined)]
		n, keep, err := pc.roundTrip(ctx, x, batch)
		pending = pending[n:]
		if err == nil && keep {
			pool.put(pc)
			fresh = false
			continue
		}
		pc.discard()
		if err != nil && n == 0 && !reused {
			failAll(pending, err)
			return
		}
		// Progress was made, or an idle connection had gone stale: go on
		// with a new connection.
		fresh = n == 0
	}
}

// checkTarget refuses a host or path that cannot go on a request line or
// header as given (white space, control characters, no leading slash).
func checkTarget(host, path string) error {
	if path == "" || path[0] != '/' {
		return fmt.Errorf("%w: path %q must start with /", ErrInvalidRequest, path)
	}
	if host == "" {
		return fmt.Errorf("%w: empty host", ErrInvalidRequest)
	}
	for _, s := range [2]string{host, path} {
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] == 0x7f {
				return fmt.Errorf("%w: %q contains white space or a control character", ErrInvalidRequest, s)
			}
		}
	}
	return nil
}

// pipeConn is one plain-HTTP connection to an edge used for pipelining.
type pipeConn struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// discard closes a connection that carries no more requests. The Close
// error is dropped: every answer sent on it has been read or failed already.
func (pc *pipeConn) discard() { _ = pc.conn.Close() }

// roundTrip writes the units of batch and reads their answers in order,
// each within x.timeout of the write or of the answer before it (and
// before ctx ends). It answers how many (a prefix of batch) got an
// answer, whether the connection may carry more requests, and the error
// that stopped it.
func (pc *pipeConn) roundTrip(ctx context.Context, x pipeExchange, batch []int) (n int, keep bool, err error) {
	deadline := func() time.Time {
		if ctx.Err() != nil {
			return time.Unix(1, 0)
		}
		d := time.Now().Add(x.timeout)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		return d
	}
	if err := pc.conn.SetDeadline(deadline()); err != nil {
		return 0, false, fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		// Once the context ended, its deadline may still land on the
		// connection: it is not reused.
		if !stop() {
			keep = false
		}
	}()
	sent := time.Now()
	for _, i := range batch {
		x.write(pc.bw, i)
	}
	if err := pc.bw.Flush(); err != nil {
		return 0, false, fmt.Errorf("write: %w", timedOut(ctx, err))
	}
	stub := &http.Request{Method: x.method} // what http.ReadResponse needs of the request
	for n, i := range batch {
		if n > 0 {
			if err := pc.conn.SetReadDeadline(deadline()); err != nil {
				return n, false, fmt.Errorf("set deadline: %w", err)
			}
			if ctx.Err() != nil { // ended while the deadline was set: AfterFunc's may be lost
				_ = pc.conn.SetDeadline(time.Unix(1, 0))
			}
		}
		resp, err := http.ReadResponse(pc.br, stub)
		var size int64
		if err == nil {
			size, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil && ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// No (whole) answer in time is this unit's answer, as it is
			// for a request on its own: it is not sent again; the units
			// after it go on a new connection.
			x.fail(i, fmt.Errorf("%s via edge %s: read answer %d of %d: %w", x.method, x.edgeID, n+1, len(batch), timedOut(ctx, err)))
			return n + 1, false, nil
		}
		if err != nil {
			return n, false, fmt.Errorf("read answer %d of %d: %w", n+1, len(batch), timedOut(ctx, err))
		}
		x.answer(i, resp, size, sent)
		if resp.Close {
			return n + 1, false, nil
		}
	}
	return len(batch), true, nil
}

// timedOut names a connection deadline as net/http names its timeouts: the
// context's error when it ended, else context.DeadlineExceeded (the
// client's request timeout), so callers and pendingEdges read the same
// reasons whichever path sent the request.
func timedOut(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer in time: %w", context.DeadlineExceeded)
	}
	return err
}

// writeVerifiedPurge writes the request PurgeVerified sends, with the
// edge's control token tok.
func writeVerifiedPurge(w *bufio.Writer, u PurgeUnit, tok string, soft bool) {
	w.WriteString("PURGE ")
	w.WriteString(u.Path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(u.Host)
	w.WriteString("\r\n" + PurgeVerifyHeader + ": 1\r\nAccept-Encoding: gzip\r\n" + connector.HeaderControl + ": ")
	w.WriteString(tok)
	w.WriteString("\r\n")
	if soft {
		w.WriteString("X-Purge-Soft: 1\r\n")
	}
	w.WriteString("\r\n")
}

// pipes is one edge's idle pipelined connections.
type pipes struct {
	addr string
	max  int
	mu   sync.Mutex
	idle []*pipeConn
}

func (c *Client) pipePool(addr string) *pipes {
	if p, ok := c.pipes.Load(addr); ok {
		return p.(*pipes)
	}
	p, _ := c.pipes.LoadOrStore(addr, &pipes{addr: addr, max: c.opts.MaxConnsPerEdge})
	return p.(*pipes)
}

// get answers an idle connection (newest first; reused true) unless fresh,
// else dials one. Connections idle longer than pipeIdleMax are closed.
func (p *pipes) get(ctx context.Context, fresh bool) (*pipeConn, bool, error) {
	if !fresh {
		p.mu.Lock()
		for len(p.idle) > 0 {
			pc := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if time.Since(pc.idleSince) < pipeIdleMax {
				p.mu.Unlock()
				return pc, true, nil
			}
			pc.discard()
		}
		p.mu.Unlock()
	}
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, false, fmt.Errorf("dial %s: timed out: %w", p.addr, err)
		}
		return nil, false, fmt.Errorf("dial %s: %w", p.addr, err)
	}
	return &pipeConn{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10)}, false, nil
}

// put keeps pc for the next batch (at most max idle; the rest are closed).
func (p *pipes) put(pc *pipeConn) {
	pc.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, pc)
		pc = nil
	}
	p.mu.Unlock()
	if pc != nil {
		pc.discard()
	}
}
