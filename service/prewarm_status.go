package service

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
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

// PrewarmStatus answers from the job workflow's query; URL lists are paged
// (page from 1) and resolved from the job's URL list in the payload store.
func (s *Service) PrewarmStatus(ctx context.Context, requestID string, page, pageSize int) (PrewarmStatusResponse, error) {
	var out PrewarmStatusResponse
	st, urls, err := s.prewarmJob(ctx, requestID, workflows.PrewarmStatusQuery{Offset: (page - 1) * pageSize, Limit: pageSize})
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

// statusWithoutQuery answers a job's status without a workflow query where
// the state is known exactly otherwise, because a query costs a worker a
// task (and a full replay for a closed workflow) and waits behind any
// backlog:
//   - a running job with a short history (statusFromHistory): its status
//     follows from its input and its finished chunks;
//   - a finished job's result holds its final counts, and its URL lists
//     whole when they are short (up to 100 entries; the success list
//     matters only with --show-success-urls).
func (s *Service) statusWithoutQuery(ctx context.Context, workflowID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, bool, error) {
	var st workflows.PrewarmStatus
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return st, false, err
	}
	info := desc.GetWorkflowExecutionInfo()
	switch {
	case info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := s.temporal.GetWorkflow(ctx, workflowID, info.GetExecution().GetRunId()).Get(ctx, &st); err != nil {
			return st, false, nil
		}
		return pageResult(st, q, s.config.ShowSuccessURLs)
	case info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && info.GetHistoryLength() <= maxStatusHistory:
		return s.statusFromHistory(ctx, workflowID, info.GetExecution().GetRunId(), q)
	}
	return st, false, nil
}

// pageResult answers page q of a finished job from its result, when the
// result holds its URL lists whole (ok false: cut short, the query pages
// them; the success list matters only when successShown).
func pageResult(st workflows.PrewarmStatus, q workflows.PrewarmStatusQuery, successShown bool) (workflows.PrewarmStatus, bool, error) {
	if len(st.FailedIdx) != st.FailedCount || len(st.InProgressIdx) != st.InProgress || (successShown && len(st.SuccessIdx) != st.SuccessCount) {
		return st, false, nil
	}
	page := func(list []int) []int {
		from := min(q.Offset, len(list))
		return list[from:min(from+q.Limit, len(list))]
	}
	st.FailedIdx, st.SuccessIdx, st.InProgressIdx = page(st.FailedIdx), page(st.SuccessIdx), page(st.InProgressIdx)
	return st, true, nil
}

// maxStatusHistory is the longest running job's history the API reads
// instead of querying the job: a few chunks' worth of events.
const maxStatusHistory = 60

// statusFromHistory rebuilds a running job's status from its history when
// that is exact (prewarmTally). ok is false when the query must answer.
func (s *Service) statusFromHistory(ctx context.Context, workflowID, runID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, bool, error) {
	t := newPrewarmTally()
	it := s.temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return workflows.PrewarmStatus{}, false, fmt.Errorf("read prewarm history: %w", err)
		}
		if !t.add(ev) {
			return workflows.PrewarmStatus{}, false, nil
		}
	}
	st, ok := t.status(q)
	return st, ok, nil
}

// prewarmTally follows a job's history events: a job whose first workflow
// task has not run (a queue backlog) has nothing done, and a job's tally
// is its input plus the results of its completed PrewarmChunk activities
// (workflows.PrewarmStatusFromChunks). Any other event (a fired timer, the
// job's end) means the tally cannot tell: add returns false.
type prewarmTally struct {
	job       workflows.PrewarmJob
	progress  *workflows.PrewarmProgress // from the first finished chunk
	scheduled map[int64]activities.PrewarmChunkInput
	started   bool
}

func newPrewarmTally() *prewarmTally {
	return &prewarmTally{scheduled: map[int64]activities.PrewarmChunkInput{}}
}

// add applies one event; false when the tally cannot account for it.
func (t *prewarmTally) add(ev *historypb.HistoryEvent) bool {
	dc := converter.GetDefaultDataConverter()
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		in := ev.GetWorkflowExecutionStartedEventAttributes().GetInput()
		if in == nil || dc.FromPayloads(in, &t.job) != nil {
			return false
		}
		t.started = true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED,
		enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
		enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_TIMER_STARTED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := ev.GetActivityTaskScheduledEventAttributes()
		var in activities.PrewarmChunkInput
		if a.GetActivityType().GetName() != "PrewarmChunk" || dc.FromPayloads(a.GetInput(), &in) != nil {
			return false
		}
		t.scheduled[ev.GetEventId()] = in
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		a := ev.GetActivityTaskCompletedEventAttributes()
		in, ok := t.scheduled[a.GetScheduledEventId()]
		var res activities.PrewarmChunkResult
		if !ok || dc.FromPayloads(a.GetResult(), &res) != nil {
			return false
		}
		if t.progress == nil {
			t.progress = workflows.NewPrewarmProgress(t.job)
		}
		for _, r := range res.Edges {
			t.progress.Apply(workflows.ChunkReport{EdgeID: r.EdgeID, Chunk: in.Chunk, Start: in.Start, End: in.End, Failed: r.Failed})
		}
	default:
		return false
	}
	return true
}

// status is the job's status when the events so far determine it.
func (t *prewarmTally) status(q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, bool) {
	switch {
	case !t.started:
		return workflows.PrewarmStatus{}, false
	case t.progress != nil:
		return t.progress.Status(q), true
	}
	return workflows.PrewarmStatusFromChunks(t.job, nil, q), true
}

// prewarmAnswer is a job's status as one read found it.
type prewarmAnswer struct {
	st workflows.PrewarmStatus
}

// prewarmJob reads a job's state (coalesced, served stale while it is
// refreshed: prewarm_started.go) and loads its URL list.
func (s *Service) prewarmJob(ctx context.Context, requestID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, []string, error) {
	if !validRequestID(requestID) {
		return workflows.PrewarmStatus{}, nil, ErrNotFound
	}
	key := fmt.Sprintf("%s/%d/%d", requestID, q.Offset, q.Limit)
	a, ok := s.reads.prewarmsStarted.live(requestID, q)
	var err error
	if !ok {
		a, err = s.reads.prewarms.get(ctx, key, func(ctx context.Context) (prewarmAnswer, time.Duration, error) {
			st, err := s.readPrewarm(ctx, requestID, q)
			ttl := prewarmRunningTTL
			if st.Status != "" && st.Status != workflows.PrewarmInProgress {
				ttl = finishedTTL
			}
			return prewarmAnswer{st: st}, ttl, err
		})
	}
	if err != nil {
		return a.st, nil, err
	}
	urls, err := s.reads.urlLists.get(ctx, a.st.URLsKey, func(ctx context.Context) ([]string, time.Duration, error) {
		list, err := payload.PrewarmURLs(ctx, s.Payloads(), a.st.URLsKey)
		return list, urlListTTL, err
	})
	return a.st, urls, err
}

// A job's URL list never changes under its key (payload.PutPrewarmURLs),
// so pollers of one job share one decoded copy instead of reading and
// decoding up to 100,000 URLs per status call. At most
// maxCachedURLLists lists are kept, each for urlListTTL after its read.
const (
	maxCachedURLLists = 32
	urlListTTL        = time.Minute
)

// readPrewarm answers a job's state without a query where it can
// (statusWithoutQuery), else from the job workflow's query.
func (s *Service) readPrewarm(ctx context.Context, requestID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, error) {
	var st workflows.PrewarmStatus
	if known, ok, err := s.statusWithoutQuery(ctx, workflows.PrewarmWorkflowID(requestID), q); err != nil {
		if isNotFound(err) {
			return st, ErrNotFound
		}
		return st, fmt.Errorf("describe prewarm %s: %w", requestID, err)
	} else if ok {
		return known, nil
	}
	v, err := s.query(ctx, workflows.PrewarmWorkflowID(requestID), workflows.QueryPrewarmStatus, q)
	if err != nil {
		if isNotFound(err) {
			return st, ErrNotFound
		}
		return st, fmt.Errorf("query prewarm %s: %w", requestID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode prewarm status: %w", err)
	}
	return st, nil
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
