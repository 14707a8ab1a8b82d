package harness

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// standInIdle is how long a stand-in keeps an idle client connection,
// as Varnish's timeout_idle (5 s by default).
const standInIdle = 5 * time.Second

// edgeServer serves a stand-in's HTTP side: one loop per connection reads
// each request with http.ReadRequest (net/http's parser: framing, bodies,
// Connection) and writes its answer with the reason phrase the handler
// gives, in order, so pipelined requests (RFC 9112 §9.3.2) are answered
// as Varnish answers them and the answers to one batch leave in one write.
// It takes http.Server's place because that one's machinery per request
// (a background read goroutine, a context, deadline resets, a flush per
// answer) was a measured quarter of a fleet-wide purge's CPU with 1,000
// stand-ins in the benchmark's process: cost of the simulator, not of
// cdnflow.
type edgeServer struct {
	h     http.Handler
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	ln    net.Listener
}

// serve accepts connections on srv.ln until it is closed.
func (srv *edgeServer) serve() {
	for {
		c, err := srv.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors: as http.Server, wait and go on
			time.Sleep(5 * time.Millisecond)
			continue
		}
		srv.mu.Lock()
		srv.conns[c] = struct{}{}
		srv.mu.Unlock()
		go srv.serveConn(c)
	}
}

// close stops accepting and closes every open connection.
func (srv *edgeServer) close() {
	_ = srv.ln.Close() // closing is the point; an error leaves nothing to do
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		_ = c.Close()
	}
}

func (srv *edgeServer) serveConn(c net.Conn) {
	defer func() {
		srv.mu.Lock()
		delete(srv.conns, c)
		srv.mu.Unlock()
		_ = c.Close() // the client's side is done or gone
	}()
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		if br.Buffered() == 0 && c.SetReadDeadline(time.Now().Add(standInIdle)) != nil {
			return
		}
		req, err := http.ReadRequest(br)
		var ne net.Error
		if err != nil {
			// The client hung up, or the connection idled out (closed
			// without a word, as Varnish and net/http close it).
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				_, _ = bw.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_ = bw.Flush() // a client that sent garbage may be gone
			}
			return
		}
		req.RemoteAddr = c.RemoteAddr().String()
		w := &standInWriter{header: http.Header{}, conn: c, rw: bufio.NewReadWriter(br, bw)}
		srv.h.ServeHTTP(w, req)
		if w.hijacked {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body) // what the handler left unread
		w.writeAnswer(bw, req)
		if br.Buffered() == 0 || req.Close {
			if bw.Flush() != nil || req.Close {
				return
			}
		}
	}
}

// standInWriter is the http.ResponseWriter of edgeServer: it keeps the
// answer whole and writes it after the handler returns.
type standInWriter struct {
	header   http.Header
	code     int
	reason   string
	body     bytes.Buffer
	conn     net.Conn
	rw       *bufio.ReadWriter
	hijacked bool
}

func (w *standInWriter) Header() http.Header { return w.header }

func (w *standInWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *standInWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

// writeStatus answers code with reason as the status line's reason
// phrase, as the VCL's synth answers ("cached age=<s>").
func (w *standInWriter) writeStatus(code int, reason string) {
	w.WriteHeader(code)
	w.reason = reason
}

// Hijack hands the connection over (a lost request closes it), after
// the answers written before this request.
func (w *standInWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return w.conn, w.rw, w.rw.Flush()
}

// writeAnswer writes the answer: status line, the handler's fields,
// Content-Length (and Content-Type of a body without one, as net/http
// sniffs text), Connection: close when the connection ends after it.
func (w *standInWriter) writeAnswer(bw *bufio.Writer, req *http.Request) {
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	reason := w.reason
	if reason == "" {
		reason = http.StatusText(code)
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteString(" ")
	bw.WriteString(reason)
	bw.WriteString("\r\n")
	if w.body.Len() > 0 && w.header.Get("Content-Type") == "" {
		w.header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.header.Del("Content-Length")
	_ = w.header.Write(bw) // bufio keeps the error for Flush
	bodyless := code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified
	if !bodyless {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.Itoa(w.body.Len()))
		bw.WriteString("\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if !bodyless && req.Method != http.MethodHead {
		_, _ = bw.Write(w.body.Bytes())
	}
}
