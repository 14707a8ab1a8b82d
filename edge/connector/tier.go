package connector

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/metrics"
)

// Tiered fill (docs/tiers.md). A child edge's connector sends a miss to
// its parent edge (the shield, inventory `parent`) instead of the origin:
// the same method, path and query and the visitor's Host, so the shield
// serves it by the same site table entry (the distribution's rules) and
// only the shield fetches from the origin. When the shield cannot be
// reached (the connection fails: nothing was sent) and fallback is on,
// the request goes to the origin as if the edge had no parent, the answer
// carries HeaderTierFallback and cdnflow_edge_parent_fallback_total
// counts it.

// HeaderTierFallback is set on an answer fetched from the origin because
// the edge's parent could not be reached: "origin; parent=<id>". Varnish
// stores it with the object, so every hit of such a copy shows it.
const HeaderTierFallback = "X-Tier-Fallback"

// Parent is the edge a child's connector fetches misses from.
type Parent struct {
	// ID is the parent's inventory id (reports, metric label).
	ID string
	// Address is host:port of the parent edge's HTTP listener (its
	// inventory address).
	Address string
	// Fallback sends a request to the origin when the parent cannot be
	// reached (--parent-fallback); false answers 502 instead.
	Fallback bool
}

// DefaultParentConnections is a child connector's connections to its
// parent edge when Options.ParentConnections is 0: fetches beyond it wait
// for one of them (in order) instead of opening more. Measured with
// `bench/prewarm -tiered` (docs/tiers.md, "Measured"), ten children of
// one shield: up to 64 per child cost 12.6 ms CPU per URL (varnishd and
// cdnflow), 8 per child 8.6 ms. A Varnish session that idled past
// timeout_linger is handed back to the waiter, and its next request
// costs thread wake-ups: fewer, busier sessions stay with their thread.
const DefaultParentConnections = 8

var parentFallbackTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cdnflow_edge_parent_fallback_total",
	Help: "Misses a child edge fetched from the origin because its parent (shield) could not be reached, by parent.",
}, []string{"parent"})

func init() { metrics.Registry.MustRegister(parentFallbackTotal) }

// tierState is a connector's parent and its pool; nil parent: a root.
type tierState struct {
	parent    atomic.Pointer[Parent]
	transport *http.Transport
	fallbacks atomic.Uint64
}

func newTierState(o Options) *tierState {
	n := o.ParentConnections
	if n <= 0 {
		n = DefaultParentConnections
	}
	ts := &tierState{transport: &http.Transport{
		Proxy: nil,
		// The parent is an inventory address, not an origin: the origin
		// address policy does not apply (a shield may be on loopback or a
		// private network).
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		// At most n connections to the parent, each kept for the next
		// fetch: the shield sees n busy sessions per child, not one per
		// fetch under way.
		MaxConnsPerHost:     n,
		MaxIdleConnsPerHost: n,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}}
	if o.Parent != nil && o.Parent.Address != "" {
		p := *o.Parent
		ts.parent.Store(&p)
	}
	return ts
}

// SetParent makes p this edge's parent (nil: none, fetch from the
// origin). The inventory decides it; tests set it once the parent's
// address is known.
func (c *Connector) SetParent(p *Parent) {
	if p == nil || p.Address == "" {
		c.tier.parent.Store(nil)
		return
	}
	cp := *p
	c.tier.parent.Store(&cp)
}

// ParentFallbacks counts the misses fetched from the origin since start
// because the parent could not be reached.
func (c *Connector) ParentFallbacks() uint64 { return c.tier.fallbacks.Load() }

// viaParent fetches req from the parent edge with the visitor's Host and
// answers that parent (the one asked, whatever SetParent did since). from
// nil: no parent, or the parent could not be reached and fallback is on
// (counted and logged): the caller fetches from the origin. Errors: an
// *OriginError naming the parent (KindConnect when it refused the
// connection) when its fetch failed and the origin is not asked instead.
func (c *Connector) viaParent(req *http.Request, tg *target) (resp *http.Response, from *Parent, err error) {
	p := c.tier.parent.Load()
	if p == nil {
		return nil, nil, nil
	}
	po := parentOrigin(p)
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", p.Address, tg.visitorHost
	resp, err = c.tier.transport.RoundTrip(out)
	if err == nil {
		return resp, p, nil
	}
	var op *net.OpError
	down := errors.As(err, &op) && op.Op == "dial" && req.Context().Err() == nil
	oe := &OriginError{Origin: po, Kind: KindHTTP, Err: fmt.Errorf("parent edge %s: %w", p.ID, err)}
	if down {
		oe.Kind = KindConnect
	}
	replayable := req.Body == nil || req.Body == http.NoBody
	if !down || !p.Fallback || !replayable {
		return nil, nil, oe
	}
	c.tier.fallbacks.Add(1)
	parentFallbackTotal.WithLabelValues(p.ID).Inc()
	c.log.Warn("parent edge unreachable: fetching from the origin", zap.String("parent", p.ID),
		zap.String("address", p.Address), zap.String("host", tg.visitorHost), zap.String("url", req.URL.RequestURI()), zap.Error(err))
	tg.fallback = p.ID
	return nil, nil, nil
}

// parentOrigin names the parent in errors, as an http origin.
func parentOrigin(p *Parent) Origin {
	host, port, _ := net.SplitHostPort(p.Address)
	n, _ := strconv.Atoi(port)
	return Origin{Scheme: "http", Host: host, Port: n}
}

// closeTier drops the parent pool's idle connections.
func (c *Connector) closeTier() { c.tier.transport.CloseIdleConnections() }
