package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/cachekey"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/workflows"
)

// Purge API limits.
const (
	// MaxPurgePaths is the most entries (non-empty lines) of one purgeList.
	MaxPurgePaths = 20_000
	// MaxPurgePathLen bounds one entry, in bytes.
	MaxPurgePathLen = 2048
	// MaxPurgeListLines bounds the lines of one purgeList, blank ones
	// included: they are counted while the list is read, which stops at
	// the first line past it.
	MaxPurgeListLines = 2 * MaxPurgePaths
	// MaxPurgeFanOut bounds one request's fan-out: entries × hosts of the
	// distribution (domain and aliases), each one purge on every edge.
	MaxPurgeFanOut   = 200_000
	maxPurgeListScan = 10_000
)

// PurgeRequest is the NHN v1.5 purge body; Soft is cdnflow's extension.
type PurgeRequest struct {
	Domain    string `json:"domain"`
	PurgeType string `json:"purgeType"`
	PurgeList string `json:"purgeList"`
	Soft      bool   `json:"soft,omitempty"`
}

// Error kinds the HTTP layer maps to NHN resultCodes.
var (
	ErrRateLimited = errors.New("rate limited")
)

// PurgeResult is what POST /purges answers: NHN's first seq, and all seqs.
type PurgeResult struct {
	PurgeSeq  int64   `json:"purgeSeq"`
	PurgeSeqs []int64 `json:"purgeSeqs"`
}

// SplitPurgeList validates a purge list and splits it into per-seq batches
// (NHN: ITEM lists in seqs of itemBatch paths, WILDCARD lists in seqs of at
// most cachekey.MaxWildcardPatterns patterns).
//
// ITEM paths are replaced by their canonical cache key's request target
// (cachekey.PathQuery: what a browser sends, so "/画像/a b.png" purges
// "/%E7%94%BB%E5%83%8F/a%20b.png"). WILDCARD patterns are kept as given and checked by
// cachekey.WildcardRegex, the translation the edge activity sends. Errors
// are *ValidationError (NHN resultCode 10001) naming purgeList, the entry
// and why; a refused list starts nothing.
func SplitPurgeList(purgeType, list string, itemBatch, wildcardBatch int) ([][]string, error) {
	paths, err := purgeListEntries(list)
	if err != nil {
		return nil, err
	}
	batch := itemBatch
	switch purgeType {
	case activities.PurgeAll:
		return [][]string{nil}, nil
	case activities.PurgeItem, activities.PurgeWildcard:
		if len(paths) == 0 {
			return nil, invalid("purgeList must list at least one path for purgeType %s", purgeType)
		}
		if purgeType == activities.PurgeWildcard {
			batch = min(max(wildcardBatch, 1), cachekey.MaxWildcardPatterns)
		}
		var err error
		if paths, err = checkPurgePaths(purgeType, paths); err != nil {
			return nil, err
		}
	case activities.PurgeTag:
		if len(paths) == 0 {
			return nil, invalid("purgeList must list at least one tag for purgeType TAG")
		}
		for _, p := range paths {
			// A comma would make xkey purge several keys, some of them
			// possibly another host's.
			if len(p) > 256 || strings.ContainsAny(p, " \t#\",") || hasControl(p) {
				return nil, invalid("tag %q must be one token without spaces, commas, '#', quotes or control characters", p)
			}
		}
	default:
		return nil, invalid("purgeType must be ITEM, WILDCARD or ALL (or the extension TAG), not %q", purgeType)
	}
	var out [][]string
	for len(paths) > 0 {
		n := batch
		if n > len(paths) {
			n = len(paths)
		}
		out = append(out, paths[:n])
		paths = paths[n:]
	}
	return out, nil
}

// purgeListEntries reads a purgeList line by line ("\n" or "\r\n"),
// keeping the non-empty entries trimmed, and stops with a
// *ValidationError at the first line past MaxPurgeListLines or entry past
// MaxPurgePaths: a list is never split whole before it is counted, so
// eight million blank lines cost one pass and no allocation.
func purgeListEntries(list string) ([]string, error) {
	var paths []string
	for lines := 1; list != ""; lines++ {
		if lines > MaxPurgeListLines {
			return nil, invalid("purgeList has more than %d lines; at most %d entries per request", MaxPurgeListLines, MaxPurgePaths)
		}
		var line string
		line, list, _ = strings.Cut(list, "\n")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if len(paths) == MaxPurgePaths {
			return nil, invalid("purgeList has more than %d entries; at most %d per request", MaxPurgePaths, MaxPurgePaths)
		}
		paths = append(paths, line)
	}
	return paths, nil
}

// checkPurgePaths checks every ITEM path or WILDCARD pattern and answers
// the list to purge, in order and one entry per line as NHN splits it:
// canonical ITEM targets, WILDCARD patterns as given.
func checkPurgePaths(purgeType string, paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for i, p := range paths {
		c, err := checkPurgePath(purgeType, p)
		if err != nil {
			return nil, invalid("purgeList line %d: %v", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkPurgePath answers one entry's canonical form (ITEM) or the pattern
// itself (WILDCARD), or why it is refused.
func checkPurgePath(purgeType, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q must start with /", p)
	}
	if len(p) > MaxPurgePathLen {
		return "", fmt.Errorf("path %.40q... is longer than %d characters", p, MaxPurgePathLen)
	}
	if hasControl(p) {
		return "", fmt.Errorf("path %q must not contain control characters", p)
	}
	if purgeType == activities.PurgeWildcard {
		if _, err := cachekey.WildcardRegex(p); err != nil {
			return "", fmt.Errorf("WILDCARD pattern %q: %w", p, err)
		}
		if !hasWildcard(p) {
			return "", fmt.Errorf("WILDCARD pattern %q has no * or ? (NHN grammar: * any run, ? one character, \\ escape); purge one path with ITEM", p)
		}
		return p, nil
	}
	// A fragment never reaches the edge: purging what is before it would
	// evict another object than the one named.
	if strings.Contains(p, "#") {
		return "", fmt.Errorf("path %q must not contain # (a fragment never reaches an edge)", p)
	}
	c, err := cachekey.PathQuery(p)
	if err != nil {
		return "", fmt.Errorf("path %q is not a valid URL path: %w", p, err)
	}
	if len(c) > MaxPurgePathLen*3 {
		return "", fmt.Errorf("path %.40q... is longer than %d characters once percent-encoded", p, MaxPurgePathLen*3)
	}
	return c, nil
}

// hasWildcard reports an unescaped "*" or "?" in an NHN WILDCARD pattern.
func hasWildcard(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '*', '?':
			return true
		}
	}
	return false
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// seqTimeout bounds the seq reservation of one purge request.
const seqTimeout = 5 * time.Second

// overloaded reports Temporal refusing work for load (too many in-flight
// updates on the counter) or running out of time.
func overloaded(err error) bool {
	var exhausted *serviceerror.ResourceExhausted
	return errors.As(err, &exhausted) || timedOut(err)
}

// StartPurge validates, rate-limits, splits and starts one purge workflow
// per batch. Refusals by a limit are *LimitError: the NHN rate limits
// (answered from this process's holds without a round trip when it knows
// the limit is held, else by the purge counter), the tenant's running
// jobs and the workers' backlog (admission.go).
func (s *Service) StartPurge(ctx context.Context, appKey string, req PurgeRequest) (PurgeResult, error) {
	var res PurgeResult
	domain := strings.ToLower(strings.TrimSpace(req.Domain))
	if domain == "" {
		return res, invalid("domain is required")
	}
	if len(domain) > 255 || !validHostname(domain) {
		return res, invalid("domain %q is not a valid domain name", req.Domain)
	}
	purgeType := strings.ToUpper(strings.TrimSpace(req.PurgeType))
	batches, err := SplitPurgeList(purgeType, req.PurgeList, s.config.PurgeItemBatch, s.config.PurgeWildcardBatch)
	if err != nil {
		return res, err
	}
	if req.Soft && purgeType != activities.PurgeItem && purgeType != activities.PurgeTag {
		return res, invalid("soft purge applies to ITEM and TAG purges only")
	}
	// Refused at once, before anything is asked of Temporal, when this
	// process knows the NHN limit is held; then the tenant's admission
	// (its running jobs; the workers' backlog).
	scope, every := s.purgeLimit(purgeType, domain)
	if err := s.claimPurgeLimit(appKey+"/"+scope, scope, every); err != nil {
		return res, err
	}
	if err := s.admitJob(ctx, appKey, len(batches)); err != nil {
		s.settlePurgeLimit(appKey+"/"+scope, 0, counterOther)
		return res, err
	}
	release, err := s.admittedSlot(ctx, appKey, len(batches))
	if err != nil {
		s.settlePurgeLimit(appKey+"/"+scope, 0, counterOther)
		return res, err
	}
	defer release()
	dist, first, err := s.admitPurge(ctx, appKey, domain, scope, every, len(batches))
	if err != nil {
		return res, err
	}
	entries := 0
	for _, b := range batches {
		entries += len(b)
	}
	if hosts := len(dist.Hosts()); entries*hosts > MaxPurgeFanOut {
		return res, invalid("purgeList has %d entries and the distribution %d hosts: %d purges per edge, at most %d per request (MaxPurgeFanOut); split the list",
			entries, hosts, entries*hosts, MaxPurgeFanOut)
	}
	seqs, err := s.startPurgeSeqs(ctx, appKey, domain, dist, purgeType, req.Soft, first, batches)
	res.PurgeSeqs = seqs
	if err != nil {
		return res, err
	}
	res.PurgeSeq = res.PurgeSeqs[0]
	return res, nil
}

// admitPurge takes the purge's rate token and n seqs (takePurgeToken)
// while the distribution is read: one round trip in parallel, none added.
// A request to an unknown domain still counts. Within seqTimeout: under
// overload the request is refused as rate-limited before anything
// started, never half-started.
func (s *Service) admitPurge(ctx context.Context, appKey, domain, scope string, every time.Duration, n int) (distribution.State, int64, error) {
	seqCtx, cancel := context.WithTimeout(ctx, seqTimeout)
	defer cancel()
	type admitted struct {
		first int64
		err   error
	}
	limited := make(chan admitted, 1)
	go func() {
		first, err := s.takePurgeToken(seqCtx, appKey, scope, every, n)
		limited <- admitted{first, err}
	}()
	dist, err := s.DistributionByDomain(ctx, appKey, domain)
	adm := <-limited
	if adm.err != nil && !errors.Is(adm.err, ErrRateLimited) && err != nil {
		// The purge cannot start anyway (unknown domain, ...): that is the
		// answer, not the counter's trouble.
		return dist, 0, err
	}
	if adm.err != nil {
		if !errors.Is(adm.err, ErrRateLimited) && ctx.Err() == nil && (seqCtx.Err() != nil || overloaded(adm.err)) {
			return dist, 0, &LimitError{Kind: ErrRateLimited, Policy: "backlog", Quota: s.config.MaxBacklog, Window: time.Second,
				RetryAfter: counterBackoff, Msg: fmt.Sprintf("%v: purge capacity is exhausted right now; retry in a few seconds", ErrRateLimited)}
		}
		return dist, 0, adm.err
	}
	return dist, adm.first, err
}

// maxParallelStarts bounds the seq workflows one request starts at once
// (a 10,000-path purge is 50 seqs; started one after the other the POST
// would take seconds).
const maxParallelStarts = 8

// startPurgeSeqs starts one purge workflow per batch, seq first+i for
// batch i, up to maxParallelStarts at once. It answers the seqs started,
// in seq order up to the first failure by seq order, and that failure
// (the caller answers it, as before; seqs after it may have started too,
// and GET /purges lists them).
func (s *Service) startPurgeSeqs(ctx context.Context, appKey, domain string, dist distribution.State, purgeType string, soft bool, first int64, batches [][]string) ([]int64, error) {
	edgeIDs := s.inventory.IDs()
	now := time.Now()
	errs := make([]error, len(batches))
	sem := make(chan struct{}, maxParallelStarts)
	var wg sync.WaitGroup
	for i, paths := range batches {
		pr := workflows.PurgeSeq{
			AppKey: appKey, Domain: domain, Hosts: dist.Hosts(), Type: purgeType, Paths: paths,
			Soft: soft, Seq: first + int64(i), PurgeID: randomID(), EdgeIDs: edgeIDs,
			Deadline: s.config.PurgeDeadline, CatchUp: s.config.PurgeCatchUp, PurgeTime: now.UnixMilli(),
			Parents: s.inventory.Parents(edgeIDs), // tiers: parents confirmed first (docs/tiers.md)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.startPurgeSeq(ctx, pr, dist.Seq, now)
		}()
	}
	wg.Wait()
	var seqs []int64
	for i, err := range errs {
		if err != nil {
			return seqs, err
		}
		seqs = append(seqs, first+int64(i))
	}
	return seqs, nil
}

// startPurgeSeq starts one seq's workflow, lists it as started and awaits
// its result.
func (s *Service) startPurgeSeq(ctx context.Context, pr workflows.PurgeSeq, distributionSeq int64, now time.Time) error {
	opts := s.purgeStartOptions(pr, distributionSeq, now)
	run, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.PurgeWorkflow, pr)
	if err != nil {
		return fmt.Errorf("start purge seq %d: %w", pr.Seq, err)
	}
	metrics.JobsStarted.WithLabelValues(workflows.KindPurge).Inc()
	s.reads.started.add(listKey(pr.AppKey, pr.Domain), startedPurge(pr, distributionSeq, opts.ID))
	s.awaitPurge(opts.ID, run)
	return nil
}

// purgeStartOptions starts one purge seq with the search attributes and
// memo the purge list reads without querying each workflow.
func (s *Service) purgeStartOptions(pr workflows.PurgeSeq, distributionSeq int64, accepted time.Time) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:        workflows.PurgeWorkflowID(pr.AppKey, pr.Seq),
		TaskQueue: s.config.TaskQueue,
		// The first workflow task goes straight to this process's worker
		// when it has one (cdnflow dev, one-process deployments), skipping
		// a matching round trip; otherwise the start is an ordinary one.
		EnableEagerStart: true,
		// Purges (small, latency-bound) go ahead of prewarms in the task
		// queue; FairnessKey shares the queue per appKey where the server
		// enables fairness (matching.enableFairness).
		Priority: temporal.Priority{PriorityKey: purgePriority, FairnessKey: pr.AppKey},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.KindAttr.ValueSet(workflows.KindPurge),
			workflows.AppKeyAttr.ValueSet(pr.AppKey),
			workflows.DomainAttr.ValueSet(pr.Domain),
			workflows.PurgeTypeAttr.ValueSet(pr.Type),
			workflows.StatusAttr.ValueSet(workflows.PurgeRunning),
			workflows.SeqAttr.ValueSet(pr.Seq),
			workflows.CreatedAttr.ValueSet(accepted.UTC()),
		),
		Memo: workflows.PurgeMemo(pr, distributionSeq),
	}
}

func randomID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 33) // positive, fits NHN's int
}

// PurgeItem is one entry of the purge list (NHN field names).
type PurgeItem struct {
	Seq             int64  `json:"seq"`
	DistributionSeq int64  `json:"distributionSeq"`
	PurgeID         int64  `json:"purgeId"`
	Progress        int    `json:"progress"`
	PurgeTime       int64  `json:"purgeTime"`
	LastCheckTime   int64  `json:"lastCheckTime"`
	Type            string `json:"type"`
	Path            string `json:"path"`
	// cdnflow's: which edges have not confirmed yet, and why.
	PendingEdges []workflows.PurgeEdgeState `json:"pendingEdges,omitempty"`
	// cdnflow's: every edge's state (confirmed, how the edge showed the
	// purge took effect, last error) while the purge is below 100.
	Edges []workflows.PurgeEdgeState `json:"edges,omitempty"`
}

// PurgeList is the GET /purges answer.
type PurgeList struct {
	TotalItems int         `json:"totalItems"`
	Purges     []PurgeItem `json:"purges"`
}

// ListPurges answers from visibility (filter, order, page; purgeScan) and,
// for purges not DONE there, from livePurge: a finished purge's result, a
// running purge's query. Concurrent and repeated reads are coalesced
// (readCache), so pollers cost Temporal a bounded number of reads.
func (s *Service) ListPurges(ctx context.Context, appKey, domain string, start, end *time.Time, page, perPage int) (PurgeList, error) {
	out := PurgeList{Purges: []PurgeItem{}}
	domain = strings.ToLower(strings.TrimSpace(domain))
	if domain == "" {
		return out, invalid("domain is required")
	}
	if !validHostname(domain) {
		return out, invalid("domain %q is not a valid domain name", domain)
	}
	all, err := s.purgeScan(ctx, appKey, domain, start, end)
	if err != nil {
		return out, err
	}
	out.TotalItems = len(all)
	from := (page - 1) * perPage
	workersDown := false
	awaitUntil := time.Now().Add(awaitAnswer)
	// The page's live reads share liveReadBudget: past it, the reads go on
	// in the background (their answers kept for the next poll) and the
	// page answers what visibility has.
	liveCtx, cancel := context.WithTimeout(ctx, liveReadBudget)
	defer cancel()
	for i := from; i < len(all) && i < from+perPage; i++ {
		f := all[i]
		// Without a worker to answer, progress stays as visibility has it
		// (0 until the purge finished): never more than edges confirmed.
		if f.item.Progress < 100 && !workersDown {
			st, err := s.livePurge(liveCtx, f.wfID, time.UnixMilli(f.item.PurgeTime), awaitUntil)
			// Workers down, this process's heavy reads all busy
			// (shed.go) or the budget spent: the rest keep visibility's
			// progress too.
			var shed *LimitError
			workersDown = errors.Is(err, ErrWorkersUnavailable) || errors.As(err, &shed) || liveCtx.Err() != nil
			if err == nil {
				f.item.Progress = st.Progress
				f.item.LastCheckTime = st.LastCheckTime
				f.item.Edges = st.Edges
				for _, e := range st.Edges {
					if !e.Confirmed {
						f.item.PendingEdges = append(f.item.PendingEdges, e)
					}
				}
			}
		}
		out.Purges = append(out.Purges, f.item)
	}
	return out, nil
}

// purgeScan lists an appKey's purges of a domain from visibility, newest
// first; one scan per key serves every caller for listTTL (then, stale,
// for listStaleFor while it is refreshed) and at most
// maxVisibilityReads scans run at once. The purges this process started
// that the scan does not show yet (visibility lags, or the scan is older)
// are added from startedPurges.
func (s *Service) purgeScan(ctx context.Context, appKey, domain string, start, end *time.Time) ([]foundPurge, error) {
	q := purgeListQuery(appKey, domain, start, end)
	all, err := s.reads.lists.get(ctx, listKey(appKey, domain)+q, func(ctx context.Context) ([]foundPurge, time.Duration, error) {
		// The scan waits for a visibility slot as long as a heavy request
		// waits for its own (shed.go), then is refused, not queued on.
		release, err := s.reads.visibility.acquire(ctx)
		if err != nil {
			return nil, 0, err
		}
		defer release()
		var all []foundPurge
		var token []byte
		for {
			resp, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
			if err != nil {
				return nil, 0, fmt.Errorf("list purges: %w", err)
			}
			for _, ex := range resp.GetExecutions() {
				all = append(all, purgeFromVisibility(ex))
				if len(all) >= maxPurgeListScan {
					break
				}
			}
			token = resp.GetNextPageToken()
			if len(token) == 0 || len(all) >= maxPurgeListScan {
				break
			}
		}
		// SQLite visibility has no ORDER BY: newest first is done here.
		sort.Slice(all, func(i, j int) bool { return all[i].item.Seq > all[j].item.Seq })
		return all, listTTL, nil
	})
	if err != nil {
		return nil, err
	}
	return s.reads.started.merge(listKey(appKey, domain), all, start, end), nil
}

// listKey prefixes the scans of one appKey's purges of one domain.
func listKey(appKey, domain string) string { return appKey + "\x00" + domain + "\x00" }

// liveReadBudget bounds how long one GET /purges page waits for the live
// state of its running purges (a describe and a query each, the query
// answered by a worker's workflow task).
const liveReadBudget = 200 * time.Millisecond

// livePurge answers one purge's state: a purge this process started and
// awaits from its result if it comes before until (awaitedResult), a
// finished purge from its result (no worker involved, cached for good), a
// running one from its status object (its query completed by its fan-out
// activity's heartbeated rows: workflows.PurgeStatusWithPending), shared
// by every concurrent reader and served for runningTTL. A read that is
// not cached takes a heavy slot (shed.go); refused one, it answers the
// *LimitError and ListPurges keeps visibility's progress.
func (s *Service) livePurge(ctx context.Context, wfID string, started, until time.Time) (workflows.PurgeStatus, error) {
	s.awaitedResult(ctx, wfID, until)
	return s.reads.purges.get(ctx, wfID, func(ctx context.Context) (workflows.PurgeStatus, time.Duration, error) {
		var st workflows.PurgeStatus
		release, err := s.heavy.acquire(ctx)
		if err != nil {
			return st, 0, err
		}
		defer release()
		desc, err := s.temporal.DescribeWorkflowExecution(ctx, wfID, "")
		if err != nil {
			return st, 0, fmt.Errorf("describe purge %s: %w", wfID, err)
		}
		info := desc.GetWorkflowExecutionInfo()
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			if err := s.temporal.GetWorkflow(ctx, wfID, info.GetExecution().GetRunId()).Get(ctx, &st); err == nil {
				return st, finishedTTL, nil
			}
		}
		if st, err = s.purgeStatus(ctx, wfID); err != nil {
			return st, 0, err
		}
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && st.State == workflows.PurgeRunning {
			st = workflows.PurgeStatusWithPending(st, desc.GetPendingActivities())
		}
		return st, runningTTL(started), nil
	})
}

// purgeListQuery selects an appKey's purges of one domain, created within
// [start, end] when given.
func purgeListQuery(appKey, domain string, start, end *time.Time) string {
	q := fmt.Sprintf("%s = '%s' AND %s = '%s' AND %s = '%s'",
		workflows.KindAttr.GetName(), workflows.KindPurge,
		workflows.AppKeyAttr.GetName(), escapeQuery(appKey),
		workflows.DomainAttr.GetName(), domain)
	if start != nil {
		q += fmt.Sprintf(" AND %s >= '%s'", workflows.CreatedAttr.GetName(), start.UTC().Format(time.RFC3339Nano))
	}
	if end != nil {
		q += fmt.Sprintf(" AND %s <= '%s'", workflows.CreatedAttr.GetName(), end.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// foundPurge is a purge as visibility lists it.
type foundPurge struct {
	item    PurgeItem
	wfID    string
	running bool
	closeMS int64
}

// purgeFromVisibility is a purge's list entry from its visibility record
// (workflows.PurgeListingOf); a finished purge has progress 100.
func purgeFromVisibility(ex *workflowpb.WorkflowExecutionInfo) foundPurge {
	l := workflows.PurgeListingOf(ex)
	f := foundPurge{wfID: l.WorkflowID, running: ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, closeMS: l.CloseTime,
		item: PurgeItem{Seq: l.Seq, Type: l.Type, PurgeID: l.PurgeID, DistributionSeq: l.DistributionSeq, Path: l.Path, PurgeTime: l.PurgeTime}}
	if l.State == workflows.PurgeDone {
		f.item.Progress = 100
		f.item.LastCheckTime = f.closeMS
	}
	return f
}

func (s *Service) purgeStatus(ctx context.Context, wfID string) (workflows.PurgeStatus, error) {
	var st workflows.PurgeStatus
	v, err := s.query(ctx, wfID, workflows.QueryPurgeStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func escapeQuery(s string) string { return strings.ReplaceAll(s, "'", "") }
