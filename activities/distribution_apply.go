package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

func (a *Distribution) edgeConfig() EdgeConfig {
	return EdgeConfig{DefaultOrigin: a.DefaultOrigin, PurgeACL: a.PurgeACL}
}

// ApplySite puts one distribution's desired state into the site table of
// every edge of in.EdgeIDs, in parallel: one table entry per edge, and a
// VCL compile only when the distribution's referrer rule changed. The
// hosts are banned where stale objects must go: a site new on the edge
// (what its host served before it existed), a suspended or deleted one.
// A site an edge refuses (bad entry, a referrer rule Varnish will not
// compile) is a non-retryable ErrBadSite naming the edge; an unreachable
// edge is a retryable error (the workflow's retry policy decides how long
// cdnflow keeps trying while it runs).
func (a *Distribution) ApplySite(ctx context.Context, in ApplySiteInput) error {
	entry, err := EntryOf(in.Spec)
	if err != nil && !in.Spec.Deleted {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadSite, err)
	}
	defer keepAlive(ctx)()
	errs := make([]error, len(in.EdgeIDs))
	var wg sync.WaitGroup
	for i, id := range in.EdgeIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.applyOnEdge(ctx, id, in.Spec, entry)
		}()
	}
	wg.Wait()
	var refused, failed []string
	for i, err := range errs {
		var r *refusedError
		switch {
		case err == nil:
		case errors.As(err, &r):
			refused = append(refused, err.Error())
		default:
			failed = append(failed, fmt.Sprintf("edge %s: %v", in.EdgeIDs[i], err))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	if len(refused) > 0 {
		return temporal.NewNonRetryableApplicationError(strings.Join(refused, "; "), ErrBadSite, nil)
	}
	return nil
}

func (a *Distribution) applyOnEdge(ctx context.Context, id string, spec distribution.SiteSpec, entry connector.Site) error {
	e, ok := a.Inventory.Get(id)
	if !ok {
		return &refusedError{fmt.Errorf("edge %s is not in the inventory", id)}
	}
	log := logger(ctx, "edgeId", id, "domain", spec.Domain, "gen", spec.Gen().String())
	var res connector.PutResult
	var err error
	if spec.Deleted {
		res, err = a.Edges.DeleteSite(ctx, e, spec.Domain, spec.Gen())
	} else {
		if entry.Referrer != nil {
			if err := a.edgeConfig().checkReferrerVCL(ctx, e, entry); err != nil {
				return err
			}
		}
		res, err = a.Edges.PutSite(ctx, e, entry, false)
	}
	var se *edge.StatusError
	if errors.As(err, &se) && se.Code == 400 {
		return &refusedError{err}
	}
	if err != nil {
		return err
	}
	if res.ReferrerChanged {
		if err := a.edgeConfig().ensureTableVCL(ctx, a.Edges, e); err != nil {
			return err
		}
	}
	if res.Applied && (res.New || spec.Suspended || spec.Deleted) {
		if err := banHosts(ctx, a.Edges, e, spec); err != nil {
			return err
		}
	}
	log.Info("site applied", "applied", res.Applied, "new", res.New, "referrerChanged", res.ReferrerChanged)
	return nil
}

// banHosts invalidates every object of spec's hosts on e.
func banHosts(ctx context.Context, c *edge.Client, e inventory.Edge, spec distribution.SiteSpec) error {
	hosts := append([]string{strings.ToLower(spec.Domain)}, spec.Config.Aliases()...)
	for _, h := range hosts {
		if err := c.BanPrefix(ctx, e, h, ""); err != nil {
			return fmt.Errorf("ban %s: %w", h, err)
		}
	}
	return nil
}
