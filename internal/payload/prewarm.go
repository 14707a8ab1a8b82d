package payload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Payloads of a prewarm job. The API writes them and the batch activities
// read them (the URL list), or the reverse (the per-pair outcomes); both
// sides build the keys and encode the lists here.

// PrewarmURLsKey is where a prewarm job's URL list is stored: a JSON array
// of the normalized URLs, in url_list order. requestID is the job's UUID.
func PrewarmURLsKey(requestID string) string { return "prewarm/" + requestID + "/urls.json" }

// PrewarmDetailKey is where one chunk's per-pair outcomes are stored: a
// JSON array of activities.PairDetail, one per URL of the chunk on edgeID.
// jobID is the job's workflow id; urlsKey is the job's URL list key. A job
// whose list has a key of its own (an Idempotency-Key reused after
// retention, see PutPrewarmURLs) stores its rows apart from the earlier
// job's, so the pair view never shows an earlier job's outcome.
func PrewarmDetailKey(jobID, urlsKey, edgeID string, chunk int) string {
	return prewarmJobBase(jobID, urlsKey) + "/edges/" + edgeID + "/" + strconv.Itoa(chunk) + ".json"
}

// PrewarmSummaryKey is where one chunk's summary is stored, beside its
// per-pair rows: a small JSON object (activities.ChunkSummary) with each
// edge's count of stored URLs and failed indices. A job's status while it
// runs is its input plus these summaries (workflows/prewarm_read.go).
func PrewarmSummaryKey(jobID, urlsKey string, chunk int) string {
	return prewarmJobBase(jobID, urlsKey) + "/chunks/" + strconv.Itoa(chunk) + ".json"
}

// prewarmJobBase is the prefix of one job's outcomes: a list with a key of
// its own gets a prefix of its own.
func prewarmJobBase(jobID, urlsKey string) string {
	base := "prewarm/" + jobID
	if gen, ok := strings.CutPrefix(path.Base(urlsKey), "urls-"); ok {
		base += "/gen-" + strings.TrimSuffix(gen, ".json")
	}
	return base
}

// PutPrewarmURLs stores a job's URL list and returns its key: the first
// list of requestID under PrewarmURLsKey(requestID). When that key already
// holds another list (the Idempotency-Key of a job whose history passed
// retention is reused with a new body), the list gets a key of its own
// ("prewarm/<requestID>/urls-<n>.json", the first free n), so a new job
// never runs under an old list. The same list stored again answers the key
// that holds it, so a repeat of one request shares one list.
func PutPrewarmURLs(ctx context.Context, s Store, requestID string, urls []string) (string, error) {
	data, err := json.Marshal(urls)
	if err != nil {
		return "", fmt.Errorf("encode url list: %w", err)
	}
	key := PrewarmURLsKey(requestID)
	for n := 2; ; n++ {
		err := s.PutIfAbsent(ctx, key, data)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, ErrExists) {
			return "", fmt.Errorf("store url list %s: %w", key, err)
		}
		old, err := s.Get(ctx, key)
		if err != nil {
			return "", fmt.Errorf("read url list %s: %w", key, err)
		}
		if bytes.Equal(old, data) {
			return key, nil
		}
		if n > maxURLListGenerations {
			return "", fmt.Errorf("store url list of %s: %d other lists are stored already", requestID, maxURLListGenerations)
		}
		key = "prewarm/" + requestID + "/urls-" + strconv.Itoa(n) + ".json"
	}
}

// maxURLListGenerations bounds how many different lists one requestID
// (one Idempotency-Key reused after retention) may store.
const maxURLListGenerations = 1000

// PrewarmURLs reads the URL list stored under key; a missing list is an
// error wrapping ErrNotFound.
func PrewarmURLs(ctx context.Context, s Store, key string) ([]string, error) {
	data, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read url list: %w", err)
	}
	var urls []string
	if err := json.Unmarshal(data, &urls); err != nil {
		return nil, fmt.Errorf("decode url list %s: %w", key, err)
	}
	return urls, nil
}
