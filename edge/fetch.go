package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/cdnflow/cdnflow/inventory"
)

// Fetch GETs r.Path from edge e with Host r.Host and reads the whole body,
// which is what makes the edge store it. The result's Cached says the edge
// kept the object (2xx and X-Cache HIT or MISS); any other answer is a
// *StatusError. r.Scheme other than http or https, a path without a
// leading / or https to an edge without an HTTPS address is
// ErrInvalidRequest; a transport failure or a timeout (r.Timeout, else
// Options.Timeout) is returned wrapped with the edge's id.
func (c *Client) Fetch(ctx context.Context, e inventory.Edge, r FetchRequest) (FetchResult, error) {
	return c.Fetcher(ctx, e, r.Header, r.Timeout).Fetch(ctx, r.Scheme, r.Host, r.Path)
}

// Fetcher GETs many objects through one edge with one request header and
// one per-GET timeout, as a prewarm chunk does: the edge's client, its
// base URLs and the header are resolved once, not per GET.
// Safe for concurrent use.
type Fetcher struct {
	c       *Client
	e       inventory.Edge
	hc      *http.Client // plain HTTP: traced or not, as the creating ctx
	header  http.Header  // sent as is by every GET; never modified
	timeout time.Duration
	httpURL string // "http://" + e.Address
	wire    string // header as FetchBatch writes it (wireHeader); "" when it cannot
}

// FetchMarkerHeader: FetchMarker marks every GET of a Fetcher (prewarm,
// the rollout health gate) so the edge's live traffic does not count it
// as a visitor's (edge/traffic.Parse; docs/console.md).
const (
	FetchMarkerHeader = "X-Cdnflow-Fetch"
	FetchMarker       = "control"
)

// Fetcher returns a Fetcher for edge e: every GET sends header (keys
// canonicalised, plus Accept-Encoding "gzip, deflate, br" unless header
// sets it, so the edge warms the variant browsers ask for, and
// FetchMarkerHeader) and gives up
// after timeout (0: Options.Timeout). ctx decides, as for every request of
// this client, whether GETs are traced spans (edgeClient); the GETs
// themselves run in the ctx given to Fetch.
func (c *Client) Fetcher(ctx context.Context, e inventory.Edge, header http.Header, timeout time.Duration) *Fetcher {
	h := http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
	for k, v := range header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	h[FetchMarkerHeader] = []string{FetchMarker}
	if timeout == 0 {
		timeout = c.opts.Timeout
	}
	return &Fetcher{c: c, e: e, hc: c.edgeClient(ctx, e.Address), header: h, timeout: timeout, httpURL: "http://" + e.Address, wire: wireHeader(h)}
}

// Fetch GETs path (path and query, starting with /) with Host host over
// scheme (http when empty, or https) and reads the whole body; result and
// errors as Client.Fetch.
func (f *Fetcher) Fetch(ctx context.Context, scheme, host, path string) (FetchResult, error) {
	start := time.Now()
	hc, base, err := f.c.route(f.e, scheme, host, path, f.hc, f.httpURL)
	if err != nil {
		return FetchResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return FetchResult{}, fmt.Errorf("%w: GET %s: %v", ErrInvalidRequest, path, err)
	}
	req.Host = host
	req.Header = f.header // read only: net/http sends it, otelhttp clones before it injects
	resp, err := hc.Do(req)
	if err != nil {
		return FetchResult{Duration: time.Since(start)}, fmt.Errorf("GET %s via edge %s: %w", path, f.e.ID, err)
	}
	n, copyErr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if copyErr != nil {
		copyErr = fmt.Errorf("read body via edge %s: %w", f.e.ID, copyErr)
	}
	return fetched(resp, n, time.Since(start), copyErr)
}

// fetched reads an edge's answer to a prewarm GET whose body (n bytes)
// has been read, as Fetch documents it; bodyErr is the failure reading it.
func fetched(resp *http.Response, n int64, d time.Duration, bodyErr error) (FetchResult, error) {
	res := FetchResult{
		Status:   resp.StatusCode,
		Cache:    resp.Header.Get("X-Cache"),
		Bytes:    n,
		Duration: d,
	}
	res.Age, _ = strconv.Atoi(resp.Header.Get("Age"))
	if bodyErr != nil {
		return res, bodyErr
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	res.Cached = ok2xx && (res.Cache == "HIT" || res.Cache == "MISS")
	if !res.Cached {
		return res, &StatusError{Code: resp.StatusCode, Cache: res.Cache}
	}
	return res, nil
}

// FetchUnit is one object of Fetcher.FetchBatch: the scheme (http when
// empty, or https), the Host header and the request target (path and
// query, starting with /).
type FetchUnit struct{ Scheme, Host, Path string }

// FetchAnswer is one unit's outcome, as Fetch answers it.
type FetchAnswer struct {
	Result FetchResult
	Err    error
}

// FetchBatch is Fetch for every unit, one answer per unit in units'
// order. Plain-HTTP units are pipelined (HTTP/1.1, RFC 9112 §9.3.2) on one
// of the edge's keep-alive connections, all written at once (so keep
// batches to a few, up to MaxPipelined) and answered in order, each answer
// within the Fetcher's timeout of the one before; Varnish serves a
// connection's requests one after the other, so a batch costs one edge
// worker, not one per unit, and saves a round trip and a wakeup per GET.
// An answer's Duration runs from the batch's write. A unit left without an
// answer (the connection broke, the context ended) has a transport error;
// answers already read stand.
//
// HTTPS units, every unit when ctx carries a trace (each GET keeps its
// client span), and every unit when the Fetcher's header cannot be written
// as is go through Fetch one by one. Errors per unit as Fetch.
func (f *Fetcher) FetchBatch(ctx context.Context, units []FetchUnit) []FetchAnswer {
	out := make([]FetchAnswer, len(units))
	pipe := f.wire != "" && !trace.SpanContextFromContext(ctx).IsValid()
	pending := make([]int, 0, len(units))
	for i, u := range units {
		if !pipe || (u.Scheme != "" && u.Scheme != "http") {
			out[i].Result, out[i].Err = f.Fetch(ctx, u.Scheme, u.Host, u.Path)
			continue
		}
		if err := checkTarget(u.Host, u.Path); err != nil {
			out[i].Err = err
			continue
		}
		pending = append(pending, i)
	}
	f.c.pipelined(ctx, f.e, pending, pipeExchange{
		method:  http.MethodGet,
		timeout: f.timeout,
		write: func(w *bufio.Writer, i int) {
			w.WriteString("GET ")
			w.WriteString(units[i].Path)
			w.WriteString(" HTTP/1.1\r\nHost: ")
			w.WriteString(units[i].Host)
			w.WriteString("\r\n")
			w.WriteString(f.wire)
		},
		answer: func(i int, resp *http.Response, n int64, sent time.Time) {
			out[i].Result, out[i].Err = fetched(resp, n, time.Since(sent), nil)
		},
		fail: func(i int, err error) { out[i].Err = err },
	})
	return out
}

// wireHeader is header as the lines net/http would send after Host
// (its default User-Agent unless header sets one), ending the request
// with a blank line; "" when a name or value cannot be written as is
// (RFC 9110 §5.1, §5.5) or the header names framing, connection or
// expectation fields that a pipelined GET must not carry (an Expect could
// draw a 1xx interim answer that would shift every later answer).
func wireHeader(header http.Header) string {
	var b strings.Builder
	if _, ok := header["User-Agent"]; !ok {
		b.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	for _, k := range slices.Sorted(maps.Keys(header)) {
		switch k {
		case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Trailer", "Upgrade",
			"Expect", "Te", "Keep-Alive", "Proxy-Connection":
			return ""
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return ""
		}
		for _, v := range header[k] {
			if !httpguts.ValidHeaderFieldValue(v) {
				return ""
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}
