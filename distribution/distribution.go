// Package distribution is the model of a CDN distribution (NHN v1.5): its
// statuses, desired configuration, state and the site spec edges enforce.
// Workflows, activities and the API share these types; JSON tags follow
// NHN and are the shapes recorded in workflow histories, so they do not
// change.
package distribution

import (
	"net"
	"strings"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// Status is a distribution's NHN v1.5 status code.
const (
	StatusOpening    = "OPENING"
	StatusOpen       = "OPEN"
	StatusModifying  = "MODIFYING"
	StatusResume     = "RESUME"
	StatusSuspending = "SUSPENDING"
	StatusSuspend    = "SUSPEND"
	StatusClosing    = "CLOSING"
	StatusClose      = "CLOSE"
	StatusError      = "ERROR"
)

// Origin is one origin server of a distribution (NHN origins[]), validated
// once by the API. It is the only origin type between the API body and the
// edge's site table entry (Config.SiteOrigins).
type Origin struct {
	Origin     string `json:"origin"`
	Port       int    `json:"port,omitempty"`
	HTTPPort   int    `json:"httpPort,omitempty"`
	HTTPSPort  int    `json:"httpsPort,omitempty"`
	OriginPath string `json:"originPath,omitempty"`
}

// Endpoint is how edges fetch from o (NHN v1.5 origins[] and
// useOriginHttpProtocolDowngrade): port → http on port; httpsPort without
// downgrade → https on httpsPort; with downgrade → http on httpPort, else
// 80; httpPort only → http on httpPort.
func (o Origin) Endpoint(downgrade bool) (scheme string, port int) {
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

// Connector is o as the edges' connectors fetch it (Endpoint), its host an
// IP address in canonical form or a lower-case DNS name without the
// trailing dot.
func (o Origin) Connector(downgrade bool) connector.Origin {
	scheme, port := o.Endpoint(downgrade)
	host := strings.TrimSpace(o.Origin)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	} else {
		host = strings.TrimSuffix(strings.ToLower(host), ".")
	}
	return connector.Origin{Scheme: scheme, Host: host, Port: port}
}

// Site is o as an entry of the edge's site table holds it: the connector
// origin and o's own path prefix without the trailing "/".
func (o Origin) Site(downgrade bool) connector.SiteOrigin {
	return connector.SiteOrigin{Origin: o.Connector(downgrade), Path: strings.TrimSuffix(o.OriginPath, "/")}
}

// Callback is where lifecycle changes are reported (NHN callback).
type Callback struct {
	HTTPMethod string `json:"httpMethod"`
	URL        string `json:"url"`
}

// Config is the desired configuration of a distribution, with defaults
// applied. Field names and JSON tags follow NHN v1.5.
type Config struct {
	Region                         string    `json:"region"`
	UseOriginHTTPProtocolDowngrade bool      `json:"useOriginHttpProtocolDowngrade"`
	ForwardHostHeader              string    `json:"forwardHostHeader"`
	UseOrigin                      string    `json:"useOrigin"`
	ReferrerType                   string    `json:"referrerType"`
	Description                    string    `json:"description,omitempty"`
	DomainAlias                    string    `json:"domainAlias,omitempty"`
	MaxAge                         int64     `json:"maxAge"`
	Referrers                      string    `json:"referrers,omitempty"`
	IsAllowWhenEmptyReferrer       bool      `json:"isAllowWhenEmptyReferrer"`
	Origins                        []Origin  `json:"origins"`
	Callback                       *Callback `json:"callback,omitempty"`
	// CachePolicy is cdnflow's cache policy extension (CachePolicy); nil
	// is the default policy.
	CachePolicy *CachePolicy `json:"cachePolicy,omitempty"`
}

// Aliases splits DomainAlias on NHN's '\n' token.
func (c Config) Aliases() []string {
	var out []string
	for _, a := range strings.Split(c.DomainAlias, "\n") {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// ConnectorOrigins are c's origins as the edges' connectors fetch them
// (Origin.Connector).
func (c Config) ConnectorOrigins() []connector.Origin {
	out := make([]connector.Origin, 0, len(c.Origins))
	for _, o := range c.Origins {
		out = append(out, o.Connector(c.UseOriginHTTPProtocolDowngrade))
	}
	return out
}

// SiteOrigins are c's origins as the edge's site table entry holds them,
// each with its own originPath (Origin.Site).
func (c Config) SiteOrigins() []connector.SiteOrigin {
	out := make([]connector.SiteOrigin, 0, len(c.Origins))
	for _, o := range c.Origins {
		out = append(out, o.Site(c.UseOriginHTTPProtocolDowngrade))
	}
	return out
}

// State is a distribution entity's state: what the distribution workflow's
// query answers and every callback carries.
type State struct {
	AppKey string `json:"appKey"`
	Domain string `json:"domain"`
	Status string `json:"status"`
	// Seq is NHN's distributionSeq.
	Seq        int64  `json:"seq,omitempty"`
	Config     Config `json:"config"`
	CreateTime int64  `json:"createTime"` // epoch ms
	DeleteTime int64  `json:"deleteTime,omitempty"`
	// LastError says why the distribution is in ERROR.
	LastError string `json:"lastError,omitempty"`
	// Callbacks are the latest lifecycle notifications and their outcome.
	Callbacks []CallbackResult `json:"callbacks,omitempty"`
	// Version is the number of the latest accepted change (Version.N);
	// cdnflow's, not NHN's: the /v1.5 views leave it out.
	Version int `json:"version,omitempty"`
	// Served is what the edges serve for the distribution (Hosts): set by
	// the distribution workflow from the last configuration it applied.
	// nil only in a state published by a workflow older than host
	// ownership (docs/nhn.md#host-ownership).
	Served *Served `json:"served,omitempty"`
}

// Served are the aliases (lower-case, Config.Aliases) of the last
// configuration a distribution applied to the edges; none before its
// first apply.
type Served struct {
	Aliases []string `json:"aliases,omitempty"`
}

// Actions of a Version.
const (
	ActionCreate   = "create"
	ActionModify   = "modify"
	ActionSuspend  = "suspend"
	ActionResume   = "resume"
	ActionRollback = "rollback"
)

// Version is one accepted change of a distribution: its number (from 1,
// the creation), when it was accepted (epoch ms), the action (Action*),
// who asked (KeyID: the appKey the request authenticated with, never a
// secret; RequestID: the API's X-Request-Id) and the configuration and
// suspended flag the change asked for.
type Version struct {
	N         int    `json:"n"`
	At        int64  `json:"at"`
	Action    string `json:"action"`
	KeyID     string `json:"keyId,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	Config    Config `json:"config"`
	Suspended bool   `json:"suspended,omitempty"`
	// RollbackOf is the version a rollback copied (0 otherwise).
	RollbackOf int `json:"rollbackOf,omitempty"`
}

// CallbackResult records one callback delivery.
type CallbackResult struct {
	Status string `json:"status"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// Hosts are the Host names edges serve the distribution under: its
// domain and the aliases of the last configuration it applied (Served),
// lower-case — never the aliases of a change that did not apply (a
// creation or a change that ended in ERROR). Purges and prewarms reach
// these hosts only (docs/nhn.md#host-ownership). A state without Served
// (published by an older workflow) counts its config's aliases as served
// unless it is OPENING or in ERROR, where that config may never have
// applied.
func (s State) Hosts() []string {
	hosts := []string{strings.ToLower(s.Domain)}
	switch {
	case s.Served != nil:
		return append(hosts, s.Served.Aliases...)
	case s.Status == StatusError || s.Status == StatusOpening:
		return hosts
	}
	return append(hosts, s.Config.Aliases()...)
}

// SiteSpec is a distribution's desired state on an edge.
type SiteSpec struct {
	WorkflowID string `json:"workflowId"`
	AppKey     string `json:"appKey"`
	Domain     string `json:"domain"`
	Version    int    `json:"version"`
	// Created is the distribution's creation time (epoch ms): with
	// Version, the generation of the edge site table entry.
	Created   int64  `json:"created,omitempty"`
	Config    Config `json:"config"`
	Suspended bool   `json:"suspended,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
}

// Gen is s's site table generation.
func (s SiteSpec) Gen() connector.Generation {
	return connector.Generation{Created: s.Created, Version: s.Version}
}
