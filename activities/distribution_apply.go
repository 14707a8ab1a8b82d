package activities

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
)

func (a *Distribution) edgeConfig() EdgeConfig {
	return EdgeConfig{DefaultOrigin: a.DefaultOrigin, PurgeACL: a.PurgeACL, ControlPlane: a.ControlPlane}
}

// ApplySite puts one distribution's desired state into the site table of
// every serving edge of this worker's inventory (inventory.IDs: not
// Drain), or of those in.EdgeIDs names, in parallel: one table entry per edge, owned by a.ControlPlane,
// and a VCL compile only when the distribution's referrer rule changed.
// An edge that left the inventory is not the distribution's any more.
//
// The hosts are banned where stale objects must go: a site new on the
// edge (what its host served before it existed), one whose content
// changed (connector.PutResult.Changed), a suspended or deleted one; a
// re-put of equal content bans nothing.
//
// An edge that keeps another entry under the name (Applied false) is
// resolved by resolveKept: a planted entry is overwritten with force, a
// second control plane's entry or a newer life of the domain is a
// refusal. A refusal (bad entry, a referrer rule Varnish will not compile,
// an entry this control plane must not overwrite) is a non-retryable
// ErrBadSite naming the edge; an unreachable edge is a retryable error
// (the workflow's retry policy decides how long cdnflow keeps trying
// while it runs).
func (a *Distribution) ApplySite(ctx context.Context, in ApplySiteInput) error {
	entry, err := EntryOf(in.Spec)
	if err != nil && !in.Spec.Deleted {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadSite, err)
	}
	hasEntry := err == nil
	entry.Owner = a.ControlPlane
	ids := a.Inventory.IDs()
	if len(in.EdgeIDs) > 0 {
		ids = servingAmong(ids, in.EdgeIDs)
	}
	defer keepAlive(ctx)()
	errs := a.onEdges(ctx, ids, in.Spec.Domain, func(e inventory.Edge) error {
		return a.applyOnEdge(ctx, e, in.Spec, entry, hasEntry)
	})
	var refused, failed []string
	for i, err := range errs {
		var r *refusedError
		switch {
		case err == nil:
		case errors.As(err, &r):
			refused = append(refused, err.Error())
		default:
			failed = append(failed, fmt.Sprintf("edge %s: %v", ids[i], err))
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

// applyWorkers is how many edges one ApplySite call works on at once:
// a wave of 1,000 edges runs 64 at a time, and the worker-wide
// SiteConcurrency bounds every call's together.
const applyWorkers = 64

// onEdges runs do on the edges of ids, applyWorkers at a time and each
// within a SiteConcurrency slot, and answers its errors in ids' order
// (ctx's error for an edge whose slot did not come before ctx ended).
// Each domain starts at its own place in ids (an FNV-1a hash of it), so
// changes applied at once reach different edges first instead of all
// queueing on the first ones: one edge then serves a few of them at a
// time, not every one (and keeps as few connections).
func (a *Distribution) onEdges(ctx context.Context, ids []string, domain string, do func(inventory.Edge) error) []error {
	errs := make([]error, len(ids))
	slots := a.slots()
	h := fnv.New32a()
	_, _ = h.Write([]byte(domain)) // a hash.Hash never fails to write
	start := 0
	if len(ids) > 0 {
		start = int(h.Sum32() % uint32(len(ids)))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(ids), applyWorkers) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(ids); k = int(next.Add(1) - 1) {
				i := (start + k) % len(ids)
				e, _ := a.Inventory.Get(ids[i])
				errs[i] = withSlot(ctx, slots, func() error { return do(e) })
			}
		})
	}
	wg.Wait()
	return errs
}

// withSlot runs do holding one of slots (none: at once); ctx's error
// when ctx ends first.
func withSlot(ctx context.Context, slots chan struct{}, do func() error) error {
	if slots != nil {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return fmt.Errorf("wait for a site table slot (--edge-site-concurrency): %w", ctx.Err())
		}
	}
	return do()
}

// servingAmong is the ids of serving that want names, in serving's order.
func servingAmong(serving, want []string) []string {
	set := make(map[string]bool, len(want))
	for _, id := range want {
		set[id] = true
	}
	var out []string
	for _, id := range serving {
		if set[id] {
			out = append(out, id)
		}
	}
	return out
}

// applyOnEdge puts entry (or deletes spec's site) on e. hasEntry says
// whether entry is spec as a table holds it (a deleted spec with a config
// no edge can serve has none).
func (a *Distribution) applyOnEdge(ctx context.Context, e inventory.Edge, spec distribution.SiteSpec, entry connector.Site, hasEntry bool) error {
	log := logger(ctx, "edgeId", e.ID, "domain", spec.Domain, "gen", spec.Gen().String())
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
	if err := refusal(err); err != nil {
		return err
	}
	if !res.Applied {
		var done bool
		res, done, err = a.resolveKept(ctx, e, spec, entry, hasEntry, res)
		if err != nil || done {
			return err
		}
	}
	if res.ReferrerChanged {
		if err := a.edgeConfig().ensureTableVCL(ctx, a.Edges, e); err != nil {
			return err
		}
	}
	if res.Applied && (res.New || res.Changed || spec.Suspended || spec.Deleted) {
		if err := banHosts(ctx, a.Edges, e, spec); err != nil {
			return err
		}
	}
	log.Info("site applied", "applied", res.Applied, "new", res.New, "changed", res.Changed, "referrerChanged", res.ReferrerChanged)
	return nil
}

// refusal makes an edge's 400 (it will not hold the entry) a
// *refusedError; other errors pass unchanged.
func refusal(err error) error {
	var se *edge.StatusError
	if errors.As(err, &se) && se.Code == 400 {
		return &refusedError{err}
	}
	return err
}

// Reasons of a forced put (metrics.EdgeForced, logs).
const (
	forcedAheadOfClock = "ahead_of_clock"
	forcedSameLife     = "same_life_newer"
)

// resolveKept decides about an edge that kept its own entry for spec's
// name (res.Applied false; res.Current and res.CurrentOwner say what it
// holds):
//   - a generation created ahead of this worker's clock (AheadOfClock):
//     no control plane wrote it, whatever owner it names (the edge sync
//     treats it alike), so spec is put again with force (and, for a
//     delete, then deleted);
//   - an entry of another control plane (an owner other than ours and
//     not ""): a refusal naming the edge and the owner — two control
//     planes must not fight over a domain; a delete leaves it and is done;
//   - of the same life as spec (same Created) with a higher Version: the
//     distribution's workflow is the only writer of its life and spec
//     carries its newest version, so it is planted and forced as above;
//   - anything else is a newer life of the domain (or its deletion): a
//     delete is done, a put is a refusal.
//
// An attempt of an older change still running after its retry took over
// (a lost worker's) would find the newer version and force its own back;
// its heartbeat is refused by then, which cancels its context, and the
// edge sync puts the newest change back within a round.
//
// It returns the result of the forced request, or done true when there
// is nothing more to do on e.
func (a *Distribution) resolveKept(ctx context.Context, e inventory.Edge, spec distribution.SiteSpec, entry connector.Site, hasEntry bool, res connector.PutResult) (connector.PutResult, bool, error) {
	log := logger(ctx, "edgeId", e.ID, "domain", spec.Domain, "gen", spec.Gen().String())
	held := "a deletion of a newer generation"
	if res.Current != nil {
		held = fmt.Sprintf("generation %s owned by %q", res.Current, res.CurrentOwner)
	}
	ahead := res.Current != nil && AheadOfClock(*res.Current, time.Now())
	if !ahead && res.CurrentOwner != "" && res.CurrentOwner != a.ControlPlane {
		if spec.Deleted {
			// Nothing of ours is left on the edge under the name.
			log.Warn("edge holds another control plane's entry; our delete leaves it", "owner", res.CurrentOwner)
			return res, true, nil
		}
		return res, true, &refusedError{fmt.Errorf("edge %s holds %s for %s: a second control plane (%q) serves this domain there; this one (%q) does not overwrite it",
			e.ID, held, spec.Domain, res.CurrentOwner, a.ControlPlane)}
	}
	reason := ""
	switch cur := res.Current; {
	case ahead:
		reason = forcedAheadOfClock
	case cur != nil && cur.Created == spec.Created && cur.Version > spec.Version:
		reason = forcedSameLife
	}
	if reason == "" {
		if spec.Deleted {
			log.Info("edge holds a newer life of the domain; delete is done", "held", held)
			return res, true, nil
		}
		return res, true, &refusedError{fmt.Errorf("edge %s holds %s for %s, newer than %s: a later life of the domain; this change is not put",
			e.ID, held, spec.Domain, spec.Gen())}
	}
	if !hasEntry {
		return res, true, &refusedError{fmt.Errorf("edge %s holds a planted %s for %s and the deleted config cannot replace it", e.ID, held, spec.Domain)}
	}
	if err := ctx.Err(); err != nil {
		return res, true, err // a cancelled attempt forces nothing
	}
	log.Warn("edge holds a planted entry; putting ours with force", "held", held, "reason", reason)
	metrics.EdgeForced.WithLabelValues(e.ID, reason).Inc()
	forced, err := a.Edges.PutSite(ctx, e, entry, true)
	if err := refusal(err); err != nil {
		return res, true, err
	}
	if !forced.Applied {
		return res, true, fmt.Errorf("edge %s kept %s for %s after a forced put", e.ID, held, spec.Domain)
	}
	if !spec.Deleted {
		return forced, false, nil
	}
	// Our entry replaced the planted one under spec's generation: the
	// delete of that generation now goes through.
	del, err := a.Edges.DeleteSite(ctx, e, spec.Domain, spec.Gen())
	if err := refusal(err); err != nil {
		return res, true, err
	}
	if !del.Applied {
		return res, true, fmt.Errorf("edge %s kept %s after deleting the forced entry", e.ID, spec.Domain)
	}
	del.ReferrerChanged = del.ReferrerChanged || forced.ReferrerChanged
	return del, false, nil
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
