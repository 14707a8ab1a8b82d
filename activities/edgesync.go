package activities

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
	"go.temporal.io/sdk/log"
)

// DesiredSites lists the desired state of every distribution edges should
// hold: the last applied distribution.SiteSpec of each running distribution workflow
// (the source of truth); workflows.DesiredSites implements it over
// visibility.
type DesiredSites interface {
	// DesiredSites returns the specs, and the domains of every running
	// distribution (also those whose first change is still in flight:
	// their sites on an edge are not orphans).
	DesiredSites(ctx context.Context) (specs []distribution.SiteSpec, running []string, err error)
}

// EdgeSync compares each edge's running configuration (active VCL and
// site table) with the desired one and heals the difference.
type EdgeSync struct {
	EdgeConfig
	Inventory *inventory.Inventory
	Edges     *edge.Client
	Desired   DesiredSites
}

// SyncEdgesInput is one round of the sync loop.
type SyncEdgesInput struct {
	// EdgeIDs to check; empty means every inventory edge.
	EdgeIDs []string `json:"edgeIds,omitempty"`
	// Last is the previous round's report per edge: orphans are deleted
	// when seen in two rounds in a row (visibility may lag a new
	// distribution), and a changed connector start counts as a restart.
	Last map[string]EdgeSyncReport `json:"last,omitempty"`
}

// EdgeSyncReport is one edge's state after a sync round, as GET /v1/edges
// shows it.
type EdgeSyncReport struct {
	EdgeID    string    `json:"edgeId"`
	CheckedAt time.Time `json:"checkedAt"`
	// VCL is the active VCL after the round (the desired one when healthy).
	VCL string `json:"vcl,omitempty"`
	// TableDigest and Sites describe the site table after the round.
	TableDigest string `json:"tableDigest,omitempty"`
	Sites       int    `json:"sites"`
	// ConnectorStarted is when the edge's connector (and table) started.
	ConnectorStarted time.Time `json:"connectorStarted,omitempty"`
	// Drift lists what this round found and healed: "vcl" (another VCL
	// was active), "missing", "stale" (site absent or older), "orphan"
	// (a site no distribution wants, deleted), "restart" (the connector
	// restarted). Empty: the edge was as desired.
	Drift []string `json:"drift,omitempty"`
	// LastDrift is the latest round that found drift, and what.
	LastDriftAt time.Time `json:"lastDriftAt,omitempty"`
	LastDrift   []string  `json:"lastDrift,omitempty"`
	// Orphans are sites seen without a distribution this round, deleted
	// if still so next round.
	Orphans []string `json:"orphans,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// SyncEdges runs one round over the edges in parallel and returns a
// report per edge. Per-edge failures are in the report (the loop tries
// again next round); only a failure to list the desired state fails the
// activity.
func (a *EdgeSync) SyncEdges(ctx context.Context, in SyncEdgesInput) ([]EdgeSyncReport, error) {
	specs, running, err := a.Desired.DesiredSites(ctx)
	if err != nil {
		return nil, fmt.Errorf("list desired sites: %w", err)
	}
	live := map[string]bool{}
	for _, d := range running {
		live[d] = true
	}
	desired := map[string]connector.Site{}
	for _, s := range specs {
		if s.Deleted {
			continue
		}
		entry, err := EntryOf(s)
		if err != nil {
			logger(ctx, "domain", s.Domain).Warn("desired site cannot be served; skipped", "error", err)
			continue
		}
		desired[entry.Name] = entry
	}
	ids := in.EdgeIDs
	if len(ids) == 0 {
		ids = a.Inventory.IDs()
	}
	defer keepAlive(ctx)()
	out := make([]EdgeSyncReport, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = a.syncEdge(ctx, id, desired, live, in.Last[id])
		}()
	}
	wg.Wait()
	return out, nil
}

func (a *EdgeSync) syncEdge(ctx context.Context, id string, desired map[string]connector.Site, live map[string]bool, last EdgeSyncReport) EdgeSyncReport {
	rep := EdgeSyncReport{EdgeID: id, CheckedAt: time.Now().UTC(), LastDriftAt: last.LastDriftAt, LastDrift: last.LastDrift}
	e, ok := a.Inventory.Get(id)
	if !ok {
		rep.Error = "not in the edge inventory"
		return rep
	}
	log := logger(ctx, "edgeId", id)
	st, err := a.Edges.Table(ctx, e)
	if err != nil {
		// Another VCL may be active (it does not route the site table):
		// put the desired one back first.
		want := make([]connector.Site, 0, len(desired))
		for _, s := range desired {
			want = append(want, s)
		}
		if changed, verr := a.ensureVCL(ctx, e, want); verr != nil {
			rep.Error = fmt.Sprintf("site table: %v; vcl: %v", err, verr)
			return rep
		} else if changed {
			rep.Drift = append(rep.Drift, "vcl")
		}
		if st, err = a.Edges.Table(ctx, e); err != nil {
			rep.Error = err.Error()
			return a.finish(log, rep)
		}
	}
	if !last.ConnectorStarted.IsZero() && !st.Started.Equal(last.ConnectorStarted) {
		rep.Drift = append(rep.Drift, "restart")
	}
	rep.ConnectorStarted = st.Started
	table, err := a.heal(ctx, e, st.Sites, desired, live, last.Orphans, &rep)
	if err != nil {
		rep.Error = err.Error()
		return a.finish(log, rep)
	}
	changed, err := a.ensureVCL(ctx, e, table)
	if err != nil {
		rep.Error = err.Error()
		return a.finish(log, rep)
	}
	if changed && !slices.Contains(rep.Drift, "vcl") {
		rep.Drift = append(rep.Drift, "vcl")
	}
	if name, _, err := a.vclFor(e, table); err == nil {
		rep.VCL = name
	}
	rep.Sites, rep.TableDigest = len(table), connector.Digest(table)
	if e.Managed && (len(st.Sites) == 0 || st.Loaded > 0) && !st.Started.Equal(last.ConnectorStarted) {
		// An edge `cdnflow dev` (re)started itself: filled the first time,
		// or its connector reloaded its table from its state file.
		log.Info("edge filled", "changes", rep.Drift, "sites", rep.Sites)
		rep.Drift = nil
	}
	return a.finish(log, rep)
}

// heal puts desired sites the edge lacks or holds older, and deletes
// sites of no running distribution that were orphans last round too. It
// returns the table as it is afterwards.
func (a *EdgeSync) heal(ctx context.Context, e inventory.Edge, have []connector.Site, desired map[string]connector.Site, live map[string]bool, lastOrphans []string, rep *EdgeSyncReport) ([]connector.Site, error) {
	table := map[string]connector.Site{}
	for _, s := range have {
		table[s.Name] = s
	}
	for name, want := range desired {
		cur, ok := table[name]
		if ok && !cur.Gen.Less(want.Gen) {
			continue
		}
		reason := "missing"
		if ok {
			reason = "stale"
		}
		res, err := a.Edges.PutSite(ctx, e, want, false)
		if err != nil {
			return nil, fmt.Errorf("put %s: %w", name, err)
		}
		if res.Applied {
			table[name] = want
			addReason(rep, reason)
			if res.New {
				for _, h := range want.Hosts {
					if err := a.Edges.BanPrefix(ctx, e, h, ""); err != nil {
						return nil, fmt.Errorf("ban %s: %w", h, err)
					}
				}
			}
		}
	}
	for name, cur := range table {
		if _, ok := desired[name]; ok || live[name] {
			continue
		}
		if !slices.Contains(lastOrphans, name) {
			rep.Orphans = append(rep.Orphans, name)
			continue
		}
		if _, err := a.Edges.DeleteSite(ctx, e, name, cur.Gen); err != nil {
			return nil, fmt.Errorf("delete %s: %w", name, err)
		}
		for _, h := range cur.Hosts {
			if err := a.Edges.BanPrefix(ctx, e, h, ""); err != nil {
				return nil, fmt.Errorf("ban %s: %w", h, err)
			}
		}
		delete(table, name)
		addReason(rep, "orphan")
	}
	slices.Sort(rep.Orphans)
	out := make([]connector.Site, 0, len(table))
	for _, s := range table {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y connector.Site) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

func addReason(rep *EdgeSyncReport, reason string) {
	if !slices.Contains(rep.Drift, reason) {
		rep.Drift = append(rep.Drift, reason)
	}
}

// finish counts and logs the round's drift.
func (a *EdgeSync) finish(l log.Logger, rep EdgeSyncReport) EdgeSyncReport {
	for _, r := range rep.Drift {
		metrics.EdgeDrift.WithLabelValues(rep.EdgeID, r).Inc()
	}
	if len(rep.Drift) > 0 {
		rep.LastDriftAt, rep.LastDrift = rep.CheckedAt, rep.Drift
		l.Warn("edge drift healed", "reasons", rep.Drift, "sites", rep.Sites)
	}
	if rep.Error != "" {
		l.Warn("edge sync failed", "error", rep.Error)
	}
	return rep
}
