package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// MaxPrewarmURLs is the largest url_list one request may carry.
const MaxPrewarmURLs = 100_000

// MaxPrewarmTimeout bounds the `timeout` field.
const MaxPrewarmTimeout = 24 * time.Hour

// PrewarmRequest is the Prewarm API body (CloudFront Extensions), plus the
// optional fields timeout, header and need_invalidate.
type PrewarmRequest struct {
	URLList    []string        `json:"url_list"`
	CFDomain   string          `json:"cf_domain"`
	Protocol   string          `json:"protocol"`
	TargetType string          `json:"target_type"`
	Region     json.RawMessage `json:"region"`
	// Timeout is seconds (a number) or a Go duration string ("15m").
	Timeout        json.RawMessage `json:"timeout,omitempty"`
	Header         json.RawMessage `json:"header,omitempty"`
	NeedInvalidate bool            `json:"need_invalidate,omitempty"`
}

// ValidationError is bad input; its message is safe to show the caller.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// validPrewarm is a checked request ready to become a job.
type validPrewarm struct {
	urls    []string
	domain  string
	scheme  string
	edges   []inventory.Edge
	timeout time.Duration
	header  map[string]string
}

// ValidatePrewarm checks a request against the spec and the inventory: the
// shape of every field, URLs with valid hosts, and the targets (target_type
// inferred from region when omitted). Which distribution the URL hosts are
// on is checked by (*Service).checkPrewarm, which also sets the domain; an
// empty scheme means each URL's own.
func ValidatePrewarm(req PrewarmRequest, inv *inventory.Inventory, defaultTimeout time.Duration) (validPrewarm, error) {
	var v validPrewarm
	if len(req.URLList) == 0 {
		return v, invalid("url_list must list at least one URL")
	}
	if len(req.URLList) > MaxPrewarmURLs {
		return v, invalid("url_list has %d URLs; at most %d per request", len(req.URLList), MaxPrewarmURLs)
	}
	v.domain = strings.ToLower(strings.TrimSpace(req.CFDomain))
	if v.domain != "" && !validHostname(v.domain) {
		return v, invalid("cf_domain %q is not a valid domain name", req.CFDomain)
	}
	switch p := strings.ToLower(req.Protocol); p {
	case "":
		v.scheme = "" // each URL's own scheme (issue 18)
	case "http":
		v.scheme = "http"
	case "https":
		v.scheme = "https"
	default:
		return v, invalid("protocol must be http or https, not %q", req.Protocol)
	}
	seen := make(map[string]bool, len(req.URLList))
	for i, raw := range req.URLList {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return v, invalid("url_list[%d] %q is not an http(s) URL", i, raw)
		}
		if u.User != nil {
			return v, invalid("url_list[%d] %q must not carry credentials", i, raw)
		}
		// Hosts are matched to cf_domain and the distributions by checkPrewarm.
		if !validHostname(strings.ToLower(u.Hostname())) {
			return v, invalid("url_list[%d] %q has no valid host name", i, raw)
		}
		u.Fragment = ""
		norm := u.String()
		if !seen[norm] {
			seen[norm] = true
			v.urls = append(v.urls, norm)
		}
	}
	regions, err := parseRegion(req.Region)
	if err != nil {
		return v, err
	}
	targetType, err := inferTargetType(req.TargetType, regions, inv)
	if err != nil {
		return v, err
	}
	v.edges, err = inv.Select(targetType, regions)
	if err != nil {
		return v, invalid("%s", err.Error())
	}
	if len(v.edges) > workflows.MaxPrewarmEdges {
		return v, invalid("the target selects %d edges; at most %d per request", len(v.edges), workflows.MaxPrewarmEdges)
	}
	if v.scheme == "https" {
		for _, e := range v.edges {
			if e.HTTPSAddress == "" {
				return v, invalid("protocol https: edge %s has no HTTPS listener in the inventory", e.ID)
			}
		}
	}
	v.timeout = defaultTimeout
	if len(req.Timeout) > 0 && string(req.Timeout) != "null" {
		if v.timeout, err = parseTimeout(req.Timeout); err != nil {
			return v, err
		}
	}
	if v.header, err = parseHeader(req.Header); err != nil {
		return v, err
	}
	return v, nil
}

func parseRegion(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid(`region is required: a list, or "all" for target_type region or country`)
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid(`region must be a list of strings or "all"`)
	}
	return list, nil
}

func parseTimeout(raw json.RawMessage) (time.Duration, error) {
	var secs float64
	var d time.Duration
	if err := json.Unmarshal(raw, &secs); err == nil {
		d = time.Duration(secs * float64(time.Second))
	} else {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, invalid(`timeout must be seconds (a number) or a duration such as "15m"`)
		}
		if d, err = time.ParseDuration(s); err != nil {
			n, convErr := strconv.ParseFloat(s, 64)
			if convErr != nil {
				return 0, invalid(`timeout %q is not a duration such as "15m"`, s)
			}
			d = time.Duration(n * float64(time.Second))
		}
	}
	if d < time.Second || d > MaxPrewarmTimeout {
		return 0, invalid("timeout must be between 1s and %s", MaxPrewarmTimeout)
	}
	return d, nil
}

// parseHeader accepts {"Name": "value"} or ["Name: value", ...].
func parseHeader(raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, invalid(`header must be an object {"Name": "value"} or a list ["Name: value"]`)
		}
		m = map[string]string{}
		for _, h := range list {
			k, val, ok := strings.Cut(h, ":")
			if !ok {
				return nil, invalid("header %q is not Name: value", h)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	if len(m) > 32 {
		return nil, invalid("header has %d entries; at most 32", len(m))
	}
	for k, val := range m {
		if !validHeaderName(k) || strings.ContainsAny(val, "\r\n\x00") || len(val) > 4096 {
			return nil, invalid("header %q is not a valid HTTP header", k)
		}
		switch strings.ToLower(k) {
		case "host", "content-length", "transfer-encoding", "connection", "x-purge-tag", "x-purge-soft", "x-ban-url-regex":
			return nil, invalid("header %s cannot be set by a prewarm", k)
		}
		out[http.CanonicalHeaderKey(k)] = val
	}
	return out, nil
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// Payloads is the claim-check store shared with the workers.
func (s *Service) Payloads() payload.Store {
	if s.Store != nil {
		return s.Store
	}
	return payload.FS{Dir: s.Config.PayloadDir()}
}

// StartPrewarm validates req, stores its URL list and starts the job. With
// an idempotency key, a repeat returns the first request's id and starts
// nothing.
func (s *Service) StartPrewarm(ctx context.Context, req PrewarmRequest, idempotencyKey string) (string, error) {
	v, target, err := s.checkPrewarm(ctx, req)
	if err != nil {
		return "", err
	}
	var requestID string
	if idempotencyKey != "" {
		if len(idempotencyKey) > 255 {
			return "", invalid("Idempotency-Key is longer than 255 characters")
		}
		sum := sha256.Sum256([]byte("prewarm\x00" + idempotencyKey))
		h := hex.EncodeToString(sum[:16])
		requestID = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		if _, err := s.Temporal.DescribeWorkflowExecution(ctx, prewarmWorkflowID(requestID), ""); err == nil {
			return requestID, nil
		} else if !isNotFound(err) {
			return "", fmt.Errorf("look up idempotent prewarm: %w", err)
		}
	} else {
		requestID = newUUID()
	}
	if err := s.admitJob(ctx); err != nil {
		return "", err
	}
	list, err := json.Marshal(v.urls)
	if err != nil {
		return "", fmt.Errorf("encode url list: %w", err)
	}
	key := "prewarm/" + requestID + "/urls.json"
	if err := s.Payloads().PutIfAbsent(ctx, key, list); err != nil && !errors.Is(err, payload.ErrExists) {
		return "", fmt.Errorf("store url list: %w", err)
	}
	ids := make([]string, len(v.edges))
	for i, e := range v.edges {
		ids[i] = e.ID
	}
	job := workflows.PrewarmJob{
		JobID: prewarmWorkflowID(requestID), Domain: v.domain, Scheme: v.scheme, URLsKey: key,
		URLCount: len(v.urls), EdgeIDs: ids, Header: v.header, NeedInvalidate: req.NeedInvalidate,
		Timeout: v.timeout, Attempts: s.Config.PrewarmAttempts, AttemptTimeout: s.Config.PrewarmAttemptTimeout,
		Concurrency: s.Config.PrewarmConcurrency, HeartbeatTimeout: s.Config.HeartbeatTimeout,
	}
	sa := []temporal.SearchAttributeUpdate{
		workflows.KindAttr.ValueSet(workflows.KindPrewarm),
		workflows.DomainAttr.ValueSet(v.domain),
		workflows.StatusAttr.ValueSet(workflows.PrewarmInProgress),
		workflows.CreatedAttr.ValueSet(time.Now().UTC()),
	}
	if idempotencyKey != "" {
		sa = append(sa, workflows.RequestKeyAttr.ValueSet(idempotencyKey))
	}
	if target.AppKey != "" {
		sa = append(sa, workflows.AppKeyAttr.ValueSet(target.AppKey))
	}
	opts := client.StartWorkflowOptions{
		ID:                       job.JobID,
		TaskQueue:                s.Config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(sa...),
	}
	metrics.JobsStarted.WithLabelValues(workflows.KindPrewarm).Inc()
	if _, err := s.Temporal.ExecuteWorkflow(ctx, opts, workflows.PrewarmWorkflow, job); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return requestID, nil // an idempotent repeat of a finished job
		}
		return "", fmt.Errorf("start prewarm: %w", err)
	}
	return requestID, nil
}

func prewarmWorkflowID(requestID string) string { return "prewarm-" + requestID }

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
	if s.Config.ShowSuccessURLs {
		list := pick(st.SuccessIdx)
		out.SuccessURL = &list
	}
	return out, nil
}

// statusWithoutQuery answers a job's status without a workflow query where
// the state is known exactly otherwise, because a query costs a worker a
// task (and a full replay for a closed workflow) and waits behind any
// backlog:
//   - a running job whose first workflow task has not run yet (a queue
//     backlog) has nothing done: its status follows from its input;
//   - a finished job's result holds its final counts, and its URL lists
//     whole when they are short (up to 100 entries; the success list
//     matters only with --show-success-urls).
func (s *Service) statusWithoutQuery(ctx context.Context, workflowID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, bool, error) {
	var st workflows.PrewarmStatus
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return st, false, err
	}
	info := desc.GetWorkflowExecutionInfo()
	switch {
	case info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := s.Temporal.GetWorkflow(ctx, workflowID, info.GetExecution().GetRunId()).Get(ctx, &st); err != nil {
			return st, false, nil
		}
		successShown := s.Config.ShowSuccessURLs
		if len(st.FailedIdx) != st.FailedCount || len(st.InProgressIdx) != st.InProgress || (successShown && len(st.SuccessIdx) != st.SuccessCount) {
			return st, false, nil // lists cut short: the query pages them
		}
		page := func(list []int) []int {
			from := min(q.Offset, len(list))
			return list[from:min(from+q.Limit, len(list))]
		}
		st.FailedIdx, st.SuccessIdx, st.InProgressIdx = page(st.FailedIdx), page(st.SuccessIdx), page(st.InProgressIdx)
		return st, true, nil
	case info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && info.GetHistoryLength() <= 3:
		// Started, task scheduled, task started: no task has completed.
		it := s.Temporal.GetWorkflowHistory(ctx, workflowID, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		if !it.HasNext() {
			return st, false, nil
		}
		first, err := it.Next()
		if err != nil {
			return st, false, fmt.Errorf("read job input: %w", err)
		}
		var job workflows.PrewarmJob
		in := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
		if in == nil || converter.GetDefaultDataConverter().FromPayloads(in, &job) != nil {
			return st, false, nil
		}
		return workflows.PendingPrewarmStatus(job, q), true, nil
	}
	return st, false, nil
}

// prewarmJob queries a job's state and loads its URL list.
func (s *Service) prewarmJob(ctx context.Context, requestID string, q workflows.PrewarmStatusQuery) (workflows.PrewarmStatus, []string, error) {
	var st workflows.PrewarmStatus
	if !validRequestID(requestID) {
		return st, nil, ErrNotFound
	}
	if known, ok, err := s.statusWithoutQuery(ctx, prewarmWorkflowID(requestID), q); err != nil {
		if isNotFound(err) {
			return st, nil, ErrNotFound
		}
		return st, nil, fmt.Errorf("describe prewarm %s: %w", requestID, err)
	} else if ok {
		urls, err := s.prewarmURLs(ctx, known.URLsKey)
		return known, urls, err
	}
	v, err := s.query(ctx, prewarmWorkflowID(requestID), workflows.QueryPrewarmStatus, q)
	if err != nil {
		if isNotFound(err) {
			return st, nil, ErrNotFound
		}
		return st, nil, fmt.Errorf("query prewarm %s: %w", requestID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, nil, fmt.Errorf("decode prewarm status: %w", err)
	}
	urls, err := s.prewarmURLs(ctx, st.URLsKey)
	return st, urls, err
}

func (s *Service) prewarmURLs(ctx context.Context, key string) ([]string, error) {
	data, err := s.Payloads().Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read url list: %w", err)
	}
	var urls []string
	if err := json.Unmarshal(data, &urls); err != nil {
		return nil, fmt.Errorf("decode url list: %w", err)
	}
	return urls, nil
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
