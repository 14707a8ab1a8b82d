package activities

import (
	"context"
	"encoding/binary"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
)

// chunkBeat is PrewarmChunk's heartbeat: every finished pair of the
// chunk, per edge, packed as varints. A chunk holds ~4,000 pairs; as JSON
// rows (fanRow, ~90 bytes each) one beat would be ~400 KB, which every
// heartbeat writes into the job's mutable state and every Describe of the
// job carries. Packed it is ~10 bytes a pair.
type chunkBeat struct {
	// V is chunkBeatVersion; a beat without it is plain []fanRow rows.
	V     int         `json:"v"`
	Edges []chunkEdge `json:"edges"`
}

// chunkBeatVersion marks the packed format.
const chunkBeatVersion = 2

// chunkEdge is one edge's finished pairs. Rows holds, per pair in index
// order, seven varints: index delta from the previous pair (the first:
// from 0), HTTP status, 1 + position in Words of the cache state (0:
// none), age (s), attempts, duration (ms), 1 + position in Words of the
// error (0: none).
type chunkEdge struct {
	ID    string   `json:"id"`
	Words []string `json:"words,omitempty"`
	Rows  []byte   `json:"rows"`
}

// packChunkBeat packs rows (ordered by edge, then index) into a beat.
func packChunkBeat(rows []fanRow) chunkBeat {
	beat := chunkBeat{V: chunkBeatVersion}
	var cur *chunkEdge
	words := map[string]int64{}
	prev := 0
	word := func(s string) int64 {
		if s == "" {
			return 0
		}
		if n, ok := words[s]; ok {
			return n
		}
		cur.Words = append(cur.Words, s)
		words[s] = int64(len(cur.Words))
		return words[s]
	}
	for _, r := range rows {
		if cur == nil || cur.ID != r.Edge {
			beat.Edges = append(beat.Edges, chunkEdge{ID: r.Edge})
			cur = &beat.Edges[len(beat.Edges)-1]
			clear(words)
			prev = 0
		}
		for _, v := range []int64{int64(r.Index - prev), int64(r.Status), word(r.Cache), int64(r.Age),
			int64(r.Attempts), r.DurationMS, word(r.Error)} {
			cur.Rows = binary.AppendVarint(cur.Rows, v)
		}
		prev = r.Index
	}
	return beat
}

// unpack returns the beat's rows; an error means a corrupt beat.
func (b chunkBeat) unpack() ([]fanRow, error) {
	var out []fanRow
	for _, e := range b.Edges {
		buf, prev := e.Rows, 0
		for len(buf) > 0 {
			var v [7]int64
			for k := range v {
				n, size := binary.Varint(buf)
				if size <= 0 {
					return nil, fmt.Errorf("prewarm chunk heartbeat of %s: corrupt row", e.ID)
				}
				v[k], buf = n, buf[size:]
			}
			cache, ok1 := e.word(v[2])
			errText, ok2 := e.word(v[6])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("prewarm chunk heartbeat of %s: word out of range", e.ID)
			}
			prev += int(v[0])
			out = append(out, fanRow{Edge: e.ID, PairDetail: PairDetail{Index: prev, Status: int(v[1]), Cache: cache,
				Age: int(v[3]), Attempts: int(v[4]), DurationMS: v[5], Error: errText}})
		}
	}
	return out, nil
}

// word resolves a Words reference (0: none); ok is false out of range.
func (e chunkEdge) word(n int64) (string, bool) {
	switch {
	case n == 0:
		return "", true
	case n < 0 || n > int64(len(e.Words)):
		return "", false
	}
	return e.Words[n-1], true
}

// beatChunk records p's rows, packed, as the attempt's heartbeat.
func beatChunk(ctx context.Context, rows []fanRow) {
	activity.RecordHeartbeat(ctx, packChunkBeat(rows))
}

// lastChunkRows reads the previous attempt's heartbeat: the packed beat,
// or the []fanRow rows an older worker wrote; nil when there is none or it
// cannot be read (the pairs are then fetched again).
func lastChunkRows(ctx context.Context) []fanRow {
	if !activity.HasHeartbeatDetails(ctx) {
		return nil
	}
	var beat chunkBeat
	if err := activity.GetHeartbeatDetails(ctx, &beat); err != nil || beat.V != chunkBeatVersion {
		return nil
	}
	rows, err := beat.unpack()
	if err != nil {
		return nil
	}
	return rows
}

// EdgePair is one pair's outcome as a prewarm heartbeat holds it.
type EdgePair struct {
	Edge string // edge id
	PairDetail
}

// HeartbeatRows decodes a PrewarmChunk activity's packed heartbeat
// details. For operators and tests reading a Describe.
func HeartbeatRows(details *commonpb.Payloads) ([]EdgePair, error) {
	var beat chunkBeat
	if err := converter.GetDefaultDataConverter().FromPayloads(details, &beat); err != nil {
		return nil, fmt.Errorf("prewarm heartbeat: %w", err)
	}
	if beat.V != chunkBeatVersion {
		return nil, fmt.Errorf("prewarm heartbeat: format %d, want %d", beat.V, chunkBeatVersion)
	}
	rows, err := beat.unpack()
	if err != nil {
		return nil, err
	}
	out := make([]EdgePair, len(rows))
	for i, r := range rows {
		out[i] = EdgePair(r)
	}
	return out, nil
}

// HeartbeatPairs counts the pairs in a prewarm activity's heartbeat
// details (HeartbeatRows).
func HeartbeatPairs(details *commonpb.Payloads) (int, error) {
	rows, err := HeartbeatRows(details)
	return len(rows), err
}
