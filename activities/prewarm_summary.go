package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cdnflow/cdnflow/internal/payload"
)

// ChunkSummary is what a finished PrewarmChunk publishes for readers, beside
// its per-pair rows: the chunk's URL range and each edge's outcome of it
// (the same rows the activity returns to the job). It is written once the
// rows are stored, as the attempt's last step, so a summary that exists is
// final: a retried attempt that stored it already writes the same one.
//
// The status of a running job is its input plus its chunks' summaries
// (workflows.ReadPrewarmStatus); nothing reads the job's history for it.
type ChunkSummary struct {
	Chunk int               `json:"chunk"`
	Start int               `json:"start"`
	End   int               `json:"end"`
	Edges []EdgeChunkResult `json:"edges"`
}

// PutChunkSummary writes the summary of chunk in.Chunk with outcome res
// (PrewarmChunk's last step).
func PutChunkSummary(ctx context.Context, s payload.Store, in PrewarmChunkInput, res PrewarmChunkResult) error {
	data, err := json.Marshal(ChunkSummary{Chunk: in.Chunk, Start: in.Start, End: in.End, Edges: res.Edges})
	if err == nil {
		err = s.Put(ctx, payload.PrewarmSummaryKey(in.JobID, in.URLsKey, in.Chunk), data)
	}
	if err != nil {
		return fmt.Errorf("store prewarm chunk %d summary: %w", in.Chunk, err)
	}
	return nil
}

// ReadChunkSummary reads the summary of one chunk of job jobID (whose URL
// list is under urlsKey); ok is false when the chunk has not finished.
func ReadChunkSummary(ctx context.Context, s payload.Store, jobID, urlsKey string, chunk int) (sum ChunkSummary, ok bool, err error) {
	key := payload.PrewarmSummaryKey(jobID, urlsKey, chunk)
	data, err := s.Get(ctx, key)
	if errors.Is(err, payload.ErrNotFound) {
		return sum, false, nil
	}
	if err != nil {
		return sum, false, fmt.Errorf("read prewarm chunk summary %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		return sum, false, fmt.Errorf("decode prewarm chunk summary %s: %w", key, err)
	}
	return sum, true, nil
}
