// Package origin is a small, fast HTTP origin for `cdnflow dev`, tests and
// benchmarks. It serves a deterministic body for any path and a few special
// paths that misbehave on purpose, so edge and job outcomes can be checked.
package origin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Handler serves:
//
//	/status/<code>/...   answers <code>
//	/slow/<ms>/...       waits <ms> before answering
//	/nocache/...         Cache-Control: no-store (edges must not keep it)
//	/tag/<a,b>/...       Surrogate-Key: a b
//	anything else        200, Cache-Control: public, max-age=3600
//
// Every response names the Host and path it saw, so tests can tell which
// origin path an edge fetched.
type Handler struct {
	// BodySize pads bodies to this many bytes (default: small).
	BodySize int
	// Generation is the content version served (X-Origin-Generation and
	// the body): a test bumps it to tell an old copy from a new one.
	Generation atomic.Int64
	requests   atomic.Int64
}

// Requests counts the requests served so far.
func (h *Handler) Requests() int64 { return h.requests.Load() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	path := r.URL.Path
	status := http.StatusOK
	w.Header().Set("Cache-Control", "public, max-age=3600")
	switch {
	case strings.HasPrefix(path, "/status/"):
		code, err := strconv.Atoi(segment(path, 1))
		if err == nil && code >= 200 && code <= 599 {
			status = code
		}
	case strings.HasPrefix(path, "/slow/"):
		ms, _ := strconv.Atoi(segment(path, 1))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	case strings.HasPrefix(path, "/nocache/"):
		w.Header().Set("Cache-Control", "no-store")
	case strings.HasPrefix(path, "/tag/"):
		w.Header().Set("Surrogate-Key", strings.ReplaceAll(segment(path, 1), ",", " "))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Origin-Host", r.Host)
	w.Header().Set("X-Origin-Path", r.URL.RequestURI())
	gen := h.Generation.Load()
	w.Header().Set("X-Origin-Generation", strconv.FormatInt(gen, 10))
	body := fmt.Sprintf("cdnflow demo origin\nhost=%s\npath=%s\n", r.Host, r.URL.RequestURI())
	if gen != 0 {
		body += fmt.Sprintf("generation=%d\n", gen)
	}
	if pad := h.BodySize - len(body); pad > 0 {
		body += strings.Repeat(".", pad-1) + "\n"
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// segment returns the i-th segment of a /a/b/c path.
func segment(path string, i int) string {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}
