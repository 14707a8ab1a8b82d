package activities

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// EdgeReconcilers hands a distribution's desired state to the reconciler
// workflow of one edge, starting the reconciler on first use;
// workflows.Reconcilers implements it.
type EdgeReconcilers interface {
	SendSite(ctx context.Context, edgeID string, spec SiteSpec) error
}

// Distribution applies distributions to edges and sends callbacks.
type Distribution struct {
	Reconcilers EdgeReconcilers
	Inventory   *inventory.Inventory
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
	Logger  *zap.Logger
}

// RequestEdgeApply hands a distribution's desired state to the reconciler
// of every edge, starting reconcilers on first use.
func (a *Distribution) RequestEdgeApply(ctx context.Context, req EdgeApplyRequest) error {
	for _, id := range req.EdgeIDs {
		if err := a.Reconcilers.SendSite(ctx, id, req.Spec); err != nil {
			return fmt.Errorf("signal reconciler of %s: %w", id, err)
		}
	}
	return nil
}

// SiteOf turns a distribution into what an edge enforces.
func SiteOf(s SiteSpec) (vcl.Site, error) {
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
	return site, nil
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

// ApplyEdgeVCL renders every live site of an edge and loads the VCL.
func (a *Distribution) ApplyEdgeVCL(ctx context.Context, in ApplyEdgeVCLInput) error {
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return unknownEdge(in.EdgeID)
	}
	cfg := vcl.Config{EdgeID: e.ID, ConnectorPort: e.ConnectorPort(), PurgeACL: a.PurgeACL}
	if a.DefaultOrigin != "" {
		host, port, err := net.SplitHostPort(a.DefaultOrigin)
		if err == nil {
			var p int
			_, _ = fmt.Sscanf(port, "%d", &p)
			cfg.DefaultBackend = &vcl.Backend{Host: host, Port: p}
		}
	}
	for _, s := range in.Sites {
		site, err := SiteOf(s)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadSite, nil)
		}
		cfg.Sites = append(cfg.Sites, site)
	}
	src, err := vcl.Render(cfg)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("render vcl: "+err.Error(), ErrBadSite, err)
	}
	defer keepAlive(ctx)()
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return err
	}
	defer conn.Close()
	name := fmt.Sprintf("cdnflow_%d", time.Now().UnixNano())
	if err := conn.Reload(ctx, name, src); err != nil {
		return fmt.Errorf("load vcl on %s: %w", e.ID, err)
	}
	a.Logger.Info("vcl applied", zap.String("edgeId", e.ID), zap.Int("sites", len(in.Sites)),
		zap.String("workflowId", activity.GetInfo(ctx).WorkflowExecution.ID))
	return nil
}
