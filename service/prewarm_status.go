package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/workflows"
)

// PrewarmStatusResponse is the PrewarmStatus API body. successUrl is only
// present when ShowSuccessUrls is on; the last fields are cdnflow's.
type PrewarmStatusResponse struct {
	Status        string                   `json:"status"`
	Total         int                      `json:"total"`
	Completed     int                      `json:"completed"`
	InProgress    int                      `json:"inProgress"`
	FailedURL     []string                 `json:"failedUrl"`
	InProgressURL []string                 `json:"inProgressUrl"`
	SuccessURL    *[]string                `json:"successUrl,omitempty"`
	RequestID     string                   `json:"requestID"`
	Domain        string                   `json:"domain"`
	Failed        int                      `json:"failed"`
	Succeeded     int                      `json:"succeeded"`
	Page          int                      `json:"page"`
	PageSize      int                      `json:"pageSize"`
	Edges         []workflows.EdgeProgress `json:"edges"`
	Error         string                   `json:"error,omitempty"`
}

// PrewarmStatus answers from what the job publishes (prewarmJob); URL lists
// are paged (page from 1) and resolved from the job's URL list in the
// payload store.
func (s *Service) PrewarmStatus(ctx context.Context, requestID string, page, pageSize int) (PrewarmStatusResponse, error) {
	var out PrewarmStatusResponse
	st, urls, err := s.prewarmJob(ctx, requestID, workflows.PrewarmPage{Offset: (page - 1) * pageSize, Limit: pageSize})
	if err != nil {
		return out, err
	}
	pick := func(idx []int) []string {
		list := make([]string, 0, len(idx))
		for _, i := range idx {
			if i >= 0 && i < len(urls) {
				list = append(list, urls[i])
			}
		}
		return list
	}
	out = PrewarmStatusResponse{
		Status: st.Status, Total: st.Total, Completed: st.Completed, InProgress: st.InProgress,
		FailedURL: pick(st.FailedIdx), InProgressURL: pick(st.InProgressIdx),
		RequestID: requestID, Domain: st.Domain, Failed: st.FailedCount, Succeeded: st.SuccessCount,
		Page: page, PageSize: pageSize, Edges: st.Edges, Error: st.Error,
	}
	if s.config.ShowSuccessURLs {
		list := pick(st.SuccessIdx)
		out.SuccessURL = &list
	}
	return out, nil
}

// Prewarm status freshness: a job's status is read from what the job
// publishes (workflows.ReadPrewarmStatus: one DescribeWorkflowExecution for
// its memo and state, its chunk summaries or its result), at most once per
// prewarmRunningTTL per page while it runs, however many pollers ask; past
// that its answer is still served for prewarmStaleFor while one background
// read refreshes it, so a poller never waits on Temporal for a job it
// polled a moment ago. A finished job's answer never changes (finishedTTL).
const (
	prewarmRunningTTL = 250 * time.Millisecond
	prewarmStaleFor   = 2 * time.Second
)

// prewarmJob reads a job's status page q (coalesced: readCache) and loads
// its URL list.
func (s *Service) prewarmJob(ctx context.Context, requestID string, q workflows.PrewarmPage) (workflows.PrewarmStatus, []string, error) {
	if !validRequestID(requestID) {
		return workflows.PrewarmStatus{}, nil, ErrNotFound
	}
	key := fmt.Sprintf("%s/%d/%d", requestID, q.Offset, q.Limit)
	st, err := s.reads.prewarms.get(ctx, key, func(ctx context.Context) (workflows.PrewarmStatus, time.Duration, error) {
		release, err := s.heavy.acquire(ctx)
		if err != nil {
			return workflows.PrewarmStatus{}, 0, err
		}
		defer release()
		st, err := s.readPrewarm(ctx, requestID, q)
		ttl := prewarmRunningTTL
		if st.Status != "" && st.Status != workflows.PrewarmInProgress {
			ttl = finishedTTL
		}
		return st, ttl, err
	})
	if err != nil {
		return st, nil, err
	}
	urls, err := s.reads.urlLists.get(ctx, st.URLsKey, func(ctx context.Context) ([]string, time.Duration, error) {
		list, err := payload.PrewarmURLs(ctx, s.Payloads(), st.URLsKey)
		return list, urlListTTL, err
	})
	return st, urls, err
}

// A job's URL list never changes under its key (payload.PutPrewarmURLs),
// so pollers of one job share one decoded copy instead of reading and
// decoding up to 100,000 URLs per status call. Lists are kept for
// urlListTTL after their read, at most maxCachedURLLists of them and
// maxCachedURLBytes of URLs (plus urlOverhead each) in all: hundreds of
// small jobs polled at once stay cached, a few large ones bound the memory.
const (
	maxCachedURLLists = 4096
	maxCachedURLBytes = 64 << 20
	urlOverhead       = 16 // a string header
	urlListTTL        = time.Minute
)

func newURLListCache() *readCache[[]string] {
	c := newReadCache[[]string](maxCachedURLLists)
	c.maxWeight = maxCachedURLBytes
	c.weigh = func(list []string) int {
		n := 0
		for _, u := range list {
			n += len(u) + urlOverhead
		}
		return n
	}
	return c
}

// readPrewarm reads page q of a job's status: the job's memo and state
// from one describe, then workflows.ReadPrewarmStatus (its chunk
// summaries while it runs, its result once it completed).
func (s *Service) readPrewarm(ctx context.Context, requestID string, q workflows.PrewarmPage) (workflows.PrewarmStatus, error) {
	var st workflows.PrewarmStatus
	id := workflows.PrewarmWorkflowID(requestID)
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if isNotFound(err) {
			return st, ErrNotFound
		}
		return st, fmt.Errorf("describe prewarm %s: %w", requestID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	job, err := workflows.PrewarmJobFromMemo(info.GetMemo())
	if err != nil {
		return st, fmt.Errorf("prewarm %s: %w", requestID, err)
	}
	r := workflows.PrewarmRead{Job: job, Query: q, WithSuccess: s.config.ShowSuccessURLs}
	switch status := info.GetStatus(); status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result workflows.PrewarmStatus
		if err := s.temporal.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, &result); err != nil {
			return st, fmt.Errorf("read prewarm %s result: %w", requestID, err)
		}
		r.Result = &result
	default:
		r.Ended = strings.ToLower(status.String()) // "terminated", "canceled", ...
	}
	return workflows.ReadPrewarmStatus(ctx, s.Payloads(), r)
}

func validRequestID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, r := range id {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if r != '-' {
				return false
			}
		} else if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
