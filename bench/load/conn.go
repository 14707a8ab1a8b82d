package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// connTransport is the load's lean client side: an http.RoundTripper
// that writes a request and reads its answer on the calling goroutine,
// over keep-alive connections kept in a pool (one per client at most).
// net/http's Transport hands each exchange to a connection's own reader
// and writer goroutines; with the clients in the benchmark's process,
// those extra wake-ups wait in the same CPU queue as the API's work, so
// the benchmark would mostly measure its own client. Framing is
// net/http's (Request.Write, http.ReadResponse); a connection whose
// exchange failed, or that the server asked to close, is dropped.
type connTransport struct {
	addr    string
	timeout time.Duration
	idle    chan *loadConn
}

type loadConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newConnTransport(addr string, conns int, timeout time.Duration) *connTransport {
	return &connTransport{addr: addr, timeout: timeout, idle: make(chan *loadConn, conns)}
}

// RoundTrip sends req on an idle connection (a new one when none is
// idle) and answers the response, whose Body gives the connection back
// when it is read to its end and closed.
func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	lc, err := t.get()
	if err != nil {
		return nil, err
	}
	if err := lc.c.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		_ = lc.c.Close() // the exchange already failed
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	err = req.Write(lc.w)
	if err == nil {
		err = lc.w.Flush()
	}
	if err != nil {
		_ = lc.c.Close() // the exchange already failed
		return nil, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(lc.r, req)
	if err != nil {
		_ = lc.c.Close() // the exchange already failed
		return nil, fmt.Errorf("read answer: %w", err)
	}
	resp.Body = &connBody{ReadCloser: resp.Body, t: t, lc: lc, keep: !resp.Close}
	return resp, nil
}

func (t *connTransport) get() (*loadConn, error) {
	select {
	case lc := <-t.idle:
		return lc, nil
	default:
	}
	c, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.addr, err)
	}
	return &loadConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

// connBody returns its connection to the pool once the answer was read
// whole; an answer closed early leaves bytes on the wire, so its
// connection is dropped.
type connBody struct {
	io.ReadCloser
	t      *connTransport
	lc     *loadConn
	keep   bool
	sawEOF bool
	closed bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.sawEOF = true
	}
	return n, err
}

func (b *connBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.ReadCloser.Close()
	if !b.keep || !b.sawEOF || err != nil {
		_ = b.lc.c.Close() // dropped: nothing to report
		return err
	}
	select {
	case b.t.idle <- b.lc:
	default:
		_ = b.lc.c.Close() // dropped: nothing to report
	}
	return nil
}
