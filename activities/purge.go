package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/inventory"
)

// Purge types: NHN's ITEM, WILDCARD and ALL, plus cdnflow's TAG.
const (
	PurgeItem     = "ITEM"
	PurgeWildcard = "WILDCARD"
	PurgeAll      = "ALL"
	PurgeTag      = "TAG"
)

// PurgeEdgeInput asks one edge to apply a purge.
type PurgeEdgeInput struct {
	EdgeID string   `json:"edgeId"`
	Hosts  []string `json:"hosts"`
	Type   string   `json:"type"`
	Paths  []string `json:"paths"`
	Soft   bool     `json:"soft,omitempty"`
}

// Purge applies purges on edges.
type Purge struct {
	Inventory *inventory.Inventory
	Edge      *edge.Client
	Logger    *zap.Logger
	// PerEdge caps concurrent purge requests to one edge from this worker,
	// however many purge workflows run at once.
	PerEdge int

	mu    sync.Mutex
	slots map[string]chan struct{}
}

func (a *Purge) slot(edgeID string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.slots == nil {
		a.slots = map[string]chan struct{}{}
	}
	s, ok := a.slots[edgeID]
	if !ok {
		n := a.PerEdge
		if n < 1 {
			n = 16
		}
		s = make(chan struct{}, n)
		a.slots[edgeID] = s
	}
	return s
}

// PurgeEdge runs every host×path unit of a purge on one edge and returns
// only when all are confirmed. A failure returns an error so Temporal
// retries the activity; heartbeated progress makes the retry skip units
// already confirmed.
func (a *Purge) PurgeEdge(ctx context.Context, in PurgeEdgeInput) error {
	info := activity.GetInfo(ctx)
	log := a.Logger.With(zap.String("workflowId", info.WorkflowExecution.ID), zap.String("edgeId", in.EdgeID), zap.Int32("attempt", info.Attempt))
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return unknownEdge(in.EdgeID)
	}
	type unit struct{ host, path string }
	var units []unit
	paths := in.Paths
	if in.Type == PurgeAll {
		paths = []string{""}
	}
	for _, h := range in.Hosts {
		for _, p := range paths {
			units = append(units, unit{h, p})
		}
	}
	done := make([]bool, len(units))
	if activity.HasHeartbeatDetails(ctx) {
		var prev []int
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			for _, i := range prev {
				if i >= 0 && i < len(done) {
					done[i] = true
				}
			}
		}
	}
	var mu sync.Mutex
	var firstErr error
	beat := func() {
		mu.Lock()
		var idx []int
		for i, d := range done {
			if d {
				idx = append(idx, i)
			}
		}
		mu.Unlock()
		activity.RecordHeartbeat(ctx, idx)
	}
	// Beat while requests are in flight too: an edge slower than the
	// heartbeat timeout (but inside its request timeout) must not lose the
	// attempt.
	stopBeat := beatWhile(ctx, beat)
	slots := a.slot(in.EdgeID)
	var wg sync.WaitGroup
	for i, u := range units {
		if done[i] {
			continue
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, u unit) {
			defer wg.Done()
			defer func() { <-slots }()
			started := time.Now()
			err := a.apply(ctx, e, in, u.host, u.path)
			metrics.EdgeLatency.WithLabelValues(e.ID, "purge").Observe(time.Since(started).Seconds())
			result := "done"
			if err != nil {
				result = "failed"
			}
			metrics.PurgeUnits.WithLabelValues(e.ID, in.Type, result).Inc()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			done[i] = true
		}(i, u)
	}
	wg.Wait()
	stopBeat()
	beat()
	if firstErr != nil {
		log.Warn("purge on edge failed; will retry", zap.Error(firstErr))
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("purge on %s stopped: %w", in.EdgeID, err)
	}
	log.Debug("purge confirmed", zap.Int("units", len(units)))
	return nil
}

// apply sends one unit; a request the edge client refuses to build can never
// succeed, so it ends the activity instead of retrying until the deadline.
func (a *Purge) apply(ctx context.Context, e inventory.Edge, in PurgeEdgeInput, host, path string) error {
	err := a.send(ctx, e, in, host, path)
	if errors.Is(err, edge.ErrInvalidRequest) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadPurge, err)
	}
	return err
}

func (a *Purge) send(ctx context.Context, e inventory.Edge, in PurgeEdgeInput, host, path string) error {
	switch in.Type {
	case PurgeItem:
		return a.Edge.Purge(ctx, e, host, path, in.Soft)
	case PurgeWildcard:
		return a.Edge.BanPrefix(ctx, e, host, strings.TrimSuffix(path, "*"))
	case PurgeAll:
		return a.Edge.BanPrefix(ctx, e, host, "")
	case PurgeTag:
		_, err := a.Edge.PurgeTag(ctx, e, host, path, in.Soft)
		return err
	default:
		return temporal.NewNonRetryableApplicationError("unknown purge type "+in.Type, ErrBadPurge, nil)
	}
}
