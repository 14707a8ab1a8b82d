package activities

import (
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// Distribution applies distributions to edges and sends callbacks.
type Distribution struct {
	// Inventory's serving edges are every distribution's (ApplySite).
	Inventory *inventory.Inventory
	// DefaultOrigin (host:port) serves hosts without a distribution.
	DefaultOrigin         string
	AllowPrivateCallbacks bool
	// PurgeACL goes into every edge's VCL: who may PURGE and BAN.
	PurgeACL []string
	// ControlPlane is this cdnflow's id (config ControlPlane): the Owner
	// of every entry ApplySite puts.
	ControlPlane string
	// Edges sends site table changes and bans to edges (ApplySite).
	Edges *edge.Client
	// Origins probes origins with the edges' connector options
	// (ProbeDistributionOrigins).
	Origins *connector.Connector
	// Rollout are the worker's staged rollout knobs (RolloutFleet).
	Rollout RolloutKnobs
	// SiteConcurrency bounds the edges this worker's ApplySite calls work
	// on at once (a put or delete and its bans on one edge each), every
	// distribution's together; 0: no bound. Without it a burst of changes
	// on a large fleet holds a connection per edge per change (100 new
	// distributions on 1,000 edges: up to 64 per edge, past any process's
	// descriptor limit).
	SiteConcurrency int

	siteSlotsOnce sync.Once
	siteSlots     chan struct{}
}

// slots answers the worker-wide semaphore of SiteConcurrency, nil
// without a bound.
func (a *Distribution) slots() chan struct{} {
	a.siteSlotsOnce.Do(func() {
		if a.SiteConcurrency > 0 {
			a.siteSlots = make(chan struct{}, a.SiteConcurrency)
		}
	})
	return a.siteSlots
}

// SiteOf is what an edge's VCL enforces of a distribution: its hosts,
// Host forwarding, TTL, referrer rule, cache policy and suspension. Its origins do not
// pass through the VCL package: EntryOf takes them from the distribution
// model (distribution.Config.SiteOrigins).
func SiteOf(s distribution.SiteSpec) vcl.Site {
	c := s.Config
	site := vcl.Site{
		Name:               s.Domain,
		Hosts:              append([]string{s.Domain}, c.Aliases()...),
		ForwardHostHeader:  c.ForwardHostHeader,
		ReferrerType:       c.ReferrerType,
		AllowEmptyReferrer: c.IsAllowWhenEmptyReferrer,
		Suspended:          s.Suspended,
	}
	if c.UseOrigin == "N" {
		age := c.MaxAge
		if age == 0 {
			age = 604800
		}
		site.TTL = time.Duration(age) * time.Second
	}
	if cp := c.CachePolicy.Site(); cp != nil {
		site.ForwardCookies, site.CachePrivate = cp.Cookies, cp.CachePrivate
	}
	for _, r := range strings.Split(c.Referrers, "\n") {
		if r = strings.TrimSpace(r); r != "" {
			site.Referrers = append(site.Referrers, r)
		}
	}
	return site
}
