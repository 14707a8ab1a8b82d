// Package service is what the HTTP handlers call: it turns validated
// requests into workflow starts, queries and visibility lookups, and reads
// what the workflows publish for readers (workflows/prewarm_read.go,
// workflows/purge_read.go). Its only state is the admission gate of this
// process and its coalesced reads (readcache.go); every answer comes from
// Temporal and the payload store, and so do the purge rate limits
// (purge_limit.go), which hold across API processes.
package service

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// Deps is what a Service is built from.
type Deps struct {
	Temporal  client.Client
	Config    config.Config
	Inventory *inventory.Inventory
	Logger    *zap.Logger
	// Store is the claim-check store (payload.Open of
	// Config.PayloadStoreURL()); nil: payload.Missing, every prewarm call
	// fails.
	Store payload.Store
}

// Service turns API requests into workflow starts, queries and visibility
// lookups. Build it with New; it is safe for concurrent use.
type Service struct {
	temporal  client.Client
	config    config.Config
	inventory *inventory.Inventory
	logger    *zap.Logger
	store     payload.Store
	// gate refuses new jobs while the workers are behind (admission.go).
	gate *backlogGate
	// origins checks origin addresses at create, PUT and PATCH (origin.go).
	origins *originChecker
	// reads coalesces status and list reads (readcache.go).
	reads *reads
	// heavy bounds job starts and uncached status reads (shed.go).
	heavy *slots
}

// New returns a Service with its own admission gate: two Services admit
// independently, but share the purge rate limits kept in Temporal.
func New(d Deps) *Service {
	s := &Service{
		temporal: d.Temporal, config: d.Config, inventory: d.Inventory, logger: d.Logger, store: d.Store,
		gate: &backlogGate{}, origins: &originChecker{}, reads: newReads(),
		heavy: newSlots(d.Config.HeavyConcurrency, d.Config.HeavyWait, "job starts and status reads"),
	}
	s.reads.visibility = newSlots(maxVisibilityReads, visibilityWait(d.Config), "visibility scans")
	return s
}

// Payloads is the claim-check store shared with the workers.
func (s *Service) Payloads() payload.Store {
	if s.store != nil {
		return s.store
	}
	return payload.Missing
}

// ErrNotFound means no job has that id.
var ErrNotFound = errors.New("not found")

// StartEdgeCheck starts an EdgeCheckWorkflow and returns its workflow id.
func (s *Service) StartEdgeCheck(ctx context.Context, id string, edgeIDs []string) (string, error) {
	opts := client.StartWorkflowOptions{
		ID:                    workflows.EdgeCheckWorkflowID(id),
		TaskQueue:             s.config.TaskQueue,
		TypedSearchAttributes: newSearchAttributes(workflows.KindAttr.ValueSet(workflows.KindEdgeCheck)),
	}
	run, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.EdgeCheckWorkflow, workflows.EdgeCheckInput{EdgeIDs: edgeIDs})
	if err != nil {
		return "", fmt.Errorf("start edge check: %w", err)
	}
	return run.GetID(), nil
}

// EdgeCheck answers the progress of an edge check from its workflow query.
func (s *Service) EdgeCheck(ctx context.Context, workflowID string) (workflows.EdgeCheckResult, error) {
	var out workflows.EdgeCheckResult
	v, err := s.query(ctx, workflowID, workflows.QueryEdgeCheck)
	if err != nil {
		if isNotFound(err) {
			return out, ErrNotFound
		}
		return out, fmt.Errorf("query edge check %s: %w", workflowID, err)
	}
	if err := v.Get(&out); err != nil {
		return out, fmt.Errorf("decode edge check %s: %w", workflowID, err)
	}
	return out, nil
}

// EdgeSync answers the latest sync report of every edge from the edge
// sync loop's query (workflows.QueryEdgeSync); ErrNotFound when the loop
// has not started.
func (s *Service) EdgeSync(ctx context.Context) (map[string]activities.EdgeSyncReport, error) {
	out := map[string]activities.EdgeSyncReport{}
	v, err := s.query(ctx, workflows.EdgeSyncWorkflowID, workflows.QueryEdgeSync)
	if err != nil {
		if isNotFound(err) {
			return out, ErrNotFound
		}
		return out, fmt.Errorf("query edge sync: %w", err)
	}
	if err := v.Get(&out); err != nil {
		return out, fmt.Errorf("decode edge sync: %w", err)
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// IsNotFound reports whether err means "no such workflow".
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) || isNotFound(err) }
