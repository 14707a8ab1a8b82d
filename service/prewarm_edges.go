package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/workflows"
)

// PairRow is one URL×edge pair in the per-edge detail view.
type PairRow struct {
	EdgeID string `json:"edgeId"`
	URL    string `json:"url"` // as given in url_list
	// Key is the canonical cache key the edge was asked for
	// (internal/cachekey): the URL as a browser sends it.
	Key        string `json:"key,omitempty"`
	State      string `json:"state"` // success, failed, pending
	Status     int    `json:"status,omitempty"`
	Cache      string `json:"cache,omitempty"`
	Age        int    `json:"age"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// PairPage is a page of PairRows; rows are ordered edge by edge, then by
// the URL's position in url_list.
type PairPage struct {
	RequestID  string    `json:"requestID"`
	TotalPairs int       `json:"totalPairs"`
	Page       int       `json:"page"`
	PageSize   int       `json:"pageSize"`
	Pairs      []PairRow `json:"pairs"`
}

// PrewarmPairs pages through every URL×edge pair of a job with its outcome,
// read from the per-chunk results the activities stored.
func (s *Service) PrewarmPairs(ctx context.Context, requestID string, page, pageSize int) (PairPage, error) {
	out := PairPage{RequestID: requestID, Page: page, PageSize: pageSize, Pairs: []PairRow{}}
	jobID := workflows.PrewarmWorkflowID(requestID)
	st, urls, err := s.prewarmJob(ctx, requestID, workflows.PrewarmPage{Limit: 1})
	if err != nil {
		return out, err
	}
	n := len(urls)
	out.TotalPairs = n * len(st.Edges)
	chunks := map[string]map[int]activities.PairDetail{}
	load := func(edgeID string, chunk int) (map[int]activities.PairDetail, error) {
		key := payload.PrewarmDetailKey(jobID, st.URLsKey, edgeID, chunk)
		if m, ok := chunks[key]; ok {
			return m, nil
		}
		m := map[int]activities.PairDetail{}
		data, err := s.Payloads().Get(ctx, key)
		if err != nil && !errors.Is(err, payload.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			var rows []activities.PairDetail
			if err := json.Unmarshal(data, &rows); err != nil {
				return nil, fmt.Errorf("decode pair details %s: %w", key, err)
			}
			for _, r := range rows {
				m[r.Index] = r
			}
		}
		chunks[key] = m
		return m, nil
	}
	chunkSize := st.ChunkSize
	if chunkSize <= 0 {
		chunkSize = 1
	}
	for r := (page - 1) * pageSize; r < out.TotalPairs && len(out.Pairs) < pageSize; r++ {
		edgeID := st.Edges[r/n].EdgeID
		i := r % n
		m, err := load(edgeID, i/chunkSize)
		if err != nil {
			return out, err
		}
		row := PairRow{EdgeID: edgeID, URL: urls[i], State: "pending"}
		if k, err := cachekey.Parse(urls[i]); err == nil {
			row.Key = k.String()
		}
		if d, ok := m[i]; ok {
			row.State = "success"
			if d.Error != "" {
				row.State = "failed"
			}
			row.Status, row.Cache, row.Age, row.Attempts, row.DurationMS, row.Error = d.Status, d.Cache, d.Age, d.Attempts, d.DurationMS, d.Error
		}
		out.Pairs = append(out.Pairs, row)
	}
	return out, nil
}
