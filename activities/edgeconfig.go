package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
)

// EdgeConfig is what every edge's VCL shares: the worker's purge ACL and
// default origin. The rest of an edge's configuration is its site table.
type EdgeConfig struct {
	// DefaultOrigin (host:port) serves hosts without a distribution.
	DefaultOrigin string
	// PurgeACL lists who may PURGE, BAN and use the site table.
	PurgeACL []string
	// ControlPlane is this cdnflow's id (config --control-plane-id),
	// written as connector.Site.Owner on every entry it puts.
	ControlPlane string
}

// EntryOf is spec as an edge's site table holds it: the rules of SiteOf
// and the origins of the distribution model, each with its own path. A
// spec no edge can serve is an error naming the value.
func EntryOf(spec distribution.SiteSpec) (connector.Site, error) {
	// A BLACKLIST of nothing that admits an empty Referer (NHN requires a
	// referrerType, so almost every distribution has one) is no rule and
	// costs no VCL: vcl.Site.EntryWith drops it.
	return SiteOf(spec).EntryWith(spec.Gen(), spec.Config.SiteOrigins())
}

// edgeVCLLocks holds one lock per edge ID (a 1-slot channel): the VCL
// changes of one edge (ApplySite's compile check and reload, the edge
// sync's heal) run one at a time in this worker, so none discards
// another's VCL in flight and the last reload is of the newest table.
var edgeVCLLocks sync.Map

// lockEdgeVCL takes edge id's VCL lock; it returns the unlock, or ctx's
// error while waiting.
func lockEdgeVCL(ctx context.Context, id string) (func(), error) {
	v, _ := edgeVCLLocks.LoadOrStore(id, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the vcl lock of %s: %w", id, ctx.Err())
	}
}

// vclFor renders edge e's VCL for the sites of its table: only those with
// a referrer rule add VCL. The name is content-addressed
// (varnishadm.ManagedName), so equal tables give equal names and Ensure
// loads nothing twice. The VCL holds e's control token
// (connector.ControlTokenFile of e.SecretFile): a rotated secret gives
// another name, which the edge sync loads as drift.
func (c EdgeConfig) vclFor(e inventory.Edge, sites []connector.Site) (name, src string, err error) {
	token, err := connector.ControlTokenFile(e.SecretFile)
	if err != nil {
		return "", "", fmt.Errorf("vcl for %s: %w", e.ID, err)
	}
	cfg := vcl.Config{EdgeID: e.ID, ConnectorPort: e.ConnectorPort(), PurgeACL: c.PurgeACL, ControlToken: token}
	if c.DefaultOrigin != "" {
		host, port, err := net.SplitHostPort(c.DefaultOrigin)
		if err != nil {
			return "", "", fmt.Errorf("default origin %q: %w", c.DefaultOrigin, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return "", "", fmt.Errorf("default origin %q: port: %w", c.DefaultOrigin, err)
		}
		cfg.DefaultBackend = &vcl.Backend{Host: host, Port: p}
	}
	src, err = vcl.Render(vcl.WithTable(cfg, sites))
	if err != nil {
		return "", "", fmt.Errorf("render vcl for %s: %w", e.ID, err)
	}
	return varnishadm.ManagedName(src), src, nil
}

// ensureVCL makes the VCL of sites active on e; changed says whether
// another one was active.
func (c EdgeConfig) ensureVCL(ctx context.Context, e inventory.Edge, sites []connector.Site) (changed bool, err error) {
	unlock, err := lockEdgeVCL(ctx, e.ID)
	if err != nil {
		return false, err
	}
	defer unlock()
	return c.ensureVCLLocked(ctx, e, sites)
}

// ensureTableVCL makes the VCL of e's current site table active on e,
// reading the table under e's VCL lock: of two concurrent changes, the
// last reload holds both.
func (c EdgeConfig) ensureTableVCL(ctx context.Context, edges *edge.Client, e inventory.Edge) error {
	unlock, err := lockEdgeVCL(ctx, e.ID)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := edges.Table(ctx, e)
	if err != nil {
		return err
	}
	_, err = c.ensureVCLLocked(ctx, e, st.Sites)
	return err
}

func (c EdgeConfig) ensureVCLLocked(ctx context.Context, e inventory.Edge, sites []connector.Site) (changed bool, err error) {
	name, src, err := c.vclFor(e, sites)
	if err != nil {
		return false, err
	}
	return c.ensureRenderedLocked(ctx, e, name, src)
}

// ensureRenderedLocked makes the rendered VCL name (source src, from
// vclFor) active on e, under e's VCL lock.
func (c EdgeConfig) ensureRenderedLocked(ctx context.Context, e inventory.Edge, name, src string) (changed bool, err error) {
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return false, fmt.Errorf("admin of %s: %w", e.ID, err)
	}
	defer func() { _ = conn.Close() }() // the commands' own answers are checked
	prev, err := conn.Active(ctx)
	if err != nil {
		return false, fmt.Errorf("vcl on %s: %w", e.ID, err)
	}
	foreign := prev != "" && !strings.HasPrefix(prev, varnishadm.ManagedPrefix) && !renderedByCdnflow(ctx, conn, prev)
	changed, err = conn.Ensure(ctx, name, src)
	if err != nil {
		return false, fmt.Errorf("vcl on %s: %w", e.ID, err)
	}
	if changed && foreign {
		// Objects cached under a VCL that is not cdnflow's (an operator's
		// vcl.use) may come from the wrong origin and lack the marks
		// (x-cdn-host, x-cdn-url) every purge and ban matches: they can be
		// neither trusted nor purged, so every object goes.
		if _, err := conn.Do(ctx, "ban", "obj.status", "!=", "0"); err != nil {
			return true, fmt.Errorf("ban objects cached under vcl %s on %s: %w", prev, e.ID, err)
		}
	}
	return changed, nil
}

// renderedByCdnflow reports whether the loaded VCL name is one cdnflow
// rendered (edge/vcl marks its source), as `cdnflow dev` and the tests
// boot their edges with.
func renderedByCdnflow(ctx context.Context, conn *varnishadm.Conn, name string) bool {
	src, err := conn.Do(ctx, "vcl.show", name)
	return err == nil && strings.Contains(src, vcl.GeneratedMark)
}

// checkReferrerVCL compiles the VCL of site alone on e (and discards it):
// a referrer rule that Varnish refuses is found before it enters the
// table, so it can never block another distribution's VCL.
func (c EdgeConfig) checkReferrerVCL(ctx context.Context, e inventory.Edge, site connector.Site) error {
	name, src, err := c.vclFor(e, []connector.Site{site})
	if err != nil {
		return err
	}
	unlock, err := lockEdgeVCL(ctx, e.ID)
	if err != nil {
		return err
	}
	defer unlock()
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return fmt.Errorf("admin of %s: %w", e.ID, err)
	}
	defer func() { _ = conn.Close() }() // the commands' own answers are checked
	probe := name + "_check"
	// A probe left by an attempt cut short (worker killed) would make
	// the load below fail with "Already a VCL named".
	_ = conn.VCLDiscard(ctx, probe)
	if err := conn.VCLInline(ctx, probe, src); err != nil {
		var cli *varnishadm.Error
		if errors.As(err, &cli) {
			// Varnish answered: it does not compile this VCL.
			return &refusedError{fmt.Errorf("edge %s refuses the VCL of %s: %w", e.ID, site.Name, err)}
		}
		return fmt.Errorf("compile check on %s: %w", e.ID, err) // the CLI failed: retry
	}
	_ = conn.VCLDiscard(ctx, probe)
	return nil
}

// refusedError is an edge's lasting refusal of a change (a site it will
// not serve): retrying does not help.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }
