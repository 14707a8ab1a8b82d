package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/workflows"
)

// Release bounds (docs/releases.md): the deadline when the request names
// none, the longest one, and the URL list (the Prewarm API's bounds hold
// too: MaxPrewarmURLs, MaxPrewarmPairs).
const (
	DefaultReleaseDeadline = 30 * time.Minute
	MaxReleaseDeadline     = 24 * time.Hour
	// releaseGrace lets a release past its deadline record TIMEOUT before
	// Temporal's execution timeout would end it without a result.
	releaseGrace = 5 * time.Minute
	// MaxReleasePurgeBytes bounds a release's purge list as it travels in
	// the release workflow's input: the JSON encoding of every seq's paths.
	// Temporal refuses a payload over 2 MB ("Blob data size exceeds
	// limit"); the rest of the input (seq headers, hosts, edge ids, the
	// prewarm job, whose URL list is in the payload store) fits in what is
	// left. A larger purge is refused with 400 before anything is reserved;
	// POST /v1.5/appKeys/{appKey}/purges takes it (each seq its own job).
	MaxReleasePurgeBytes = 1 << 20
)

// ReleaseRequest is the POST /v1/releases body: an NHN purge (any type,
// for one distribution of appKey) and/or a Prewarm API body on that
// distribution's hosts, verify (default true with a prewarm: measure that
// every URL is a HIT on every targeted edge) and a deadline (a Go duration
// such as "10m"; DefaultReleaseDeadline when empty, at most
// MaxReleaseDeadline).
type ReleaseRequest struct {
	AppKey   string          `json:"appKey"`
	Purge    *PurgeRequest   `json:"purge,omitempty"`
	Prewarm  *PrewarmRequest `json:"prewarm,omitempty"`
	Verify   *bool           `json:"verify,omitempty"`
	Deadline string          `json:"deadline,omitempty"`
}

// ReleaseStarted is what POST /v1/releases answers.
type ReleaseStarted struct {
	ReleaseID string `json:"releaseId"`
}

// StartRelease checks req, admits it (the tenant's running jobs; the NHN
// purge rate limit and the purge seqs, as StartPurge), stores the prewarm's
// URL list and starts ReleaseWorkflow.
//
// With an idempotency key the release id is derived from the caller's key
// id, the appKey and the key, and bound to the request's hash: the same
// key and body answer the first release's id and start nothing (a repeat
// that races the first may have reserved purge seqs it never uses); the
// same key with another body is ErrIdempotencyConflict.
func (s *Service) StartRelease(ctx context.Context, req ReleaseRequest, idempotencyKey string) (ReleaseStarted, error) {
	if _, ok := s.config.AppKeys[req.AppKey]; !ok {
		return ReleaseStarted{}, invalid("appKey %q is not configured", req.AppKey)
	}
	if req.Purge == nil && req.Prewarm == nil {
		return ReleaseStarted{}, invalid("a release needs a purge, a prewarm or both")
	}
	if len(idempotencyKey) > 255 {
		return ReleaseStarted{}, invalid("Idempotency-Key is longer than 255 characters")
	}
	deadline, err := releaseDeadline(req.Deadline)
	if err != nil {
		return ReleaseStarted{}, err
	}
	hash := releaseHash(req)
	id := newUUID()
	if idempotencyKey != "" {
		id = ReleaseID(CallerFrom(ctx).KeyID, req.AppKey, idempotencyKey)
		if err := s.sameRelease(ctx, id, hash); err == nil || !isNotFound(err) {
			return ReleaseStarted{ReleaseID: id}, err
		}
	}
	job, err := s.releaseJob(ctx, req, id, deadline)
	if err != nil {
		return ReleaseStarted{}, err
	}
	metrics.JobsStarted.WithLabelValues(workflows.KindRelease).Inc()
	if _, err := s.temporal.ExecuteWorkflow(ctx, s.releaseOptions(job, hash, idempotencyKey), workflows.ReleaseWorkflow, job); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) && idempotencyKey != "" {
			return ReleaseStarted{ReleaseID: id}, s.sameRelease(ctx, id, hash)
		}
		return ReleaseStarted{}, fmt.Errorf("start release: %w", err)
	}
	return ReleaseStarted{ReleaseID: id}, nil
}

// releaseJob checks the prewarm and the purge, admits the release and
// builds its input.
func (s *Service) releaseJob(ctx context.Context, req ReleaseRequest, id string, deadline time.Duration) (workflows.ReleaseJob, error) {
	job := workflows.ReleaseJob{ReleaseID: id, AppKey: req.AppKey, Deadline: deadline, AcceptedAt: time.Now().UnixMilli()}
	var pw *validRelease
	if req.Prewarm != nil {
		v, err := s.checkReleasePrewarm(ctx, req, id)
		if err != nil {
			return job, err
		}
		pw, job.Domain = &v, v.target.Domain
	}
	var purge releasePurge
	if req.Purge != nil {
		if err := authorize(ctx, VerbPurge, req.AppKey); err != nil {
			return job, err
		}
		if pw != nil && !strings.EqualFold(strings.TrimSpace(req.Purge.Domain), job.Domain) {
			return job, invalid("purge.domain %q and the prewarm's distribution %q differ: a release acts on one distribution", req.Purge.Domain, job.Domain)
		}
		var err error
		if purge, err = s.checkReleasePurge(*req.Purge); err != nil {
			return job, err
		}
	}
	if err := s.admitJob(ctx, req.AppKey, 1); err != nil {
		return job, err
	}
	if req.Purge != nil {
		seqs, dist, err := s.releasePurges(ctx, req.AppKey, purge)
		if err != nil {
			return job, err
		}
		job.Purges, job.DistributionSeq, job.Domain = seqs, dist.Seq, seqs[0].Domain
	}
	if pw != nil {
		key, err := payload.PutPrewarmURLs(ctx, s.Payloads(), pw.requestID, pw.v.urls)
		if err != nil {
			return job, err
		}
		_, pj := s.prewarmStart(pw.v, pw.target, req.AppKey, pw.requestID, key, pw.hash, "", pw.needInvalidate)
		pj.Verify = req.Verify == nil || *req.Verify
		job.Prewarm, job.PrewarmRequestID, job.PrewarmHash = &pj, pw.requestID, pw.hash
	}
	return job, nil
}

// validRelease is a release's checked prewarm.
type validRelease struct {
	v              validPrewarm
	target         prewarmTarget
	requestID      string
	hash           string
	needInvalidate bool
}

// checkReleasePrewarm checks the prewarm as POST /prewarm does, on a
// distribution of req.AppKey; its requestID is derived from the release's.
func (s *Service) checkReleasePrewarm(ctx context.Context, req ReleaseRequest, id string) (validRelease, error) {
	p := *req.Prewarm
	v, target, err := s.checkPrewarm(ctx, p)
	if err != nil {
		return validRelease{}, err
	}
	if target.AppKey != req.AppKey {
		return validRelease{}, invalid("prewarm cf_domain %q is not a distribution of appKey %s", p.CFDomain, req.AppKey)
	}
	if err := authorizePrewarm(ctx, req.AppKey, p.NeedInvalidate); err != nil {
		return validRelease{}, err
	}
	return validRelease{v: v, target: target, requestID: PrewarmRequestID("release", req.AppKey, id),
		hash: prewarmRequestHash(v, p.NeedInvalidate), needInvalidate: p.NeedInvalidate}, nil
}

// releasePurge is a release's checked purge: its seqs' path batches.
type releasePurge struct {
	domain, purgeType string
	soft              bool
	batches           [][]string
}

// checkReleasePurge checks a release's purge as StartPurge does (the
// domain, the list, soft) and bounds its encoded paths by
// MaxReleasePurgeBytes; it reserves nothing.
func (s *Service) checkReleasePurge(req PurgeRequest) (releasePurge, error) {
	domain := strings.ToLower(strings.TrimSpace(req.Domain))
	if domain == "" || len(domain) > 255 || !validHostname(domain) {
		return releasePurge{}, invalid("purge.domain %q is not a valid domain name", req.Domain)
	}
	purgeType := strings.ToUpper(strings.TrimSpace(req.PurgeType))
	batches, err := SplitPurgeList(purgeType, req.PurgeList, s.config.PurgeItemBatch, s.config.PurgeWildcardBatch)
	if err != nil {
		return releasePurge{}, err
	}
	if req.Soft && purgeType != activities.PurgeItem && purgeType != activities.PurgeTag {
		return releasePurge{}, invalid("soft purge applies to ITEM and TAG purges only")
	}
	b, err := json.Marshal(batches)
	if err != nil {
		return releasePurge{}, fmt.Errorf("encode purge list: %w", err)
	}
	if len(b) > MaxReleasePurgeBytes {
		return releasePurge{}, invalid("purgeList is %d bytes encoded, a release carries at most %d (MaxReleasePurgeBytes): split it over several releases, or purge it with POST /v1.5/appKeys/{appKey}/purges first", len(b), MaxReleasePurgeBytes)
	}
	return releasePurge{domain: domain, purgeType: purgeType, soft: req.Soft, batches: batches}, nil
}

// releasePurges takes the NHN rate limit and the fan-out bound for a
// checked purge and reserves its seqs; the release starts them.
func (s *Service) releasePurges(ctx context.Context, appKey string, p releasePurge) ([]workflows.PurgeSeq, distribution.State, error) {
	domain, purgeType, batches := p.domain, p.purgeType, p.batches
	scope, every := s.purgeLimit(purgeType, domain)
	if err := s.claimPurgeLimit(appKey+"/"+scope, scope, every); err != nil {
		return nil, distribution.State{}, err
	}
	dist, first, err := s.admitPurge(ctx, appKey, domain, scope, every, len(batches))
	if err != nil {
		return nil, dist, err
	}
	entries := 0
	for _, b := range batches {
		entries += len(b)
	}
	if hosts := len(dist.Hosts()); entries*hosts > MaxPurgeFanOut {
		return nil, dist, invalid("purgeList has %d entries and the distribution %d hosts: at most %d purges per request (MaxPurgeFanOut)", entries, hosts, MaxPurgeFanOut)
	}
	now := time.Now().UnixMilli()
	edgeIDs := s.inventory.IDs()
	parents := s.inventory.Parents(edgeIDs) // tiers: parents confirmed first, as StartPurge (docs/tiers.md)
	seqs := make([]workflows.PurgeSeq, len(batches))
	for i, paths := range batches {
		seqs[i] = workflows.PurgeSeq{
			AppKey: appKey, Domain: domain, Hosts: dist.Hosts(), Type: purgeType, Paths: paths,
			Soft: p.soft, Seq: first + int64(i), PurgeID: randomID(), EdgeIDs: edgeIDs,
			Deadline: s.config.PurgeDeadline, CatchUp: s.config.PurgeCatchUp, PurgeTime: now, Parents: parents,
		}
	}
	return seqs, dist, nil
}

// releaseOptions starts a release with the search attributes and memo its
// readers use (appKey for authorization, the request hash).
func (s *Service) releaseOptions(job workflows.ReleaseJob, hash, idempotencyKey string) client.StartWorkflowOptions {
	sa := []temporal.SearchAttributeUpdate{
		workflows.KindAttr.ValueSet(workflows.KindRelease),
		workflows.AppKeyAttr.ValueSet(job.AppKey),
		workflows.DomainAttr.ValueSet(job.Domain),
		workflows.StatusAttr.ValueSet(workflows.ReleaseRunning),
		workflows.CreatedAttr.ValueSet(time.UnixMilli(job.AcceptedAt).UTC()),
	}
	if idempotencyKey != "" {
		sa = append(sa, workflows.RequestKeyAttr.ValueSet(idempotencyKey))
	}
	return client.StartWorkflowOptions{
		ID:                                       workflows.ReleaseWorkflowID(job.ReleaseID),
		TaskQueue:                                s.config.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowExecutionTimeout:                 job.Deadline + releaseGrace,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(sa...),
		Memo:                                     map[string]any{workflows.MemoReleaseHash: hash, workflows.MemoReleaseAppKey: job.AppKey},
		Priority:                                 temporal.Priority{FairnessKey: job.AppKey},
	}
}

// releaseDeadline parses the deadline field.
func releaseDeadline(v string) (time.Duration, error) {
	if v == "" {
		return DefaultReleaseDeadline, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxReleaseDeadline {
		return 0, invalid("deadline %q must be a duration such as \"10m\", at most %s", v, MaxReleaseDeadline)
	}
	return d, nil
}

// ReleaseID is the release id of an Idempotency-Key: a UUID-shaped hash
// of the caller's key id, the appKey and the key, so two callers' keys
// never meet.
func ReleaseID(keyID, appKey, idempotencyKey string) string {
	return idempotentID("release", keyID, appKey, idempotencyKey)
}

// releaseHash is the hex SHA-256 of the request's JSON encoding (field
// order fixed by the struct), which an Idempotency-Key is bound to.
func releaseHash(req ReleaseRequest) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sameRelease is sameJob for release id.
func (s *Service) sameRelease(ctx context.Context, id, hash string) error {
	return s.sameJob(ctx, "release", workflows.ReleaseWorkflowID(id), workflows.MemoReleaseHash, hash)
}

// Release answers release id's status: the workflow's query while it runs
// (with the prewarm step's live pair counts from the prewarm job), its
// result once it ended. Errors: ErrNotFound for an unknown id, ErrForbidden
// when the caller may not read the release's appKey.
func (s *Service) Release(ctx context.Context, id string) (workflows.ReleaseStatus, error) {
	var st workflows.ReleaseStatus
	running, err := s.releaseAccess(ctx, id, VerbRead)
	if err != nil {
		return st, err
	}
	wfID := workflows.ReleaseWorkflowID(id)
	if !running {
		if err := s.temporal.GetWorkflow(ctx, wfID, "").Get(ctx, &st); err != nil {
			return workflows.ReleaseStatus{ReleaseID: id, State: workflows.ReleaseFailed, Error: rootError(err)}, nil
		}
		return st, nil
	}
	v, err := s.temporal.QueryWorkflow(ctx, wfID, "", workflows.QueryRelease)
	if err != nil {
		return st, fmt.Errorf("query release %s: %w", id, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("read release %s: %w", id, err)
	}
	s.livePrewarm(ctx, &st)
	return st, nil
}

// livePrewarm fills a running prewarm step with the prewarm job's pair
// counts per edge; once every pair has an outcome the job measures warmth,
// shown as the verify step running.
func (s *Service) livePrewarm(ctx context.Context, st *workflows.ReleaseStatus) {
	step := st.Step(workflows.StepPrewarm)
	if step == nil || step.State != workflows.StepRunning || st.PrewarmRequestID == "" {
		return
	}
	pw, err := s.PrewarmStatus(ctx, st.PrewarmRequestID, 1, 1)
	if err != nil {
		return // not started yet, or unreadable for now: the counts stay 0
	}
	inFlight := s.prewarmInFlight(ctx, st.PrewarmRequestID)
	step.Done, step.Edges = 0, nil
	for _, e := range pw.Edges {
		done := min(e.Done-e.Failed+inFlight[e.EdgeID], e.Total)
		step.Done += done
		step.Edges = append(step.Edges, workflows.ReleaseEdgeReceipt{EdgeID: e.EdgeID, Done: done, Total: e.Total, Error: e.Error})
	}
	if v := st.Step(workflows.StepVerify); v != nil && v.State == workflows.StepPending && pw.Total > 0 && pw.Completed == pw.Total {
		v.State = workflows.StepRunning
	}
}

// prewarmInFlight counts, per edge, the pairs the prewarm job's running
// chunks heartbeated (activities.HeartbeatRows): the chunk summaries count
// a chunk only once it ended, so a job of one chunk would jump from 0 to
// done. Nil when the job cannot be described.
func (s *Service) prewarmInFlight(ctx context.Context, requestID string) map[string]int {
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.PrewarmWorkflowID(requestID), "")
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityType().GetName() != "PrewarmChunk" || pa.GetHeartbeatDetails() == nil {
			continue
		}
		rows, err := activities.HeartbeatRows(pa.GetHeartbeatDetails())
		if err != nil {
			continue
		}
		for _, r := range rows {
			if r.Error == "" {
				out[r.Edge]++
			}
		}
	}
	return out
}

// CancelRelease asks release id to stop: the step running is cancelled and
// the release ends CANCELLED. Errors: ErrInvalidState (409) when the
// release already ended, ErrNotFound, ErrForbidden.
func (s *Service) CancelRelease(ctx context.Context, id string) error {
	running, err := s.releaseAccess(ctx, id, VerbPurge)
	if err != nil {
		return err
	}
	if !running {
		return fmt.Errorf("release %s already ended; there is nothing to cancel: %w", id, ErrInvalidState)
	}
	if err := s.temporal.CancelWorkflow(ctx, workflows.ReleaseWorkflowID(id), ""); err != nil && !isNotFound(err) {
		return fmt.Errorf("cancel release %s: %w", id, err)
	}
	return nil
}

// releaseAccess checks that release id exists and the caller has verb on
// its appKey; it answers whether the release still runs.
func (s *Service) releaseAccess(ctx context.Context, id, verb string) (bool, error) {
	if !validRequestID(id) {
		return false, fmt.Errorf("release %q: %w", id, ErrNotFound)
	}
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.ReleaseWorkflowID(id), "")
	if isNotFound(err) {
		return false, fmt.Errorf("release %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("describe release %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	var appKey string
	if p := info.GetMemo().GetFields()[workflows.MemoReleaseAppKey]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &appKey); err != nil {
			return false, fmt.Errorf("read the appKey of release %s: %w", id, err)
		}
	}
	if err := authorize(ctx, verb, appKey); err != nil {
		return false, err
	}
	return info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// rootError is the innermost message of err.
func rootError(err error) string {
	for errors.Unwrap(err) != nil {
		err = errors.Unwrap(err)
	}
	return err.Error()
}

// PurgeReceipts answers purge seq of appKey with every edge's receipt
// (workflows.PurgeEdgeState: answer, probe, time applied, attempts), read
// as GET …/purges reads it. ErrNotFound for an unknown seq.
func (s *Service) PurgeReceipts(ctx context.Context, appKey string, seq int64) (workflows.PurgeStatus, error) {
	st, err := s.livePurge(ctx, workflows.PurgeWorkflowID(appKey, seq), time.Now(), time.Time{})
	if isNotFound(err) {
		return st, fmt.Errorf("purge seq %d: %w", seq, ErrNotFound)
	}
	return st, err
}
