package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/connector"
)

// ErrOriginUnusable: an origin of a distribution failed its probe for a
// lasting reason (certificate, unresolvable name, refused address).
const ErrOriginUnusable = "OriginUnusable"

// ProbeOriginsRequest names the origins of one distribution change.
type ProbeOriginsRequest struct {
	Domain string              `json:"domain"`
	Config distribution.Config `json:"config"`
}

// ProbeDistributionOrigins checks each origin of a distribution the way
// the edges' connectors will fetch it (connector.Probe: resolve, address
// policy on every address, connect, TLS with SNI and verification, HEAD
// originPath/). A lasting failure (connector.Kind.Permanent: bad
// certificate, unresolvable name, refused address) is a non-retryable
// ErrOriginUnusable error whose message is the reason, e.g. "origin
// https://o.example:443: x509: certificate has expired …": the
// distribution workflow sends only this distribution to ERROR. A resolver
// that did not answer (connector.KindResolver: timeout, SERVFAIL, REFUSED,
// with no stale answer to use) is a retryable error: the probe runs again
// while DNS may come back, and the workflow applies the change unprobed
// once its retries run out, never ERROR (workflows.entity.probeOrigins).
// A passing origin failure (connect refused, timeout) is logged and
// returns nil: an origin that is down now may be up when clients come,
// and the edges retry.
func (a *Distribution) ProbeDistributionOrigins(ctx context.Context, req ProbeOriginsRequest) error {
	if a.Origins == nil {
		return errors.New("probe origins: no origin connector configured")
	}
	path := "/"
	if len(req.Config.Origins) > 0 && req.Config.Origins[0].OriginPath != "" {
		path = req.Config.Origins[0].OriginPath + "/"
	}
	for _, o := range req.Config.ConnectorOrigins() {
		err := a.Origins.Probe(ctx, o, "", path)
		if err == nil {
			continue
		}
		var oe *connector.OriginError
		if errors.As(err, &oe) && oe.Kind.Permanent() {
			return temporal.NewNonRetryableApplicationError(oe.Error(), ErrOriginUnusable, nil)
		}
		if errors.As(err, &oe) && oe.Kind == connector.KindResolver {
			return fmt.Errorf("probe %s: DNS resolver failed, retrying: %w", o, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("probe %s: %w", o, ctx.Err())
		}
		logger(ctx, "domain", req.Domain).Warn("origin probe failed; applying anyway", "origin", o.String(), "error", err)
	}
	return nil
}
