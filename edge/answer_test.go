package edge

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestReadAnswerFramesAsNetHTTP reads each raw answer, followed by a
// second one on the same stream as a pipelined connection carries it, with
// readAnswer and with http.ReadResponse (the reference), and wants the
// same status, X-Cache, Age, body size, close decision and error or not,
// and the second answer read at the same place.
func TestReadAnswerFramesAsNetHTTP(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	answers := map[string]string{
		"varnish probe":        "HTTP/1.1 404 absent\r\nDate: x\r\nServer: Varnish\r\nX-Varnish: 32770\r\nContent-Length: 0\r\n\r\n",
		"cached age":           "HTTP/1.1 200 cached age=12.500\r\ncontent-length: 5\r\n\r\nhello",
		"purged with body":     "HTTP/1.1 200 Purged\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 13\r\n\r\n<p>Purged</p>",
		"chunked with trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Cache: MISS\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
		"chunked":              "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nAge: 7\r\nX-Cache: HIT\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
		"connection close":     "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
		"http/1.0":             "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"http/1.0 keep-alive":  "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
		"no length":            "HTTP/1.1 200 OK\r\nX-Cache: HIT\r\n\r\nto the end",
		"204 with no length":   "HTTP/1.1 204 No Content\r\n\r\n",
		"304":                  "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
		"100 continue":         "HTTP/1.1 100 Continue\r\n\r\n",
		"no reason":            "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n",
		"bare LF":              "HTTP/1.1 403 Forbidden\nContent-Length: 3\n\nno!",
		"same lengths twice":   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
		"differing lengths":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"bad length":           "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"gzip coding":          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"bad status code":      "HTTP/1.1 20 OK\r\n\r\n",
		"no status":            "HTTP/1.1\r\n\r\n",
		"bad version":          "HTTP/x 200 OK\r\n\r\n",
		"cut in head":          "HTTP/1.1 200 OK\r\nContent-Len",
		"cut in body":          "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"empty":                "",
	}
	for name, raw := range answers {
		t.Run(name, func(t *testing.T) {
			stream := raw + next
			ref := bufio.NewReader(strings.NewReader(stream))
			want, wantN, wantErr := refAnswer(ref)
			got := bufio.NewReader(strings.NewReader(stream))
			h, n, err := readAnswer(got)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("error %v, net/http's %v", err, wantErr)
			}
			if err != nil {
				return
			}
			if h != want || n != wantN {
				t.Fatalf("read %+v, %d bytes; net/http %+v, %d bytes", h, n, want, wantN)
			}
			rest, _ := io.ReadAll(got)
			refRest, _ := io.ReadAll(ref)
			if string(rest) != string(refRest) {
				t.Fatalf("left %q for the next answer, net/http %q", rest, refRest)
			}
		})
	}
}

// refAnswer is readAnswer done with net/http.
func refAnswer(br *bufio.Reader) (answerHead, int64, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: "PURGE"})
	if err != nil {
		return answerHead{}, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	return headOf(resp), n, err
}
