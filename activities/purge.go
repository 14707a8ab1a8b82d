package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/inventory"
)

// Purge types: NHN's ITEM, WILDCARD and ALL, plus cdnflow's TAG.
const (
	PurgeItem     = "ITEM"
	PurgeWildcard = "WILDCARD"
	PurgeAll      = "ALL"
	PurgeTag      = "TAG"
)

// purgeSpec is what a purge asks of every edge: the type, the paths (ITEM
// paths, WILDCARD prefixes, TAG names; none for ALL) on each host.
type purgeSpec struct {
	Hosts []string
	Type  string
	Paths []string
	Soft  bool
}

// Purge applies purges on edges.
type Purge struct {
	Inventory *inventory.Inventory
	Edge      *edge.Client
	// PerEdge caps concurrent purge exchanges with one edge from this
	// worker, however many purge workflows run at once: one request, or
	// one pipelined batch of ITEM PURGEs (batchSize).
	PerEdge int
	// retryFirst is the first wait between tries of one edge inside an
	// attempt (0: edgeRetryFirst); tests shorten it.
	retryFirst time.Duration

	slots edgeSlots
	// metrics caches each edge's purge metric children (unitMetrics).
	metricsMu sync.Mutex
	metrics   map[metricKey]edgeMetrics
}

// defaultPurgePerEdge is PerEdge when unset.
const defaultPurgePerEdge = 16

func (a *Purge) slot(edgeID string) chan struct{} {
	return a.slots.of(edgeID, a.PerEdge, defaultPurgePerEdge)
}

// CatchUpEdgeResult says how an edge showed that a purge took effect.
type CatchUpEdgeResult struct {
	Verified string `json:"verified,omitempty"`
}

// verifiedText says how an edge showed that every unit of a purge took
// effect.
func verifiedText(in purgeSpec, units int) string {
	switch in.Type {
	case PurgeItem:
		return fmt.Sprintf("%d host×path units purged; a cache-only probe finds no copy cached before the purge", units)
	case PurgeWildcard, PurgeAll:
		return fmt.Sprintf("%d bans registered by the edge (std.ban answered Ban added)", units)
	case PurgeTag:
		return fmt.Sprintf("%d tag purges answered with their count", units)
	}
	return ""
}

// verifyGone probes host+path after a PURGE sent at sent: a fresh copy
// older than the purge means the purge did not take effect (the error is
// retryable, so the unit is purged and probed again). A copy fetched after
// the purge (a visitor asked meanwhile) is the new object and fine.
func (a *Purge) verifyGone(ctx context.Context, e inventory.Edge, host, path string, sent time.Time) error {
	r, err := a.Edge.Probe(ctx, e, host, path)
	if err != nil {
		return fmt.Errorf("verify purge of %s%s: %w", host, path, err)
	}
	return staleCopy(e, host, path, r, sent)
}

// staleCopy is the error of a probe (made after a PURGE sent at sent)
// that found a fresh copy the edge stored before the purge, else nil. The
// probe's age is the time the edge has held the copy, never the origin's
// Age header (edge.ProbeResult.StoredBefore).
func staleCopy(e inventory.Edge, host, path string, r edge.ProbeResult, sent time.Time) error {
	if r.StoredBefore(sent) {
		return fmt.Errorf("edge %s still serves %s%s cached %s ago, before the purge", e.ID, host, path, r.Age.Round(time.Millisecond))
	}
	return nil
}

// purgeUnit is one request of a purge: a path (a tag, a prefix; "" for
// ALL) on one of the distribution's host names.
type purgeUnit struct{ host, path string }

// purgeUnits is every host×path unit of a purge, hosts first.
func purgeUnits(in purgeSpec) []purgeUnit {
	paths := in.Paths
	if in.Type == PurgeAll {
		paths = []string{""}
	}
	var units []purgeUnit
	for _, h := range in.Hosts {
		for _, p := range paths {
			units = append(units, purgeUnit{h, p})
		}
	}
	return units
}

// apply sends one unit; a request the edge client refuses to build can never
// succeed, so it ends the activity instead of retrying until the deadline.
func (a *Purge) apply(ctx context.Context, e inventory.Edge, in purgeSpec, host, path string) error {
	err := a.send(ctx, e, in, host, path)
	if errors.Is(err, edge.ErrInvalidRequest) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadPurge, err)
	}
	return err
}

func (a *Purge) send(ctx context.Context, e inventory.Edge, in purgeSpec, host, path string) error {
	switch in.Type {
	case PurgeItem:
		// One request purges and probes (edge.Client.PurgeVerified); an
		// edge that only answered "Purged" is probed separately.
		sent := time.Now()
		r, verified, err := a.Edge.PurgeVerified(ctx, e, host, path, in.Soft)
		if err != nil {
			return err
		}
		if verified {
			return staleCopy(e, host, path, r, sent)
		}
		return a.verifyGone(ctx, e, host, path, sent)
	case PurgeWildcard:
		// NHN's grammar ("*" anywhere, "?" one character, "\" escape) as an
		// anchored regex over the canonical request target.
		re, err := cachekey.WildcardRegex(path)
		if err != nil {
			return fmt.Errorf("%w: %w", edge.ErrInvalidRequest, err)
		}
		return a.Edge.BanURLRegex(ctx, e, host, re)
	case PurgeAll:
		return a.Edge.BanPrefix(ctx, e, host, "")
	case PurgeTag:
		_, err := a.Edge.PurgeTag(ctx, e, host, path, in.Soft)
		return err
	default:
		return temporal.NewNonRetryableApplicationError("unknown purge type "+in.Type, ErrBadPurge, nil)
	}
}

// CatchUpEdgeInput names an edge that missed a purge's deadline and the
// hosts (the distribution's domain and aliases) it may still hold stale.
type CatchUpEdgeInput struct {
	EdgeID string   `json:"edgeId"`
	Hosts  []string `json:"hosts"`
}

// CatchUpEdge bans every object of each host on an edge that was
// unreachable until a purge's deadline, so it serves nothing it missed. A ban of
// the whole domain and aliases covers any ITEM, WILDCARD, TAG or ALL purge
// the edge missed; the edge VCL answers "Ban added" only once std.ban
// registered it. Retried (by the workflow) until the edge answers.
func (a *Purge) CatchUpEdge(ctx context.Context, in CatchUpEdgeInput) (CatchUpEdgeResult, error) {
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return CatchUpEdgeResult{}, unknownEdge(in.EdgeID)
	}
	for _, h := range in.Hosts {
		if err := a.apply(ctx, e, purgeSpec{Hosts: in.Hosts, Type: PurgeAll}, h, ""); err != nil {
			return CatchUpEdgeResult{}, fmt.Errorf("catch-up ban of %s on %s: %w", h, in.EdgeID, err)
		}
	}
	logger(ctx, "edgeId", in.EdgeID).Info("edge caught up on a missed purge", "hosts", in.Hosts)
	return CatchUpEdgeResult{Verified: fmt.Sprintf("caught up after the deadline: %d bans of the domain and aliases registered by the edge", len(in.Hosts))}, nil
}
