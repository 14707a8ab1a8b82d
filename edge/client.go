// Package edge talks HTTP to cache edges: GET through an edge to prewarm,
// PURGE and BAN to evict. Requests go to the inventory edge's own address
// with the content's Host header; the URL's host is never dialled, so no
// request can reach an address outside the inventory.
//
// Control requests (PURGE, BAN, the cache-only probe, the site table)
// carry the edge's control token in connector.HeaderControl: the edge's
// VCL refuses them without it (403), from inside its purge ACL too. The
// token is connector.ControlTokenFile of the inventory edge's SecretFile:
// read once per file for the process and again when the file changes.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// Options tune the client.
type Options struct {
	// Timeout bounds one prewarm GET when the caller gives none (and, in
	// a pipelined batch, each answer after the previous one); it is also
	// the timeout of every kind of call below left at 0 (default 10 s).
	Timeout time.Duration
	// PurgeTimeout bounds one PURGE (Purge, PurgeTag, PurgeVerified) and,
	// in a pipelined batch (PurgeVerifiedBatch), each answer after the
	// previous one.
	PurgeTimeout time.Duration
	// BanTimeout bounds one BAN (BanPrefix, BanURLRegex).
	BanTimeout time.Duration
	// SiteTimeout bounds one call to an edge's site table (Table, PutSite,
	// DeleteSite).
	SiteTimeout time.Duration
	// ProbeTimeout bounds one cache-only probe (Probe).
	ProbeTimeout time.Duration
	// InsecureSkipVerify accepts any certificate on HTTPS edges (self-signed
	// test edges); production edges present the distribution's certificate.
	InsecureSkipVerify bool
	// MaxConnsPerEdge caps connections to one edge (default 64).
	MaxConnsPerEdge int
}

// Client is safe for concurrent use; share one per process.
type Client struct {
	opts Options
	// base is the plain-HTTP transport every per-edge transport is cloned
	// from (then traced).
	base  *http.Transport
	plain *http.Client
	tls   *http.Transport

	// byEdge holds one plain-HTTP client, with its own transport, per edge
	// address: each edge keeps its keep-alive connections in a
	// pool of its own, reused by every purge and prewarm of this process.
	byEdge sync.Map // address → *edgeClients
	edges  atomic.Int64
	// pipes holds each edge's idle pipelined connections
	// (PurgeVerifiedBatch), by address.
	pipes sync.Map // address → *pipes

	mu sync.Mutex
	// bySNI holds one HTTPS client per server name: a transport pools
	// connections by address only, and a connection made for one SNI must
	// not carry requests for another name.
	bySNI map[string]*http.Client
}

// maxSNIClients bounds bySNI; past it the oldest idle connections are
// closed and the map starts over, so a run over many domains cannot grow
// file descriptors without limit.
const maxSNIClients = 256

func (c *Client) tlsClient(sni string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.bySNI[sni]; ok {
		return hc
	}
	if c.bySNI == nil || len(c.bySNI) >= maxSNIClients {
		for _, old := range c.bySNI {
			old.CloseIdleConnections()
		}
		c.bySNI = make(map[string]*http.Client)
	}
	tr := c.tls.Clone()
	tr.TLSClientConfig.ServerName = sni
	hc := &http.Client{Transport: traced(tr), CheckRedirect: c.plain.CheckRedirect}
	c.bySNI[sni] = hc
	return hc
}

// maxEdgeClients bounds byEdge like maxSNIClients bounds bySNI.
const maxEdgeClients = 4096

// edgeClients are the plain-HTTP clients of one edge: both share one
// transport (one pool of keep-alive connections); traced wraps it in
// otelhttp, untraced does not.
type edgeClients struct{ traced, untraced *http.Client }

// edgeClient is the plain-HTTP client of the edge at addr for a request
// made in ctx: traced when ctx carries a span (a recording one with
// tracing on, or a caller's traceparent to pass on), else the bare
// transport: otelhttp's per-request span and metric attribute sets cost
// a quarter of a large purge's CPU with tracing off, for spans and
// headers that are no-ops then.
func (c *Client) edgeClient(ctx context.Context, addr string) *http.Client {
	withSpan := trace.SpanContextFromContext(ctx).IsValid()
	if ec, ok := c.byEdge.Load(addr); ok {
		return ec.(*edgeClients).pick(withSpan)
	}
	if c.edges.Load() >= maxEdgeClients {
		return c.plain
	}
	tr := c.base.Clone()
	ec := &edgeClients{
		traced:   &http.Client{Transport: traced(tr), CheckRedirect: c.plain.CheckRedirect},
		untraced: &http.Client{Transport: tr, CheckRedirect: c.plain.CheckRedirect},
	}
	got, loaded := c.byEdge.LoadOrStore(addr, ec)
	if !loaded {
		c.edges.Add(1)
	}
	return got.(*edgeClients).pick(withSpan)
}

func (ec *edgeClients) pick(traced bool) *http.Client {
	if traced {
		return ec.traced
	}
	return ec.untraced
}

// NewClient builds a client with pooled connections per edge.
func NewClient(opts Options) *Client {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	for _, t := range []*time.Duration{&opts.PurgeTimeout, &opts.BanTimeout, &opts.SiteTimeout, &opts.ProbeTimeout} {
		if *t == 0 {
			*t = opts.Timeout
		}
	}
	if opts.MaxConnsPerEdge == 0 {
		opts.MaxConnsPerEdge = 64
	}
	base := &http.Transport{
		Proxy:               nil, // edges are dialled directly, never via $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: opts.MaxConnsPerEdge,
		MaxConnsPerHost:     opts.MaxConnsPerEdge,
		IdleConnTimeout:     90 * time.Second,
		// Accept-Encoding is sent as the caller asks so the edge warms the
		// variant real clients request; Go must not rewrite it.
		DisableCompression: true,
	}
	tlsTransport := base.Clone()
	tlsTransport.TLSClientConfig = &tls.Config{InsecureSkipVerify: opts.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for test edges
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		opts:  opts,
		base:  base,
		plain: &http.Client{Transport: traced(base), CheckRedirect: noRedirect},
		tls:   tlsTransport,
	}
}

// traced wraps tr so that every request to an edge is a client span of
// the caller's context (an activity's, so the job's trace) and carries its
// traceparent to the edge, which passes it on to the origin on a miss.
// With tracing off (internal/tracing) the spans are no-ops, and a
// traceparent is sent only when the job's request came with one.
func traced(tr *http.Transport) http.RoundTripper {
	return tracedTransport{
		RoundTripper: otelhttp.NewTransport(tr, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "edge " + r.Method
		})),
		base: tr,
	}
}

// tracedTransport keeps CloseIdleConnections, which otelhttp's transport
// does not pass on: tlsClient closes the pools it drops with it.
type tracedTransport struct {
	http.RoundTripper
	base *http.Transport
}

func (t tracedTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// RoundTrip sends r through otelhttp when its context belongs to a trace,
// and straight to the transport otherwise: with tracing off and no
// traceparent from the job's request there is no span to record and
// nothing to propagate, and otelhttp's per-request work (span, attributes,
// metric options) costs ~5 % of the worker's CPU in a prewarm
// (docs/performance.md). With tracing on, every caller (an activity, an
// API request) has a span, so every edge request stays in its trace.
func (t tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return t.base.RoundTrip(r)
	}
	return t.RoundTripper.RoundTrip(r)
}

// FetchRequest is one GET through an edge.
type FetchRequest struct {
	Scheme  string // http (default) or https
	Host    string // the distribution's host name
	Path    string // path and query, starting with /
	Header  http.Header
	Timeout time.Duration
}

// FetchResult describes what the edge answered.
type FetchResult struct {
	Status   int           `json:"status"`
	Cache    string        `json:"cache"`
	Age      int           `json:"age"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration"`
	// Cached: 2xx and the edge kept the object (MISS that was stored, or HIT).
	Cached bool `json:"cached"`
}

// StatusError is an HTTP answer that is not the success the caller wanted.
type StatusError struct {
	Code  int
	Cache string
}

func (e *StatusError) Error() string {
	if e.Code >= 200 && e.Code < 300 {
		return fmt.Sprintf("edge answered %d but did not cache it (X-Cache %q)", e.Code, e.Cache)
	}
	return fmt.Sprintf("edge answered HTTP %d", e.Code)
}

// ErrInvalidRequest wraps requests the client refuses to send.
var ErrInvalidRequest = errors.New("invalid edge request")

// IsRetryable: connection failures, timeouts and 5xx may pass; 4xx and
// "not cacheable" will not change on retry.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	// The caller gave up (a per-request timeout is a deadline instead), or
	// the request can never be sent.
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalidRequest) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests || se.Code == http.StatusRequestTimeout
	}
	return true
}

func (c *Client) do(ctx context.Context, e inventory.Edge, method, scheme, host, path string, header http.Header, timeout time.Duration) (*http.Response, error) {
	if timeout == 0 {
		timeout = c.opts.Timeout
	}
	hc, base, err := c.route(e, scheme, host, path, c.edgeClient(ctx, e.Address), "http://"+e.Address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %s %s: %v", ErrInvalidRequest, method, path, err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s via edge %s: %w", method, path, e.ID, err)
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// route checks path (it must start with /) and scheme, and picks the
// client and base URL ("scheme://address") of edge e: plain and plainURL
// for http (or no scheme), the SNI client of host and e's HTTPS address for
// https. A bad path or scheme, or https to an edge without an HTTPS
// address, is ErrInvalidRequest.
func (c *Client) route(e inventory.Edge, scheme, host, path string, plain *http.Client, plainURL string) (*http.Client, string, error) {
	if path == "" || path[0] != '/' {
		return nil, "", fmt.Errorf("%w: path %q must start with /", ErrInvalidRequest, path)
	}
	switch scheme {
	case "", "http":
		return plain, plainURL, nil
	case "https":
		if e.HTTPSAddress == "" {
			return nil, "", fmt.Errorf("%w: edge %s has no HTTPS address", ErrInvalidRequest, e.ID)
		}
		return c.tlsClient(hostOnly(host)), "https://" + e.HTTPSAddress, nil
	default:
		return nil, "", fmt.Errorf("%w: scheme %q (valid: http, https)", ErrInvalidRequest, scheme)
	}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Purge evicts the object host+path (soft: mark stale, serve while revalidating).
func (c *Client) Purge(ctx context.Context, e inventory.Edge, host, path string, soft bool) error {
	h := http.Header{}
	if soft {
		h.Set("X-Purge-Soft", "1")
	}
	_, err := c.expectOK(ctx, e, "PURGE", host, path, h, c.opts.PurgeTimeout)
	return err
}

// PurgeTag evicts every object of host tagged with the surrogate key tag and
// returns how many objects the edge dropped.
func (c *Client) PurgeTag(ctx context.Context, e inventory.Edge, host, tag string, soft bool) (int, error) {
	if tag == "" || strings.ContainsAny(tag, " \t\r\n,") {
		return 0, fmt.Errorf("%w: tag %q must be one token without white space or commas", ErrInvalidRequest, tag)
	}
	h := http.Header{"X-Purge-Tag": {tag}}
	if soft {
		h.Set("X-Purge-Soft", "1")
	}
	resp, err := c.expectOK(ctx, e, "PURGE", host, "/", h, c.opts.PurgeTimeout)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(resp.Header.Get("X-Purged-Count"))
	return n, nil
}

// BanPrefix invalidates every object of host whose URL starts with prefix;
// an empty prefix invalidates the whole host and nothing else.
func (c *Client) BanPrefix(ctx context.Context, e inventory.Edge, host, prefix string) error {
	h := http.Header{}
	if prefix != "" {
		re, err := PrefixRegex(prefix)
		if err != nil {
			return err
		}
		h.Set("X-Ban-Url-Regex", re)
	}
	_, err := c.expectOK(ctx, e, "BAN", host, "/", h, c.opts.BanTimeout)
	return err
}

// controlToken is edge e's control token (see the package comment).
// Errors: the secret file was never readable.
func controlToken(e inventory.Edge) (string, error) {
	tok, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		return "", fmt.Errorf("edge %s: %w", e.ID, err)
	}
	return tok, nil
}

// doControl is do for a control request over plain HTTP: h (changed)
// gets e's control token.
func (c *Client) doControl(ctx context.Context, e inventory.Edge, method, host, path string, h http.Header, timeout time.Duration) (*http.Response, error) {
	tok, err := controlToken(e)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	h.Set(connector.HeaderControl, tok)
	return c.do(ctx, e, method, "http", host, path, h, timeout)
}

func (c *Client) expectOK(ctx context.Context, e inventory.Edge, method, host, path string, h http.Header, timeout time.Duration) (*http.Response, error) {
	resp, err := c.doControl(ctx, e, method, host, path, h, timeout)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, fmt.Errorf("%s %s on edge %s: %w", method, path, e.ID, &StatusError{Code: resp.StatusCode})
	}
	return resp, nil
}

// PrefixRegex turns a URL prefix into the anchored PCRE the edge's BAN
// expects: "/img/" becomes "^/img/", "/v1.2/" becomes "^/v1\.2/". The edge
// refuses white space and double quotes in ban arguments (they would split
// or re-quote the ban expression), so prefixes with them are rejected here
// with a clearer message; URLs carry those characters percent-encoded.
func PrefixRegex(prefix string) (string, error) {
	if !strings.HasPrefix(prefix, "/") {
		return "", fmt.Errorf("%w: ban prefix %q must start with /", ErrInvalidRequest, prefix)
	}
	for _, r := range prefix {
		if r <= ' ' || r == '"' || r == 0x7f {
			return "", fmt.Errorf("%w: ban prefix %q contains %q; percent-encode it as in the URL", ErrInvalidRequest, prefix, r)
		}
	}
	return "^" + regexp.QuoteMeta(prefix), nil
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}
