package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

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
// one per-GET timeout, as a prewarm chunk does (issue 19): the edge's
// client, its base URLs and the header are resolved once, not per GET.
// Safe for concurrent use.
type Fetcher struct {
	c       *Client
	e       inventory.Edge
	hc      *http.Client // plain HTTP: traced or not, as the creating ctx
	header  http.Header  // sent as is by every GET; never modified
	timeout time.Duration
	httpURL string // "http://" + e.Address
}

// Fetcher returns a Fetcher for edge e: every GET sends header (keys
// canonicalised, plus Accept-Encoding "gzip, deflate, br" unless header
// sets it, so the edge warms the variant browsers ask for) and gives up
// after timeout (0: Options.Timeout). ctx decides, as for every request of
// this client, whether GETs are traced spans (edgeClient); the GETs
// themselves run in the ctx given to Fetch.
func (c *Client) Fetcher(ctx context.Context, e inventory.Edge, header http.Header, timeout time.Duration) *Fetcher {
	h := http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
	for k, v := range header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if timeout == 0 {
		timeout = c.opts.Timeout
	}
	return &Fetcher{c: c, e: e, hc: c.edgeClient(ctx, e.Address), header: h, timeout: timeout, httpURL: "http://" + e.Address}
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
	res := FetchResult{
		Status:   resp.StatusCode,
		Cache:    resp.Header.Get("X-Cache"),
		Bytes:    n,
		Duration: time.Since(start),
	}
	res.Age, _ = strconv.Atoi(resp.Header.Get("Age"))
	if copyErr != nil {
		return res, fmt.Errorf("read body via edge %s: %w", f.e.ID, copyErr)
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	res.Cached = ok2xx && (res.Cache == "HIT" || res.Cache == "MISS")
	if !res.Cached {
		return res, &StatusError{Code: resp.StatusCode, Cache: res.Cache}
	}
	return res, nil
}
