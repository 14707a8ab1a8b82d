package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/cdnflow/cdnflow/activities"
)

// waitEdgesSynced waits (up to 2 min) until the edge sync loop's first
// round has finished on every edge: each has a report naming its active
// VCL and no error (GET /v1/edges). That round loads cdnflow's VCL on
// every edge, and varnishd compiles it with gcc (~1 s of a core per edge):
// a benchmark that starts before it measures those compiles, not cdnflow.
func (s *Stack) waitEdgesSynced(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	last := "no answer"
	for {
		if missing, err := s.unsyncedEdges(ctx); err != nil {
			last = err.Error()
		} else if missing == 0 {
			return nil
		} else {
			last = fmt.Sprintf("%d edges not synced", missing)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("edges not synced within 2 min: %s", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// unsyncedEdges counts the edges without a clean sync report.
func (s *Stack) unsyncedEdges(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL+"/v1/edges", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Edges []struct {
			ID   string                     `json:"id"`
			Sync *activities.EdgeSyncReport `json:"sync"`
		} `json:"edges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("GET /v1/edges: HTTP %d: %w", resp.StatusCode, err)
	}
	missing := 0
	for _, e := range out.Edges {
		if e.Sync == nil || e.Sync.VCL == "" || e.Sync.Error != "" {
			missing++
		}
	}
	return missing, nil
}
