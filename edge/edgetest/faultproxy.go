package edgetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/inventory"
)

// Mode is how a FaultProxy treats the connections it accepts.
type Mode struct {
	kind  modeKind
	delay time.Duration
	code  int
}

type modeKind int

const (
	kindPass modeKind = iota
	kindSlow
	kindStatus
	kindReset
	kindDelayControl
)

// Pass forwards bytes both ways unchanged.
func Pass() Mode { return Mode{kind: kindPass} }

// Slow holds each new connection for d before forwarding anything, so a
// client with a shorter timeout gives up first (its request times out; a
// Varnish CLI client waits for a greeting that does not come in time).
func Slow(d time.Duration) Mode { return Mode{kind: kindSlow, delay: d} }

// Status answers every HTTP request itself with code and closes the
// connection; nothing reaches the edge. For HTTP listeners only.
func Status(code int) Mode { return Mode{kind: kindStatus, code: code} }

// Reset accepts a connection, waits briefly for the client's first bytes
// (a request), then closes with a TCP RST, so the client reads "connection
// reset by peer".
func Reset() Mode { return Mode{kind: kindReset} }

// DelayControl forwards bytes both ways but holds the first bytes of
// each burst of control requests (PURGE, BAN: a client read that begins
// with one of those request lines, d or longer after the connection's
// previous control read) for d, so an edge's purge takes d longer while its visitor traffic (GET,
// HEAD) passes at once. The requests of one pipelined burst are held once.
func DelayControl(d time.Duration) Mode { return Mode{kind: kindDelayControl, delay: d} }

func (m Mode) String() string {
	switch m.kind {
	case kindDelayControl:
		return fmt.Sprintf("delay-control(%s)", m.delay)
	case kindSlow:
		return fmt.Sprintf("slow(%s)", m.delay)
	case kindStatus:
		return fmt.Sprintf("status(%d)", m.code)
	case kindReset:
		return "reset"
	default:
		return "pass"
	}
}

// resetWait bounds how long Reset waits for the client to speak first
// (HTTP clients do; a Varnish CLI client waits for the greeting).
const resetWait = 100 * time.Millisecond

// FaultProxy is a loopback TCP proxy put in front of an edge's HTTP or admin
// address, whose behaviour a test switches at runtime.
//
// A mode applies to connections accepted after it is set. Switching to a
// fault mode also drops the connections opened in Pass mode, so clients
// that keep connections alive cannot bypass the fault; Status and Reset
// close every connection they handle, so after switching back to Pass the
// next request of any client dials again and passes.
type FaultProxy struct {
	target string
	ln     net.Listener

	mode     atomic.Pointer[Mode]
	accepted atomic.Int64
	faulted  atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]modeKind // client side of open connections
	closed chan struct{}
	wg     sync.WaitGroup
}

// NewFaultProxy listens on a free loopback port and forwards to target
// (host:port) in Pass mode until told otherwise.
func NewFaultProxy(target string) (*FaultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy listen: %w", err)
	}
	p := &FaultProxy{target: target, ln: ln, conns: map[net.Conn]modeKind{}, closed: make(chan struct{})}
	p.mode.Store(&Mode{})
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// StartFaultProxy is NewFaultProxy closed when the test ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	p, err := NewFaultProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr is the host:port clients dial instead of the target.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Mode is the current mode.
func (p *FaultProxy) Mode() Mode { return *p.mode.Load() }

// SetMode switches the mode for connections accepted from now on.
func (p *FaultProxy) SetMode(m Mode) {
	p.mode.Store(&m)
	if m.kind == kindPass {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, k := range p.conns {
		if k == kindPass {
			_ = c.Close()
		}
	}
}

// Accepted counts the connections accepted so far.
func (p *FaultProxy) Accepted() int64 { return p.accepted.Load() }

// Faulted counts the connections a fault mode handled (answered with a
// status, reset, or held back) so far.
func (p *FaultProxy) Faulted() int64 { return p.faulted.Load() }

// Close stops listening, drops every open connection and waits for the
// proxy's goroutines.
func (p *FaultProxy) Close() error {
	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return nil
	default:
	}
	close(p.closed)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *FaultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		m := p.Mode()
		if !p.track(c, m.kind) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c, m)
		}()
	}
}

func (p *FaultProxy) track(c net.Conn, k modeKind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		return false
	default:
	}
	p.conns[c] = k
	return true
}

func (p *FaultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *FaultProxy) handle(c net.Conn, m Mode) {
	switch m.kind {
	case kindSlow:
		p.faulted.Add(1)
		select {
		case <-time.After(m.delay):
		case <-p.closed:
			return
		}
		p.pipe(c)
	case kindStatus:
		p.faulted.Add(1)
		answerStatus(c, m.code)
	case kindReset:
		p.faulted.Add(1)
		_ = c.SetReadDeadline(time.Now().Add(resetWait))
		_, _ = c.Read(make([]byte, 4096))
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close sends RST instead of FIN
		}
	case kindDelayControl:
		p.pipeWith(c, func(dst, src net.Conn) (int64, error) { return p.copyDelayingControl(dst, src, m.delay) })
	default:
		p.pipe(c)
	}
}

// copyDelayingControl is io.Copy from a client to the edge that holds a
// read beginning with a control request line for d, unless the previous
// control read was forwarded less than d before it (the same burst).
func (p *FaultProxy) copyDelayingControl(dst, src net.Conn, d time.Duration) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	var last time.Time // the last control read forwarded
	for {
		k, err := src.Read(buf)
		if k > 0 && isControl(buf[:k]) {
			if time.Since(last) >= d {
				p.faulted.Add(1)
				select {
				case <-time.After(d):
				case <-p.closed:
					return n, net.ErrClosed
				}
			}
			last = time.Now()
		}
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
}

// isControl: b begins with a PURGE or BAN request line.
func isControl(b []byte) bool {
	return bytes.HasPrefix(b, []byte("PURGE ")) || bytes.HasPrefix(b, []byte("BAN "))
}

// answerStatus reads one request and answers it with code, asking the
// client to close the connection.
func answerStatus(c net.Conn, code int) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
	body := fmt.Sprintf("fault proxy: %d %s\n", code, http.StatusText(code))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// pipe forwards c to the target until either side closes.
func (p *FaultProxy) pipe(c net.Conn) {
	p.pipeWith(c, func(dst, src net.Conn) (int64, error) { return io.Copy(dst, src) })
}

// pipeWith is pipe with the client's bytes to the target copied by
// upCopy.
func (p *FaultProxy) pipeWith(c net.Conn, upCopy func(dst, src net.Conn) (int64, error)) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the client sees the connection closed, as if the edge were down
	}
	defer func() { _ = up.Close() }() // both copies are done; a close error has no one to tell
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, copyFn func(dst, src net.Conn) (int64, error)) {
		_, err := copyFn(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok && (err == nil || errors.Is(err, io.EOF)) {
			_ = tc.CloseWrite() // pass the half-close on
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(up, c, upCopy)
	go cp(c, up, func(dst, src net.Conn) (int64, error) { return io.Copy(dst, src) })
	<-done
	// One direction ended: the other follows when its peer closes, or now
	// if the connection was dropped.
	select {
	case <-done:
	case <-p.closed:
		_ = up.Close()
		_ = c.Close()
		<-done
	}
}

// Via returns a copy of e whose HTTP address goes through httpProxy and,
// when admin is not nil, whose admin (Varnish CLI) address goes through
// admin. A nil httpProxy leaves the HTTP address as it is.
func Via(e inventory.Edge, httpProxy, admin *FaultProxy) inventory.Edge {
	if httpProxy != nil {
		e.Address = httpProxy.Addr()
	}
	if admin != nil {
		e.AdminAddress = admin.Addr()
	}
	return e
}
