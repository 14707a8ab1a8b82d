package activities

import (
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// Distribution applies distributions to edges and sends callbacks.
type Distribution struct {
	Inventory *inventory.Inventory
	// DefaultOrigin (host:port) serves hosts without a distribution.
	DefaultOrigin         string
	AllowPrivateCallbacks bool
	// PurgeACL goes into every edge's VCL: who may PURGE and BAN.
	PurgeACL []string
	// Edges sends site table changes and bans to edges (ApplySite).
	Edges *edge.Client
	// Origins probes origins with the edges' connector options
	// (ProbeDistributionOrigins).
	Origins *connector.Connector
}

// SiteOf turns a distribution into what an edge enforces.
func SiteOf(s SiteSpec) vcl.Site {
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
	for _, r := range strings.Split(c.Referrers, "\n") {
		if r = strings.TrimSpace(r); r != "" {
			site.Referrers = append(site.Referrers, r)
		}
	}
	// Each origin keeps its own originPath (NHN v1.5 origins[]).
	for i, o := range ConnectorOrigins(c) {
		site.Origins = append(site.Origins, vcl.Backend{Scheme: o.Scheme, Host: o.Host, Port: o.Port, Path: c.Origins[i].OriginPath})
	}
	return site
}

// OriginEndpoint is how edges fetch from o (NHN v1.5 origins[] and
// useOriginHttpProtocolDowngrade): port → http on port; httpsPort without
// downgrade → https on httpsPort; with downgrade → http on httpPort, else
// 80; httpPort only → http on httpPort.
func OriginEndpoint(o Origin, downgrade bool) (scheme string, port int) {
	switch {
	case o.Port != 0:
		return "http", o.Port
	case o.HTTPSPort != 0 && !downgrade:
		return "https", o.HTTPSPort
	case o.HTTPPort != 0:
		return "http", o.HTTPPort
	}
	return "http", 80
}

// ConnectorOrigins are a distribution's origins as the edges' connectors
// fetch them (OriginEndpoint), host names lower-cased.
func ConnectorOrigins(c DistributionConfig) []connector.Origin {
	out := make([]connector.Origin, 0, len(c.Origins))
	for _, o := range c.Origins {
		scheme, port := OriginEndpoint(o, c.UseOriginHTTPProtocolDowngrade)
		out = append(out, connector.Origin{Scheme: scheme, Host: strings.ToLower(o.Origin), Port: port})
	}
	return out
}
