package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
)

// answerHead is what cdnflow reads of an edge's answer: the status line
// and the header fields a prewarm or purge acts on.
type answerHead struct {
	// Code is the status code; Status the code and reason phrase as
	// http.Response.Status has them ("404 absent").
	Code   int
	Status string
	// Cache and Age are the X-Cache and Age fields (prewarm receipts).
	Cache, Age string
	// Close: the edge closes the connection after this answer.
	Close bool
}

// headOf is the answerHead of a response net/http read.
func headOf(resp *http.Response) answerHead {
	return answerHead{Code: resp.StatusCode, Status: resp.Status, Cache: resp.Header.Get("X-Cache"),
		Age: resp.Header.Get("Age"), Close: resp.Close}
}

// errAnswerLine is a status or header line longer than the connection's
// read buffer (16 KiB): no edge answer cdnflow reads has one.
var errAnswerLine = errors.New("edge answer: header line longer than the read buffer")

// readAnswer reads one HTTP/1.x answer from br and discards its body
// (RFC 9112 §6: Content-Length, chunked, or until the connection closes),
// answering its head and the body's size. It frames an answer as
// http.ReadResponse does for a request that is not HEAD (1xx, 204 and 304
// have no body; a Transfer-Encoding other than chunked and differing
// Content-Lengths are errors; an answer that ends before its head is
// io.ErrUnexpectedEOF) without building a header map: a purge reads
// one answer per edge and unit, and net/http's allocations per answer
// were a measured share of a fleet-wide purge's CPU. Errors: the
// connection's (deadline, reset), or a malformed answer.
func readAnswer(br *bufio.Reader) (answerHead, int64, error) {
	var h answerHead
	line, err := answerLine(br)
	if err != nil {
		return h, 0, err
	}
	proto, status, ok := bytes.Cut(line, []byte(" "))
	major, minor, vok := http.ParseHTTPVersion(string(proto))
	if !ok || !vok {
		return h, 0, fmt.Errorf("edge answer: malformed status line %q", line)
	}
	status = bytes.TrimLeft(status, " ")
	code, _, _ := bytes.Cut(status, []byte(" "))
	if h.Code, err = strconv.Atoi(string(code)); len(code) != 3 || err != nil || h.Code < 0 {
		return h, 0, fmt.Errorf("edge answer: malformed status code %q", code)
	}
	h.Status = string(status)
	f, err := readFields(br, &h)
	if err != nil {
		return h, 0, err
	}
	h.Close = major < 1 || (major == 1 && minor == 0 && !f.keepAlive) || f.close
	n, err := skipBody(br, &h, f)
	return h, n, err
}

// answerFields are the framing fields of an answer's header.
type answerFields struct {
	length           int64 // -1: none
	chunked          bool
	close, keepAlive bool // Connection tokens
}

// readFields reads header lines up to the blank line, keeping X-Cache and
// Age in h and the framing fields.
func readFields(br *bufio.Reader, h *answerHead) (answerFields, error) {
	f := answerFields{length: -1}
	for {
		line, err := answerLine(br)
		if err != nil {
			return f, err
		}
		if len(line) == 0 {
			return f, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			return f, fmt.Errorf("edge answer: malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (f.length >= 0 && n != f.length) {
				return f, fmt.Errorf("edge answer: bad Content-Length %q", value)
			}
			f.length = n
		case asciiFold(name, "Transfer-Encoding"):
			if !asciiFold(value, "chunked") || f.chunked {
				return f, fmt.Errorf("edge answer: unsupported transfer encoding %q", value)
			}
			f.chunked = true
		case asciiFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				f.close = f.close || asciiFold(tok, "close")
				f.keepAlive = f.keepAlive || asciiFold(tok, "keep-alive")
			}
		case asciiFold(name, "X-Cache") && h.Cache == "":
			h.Cache = string(value)
		case asciiFold(name, "Age") && h.Age == "":
			h.Age = string(value)
		}
	}
}

// skipBody reads and drops the answer's body, answering its size; an
// answer without a length that is not chunked runs to the connection's
// end (h.Close is set).
func skipBody(br *bufio.Reader, h *answerHead, f answerFields) (int64, error) {
	switch {
	case h.Code/100 == 1 || h.Code == http.StatusNoContent || h.Code == http.StatusNotModified:
		return 0, nil
	case f.chunked:
		n, err := io.Copy(io.Discard, httputil.NewChunkedReader(br))
		for err == nil { // the trailer section, up to its blank line
			var line []byte
			if line, err = answerLine(br); err == nil && len(line) == 0 {
				return n, nil
			}
		}
		return n, noEOF(err)
	case f.length >= 0:
		n, err := io.CopyN(io.Discard, br, f.length)
		return n, noEOF(err)
	}
	h.Close = true
	return io.Copy(io.Discard, br)
}

// answerLine is the next line of br without its CRLF (or LF), valid until
// the next read. An answer cut short is io.ErrUnexpectedEOF.
func answerLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errAnswerLine
	}
	if err != nil {
		return nil, noEOF(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// asciiFold reports whether b equals s, ignoring ASCII case.
func asciiFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
