package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// KindRelease is the KindAttr of a release job (ReleaseWorkflow).
const KindRelease = "release"

// Release outcomes, kept in StatusAttr and ReleaseStatus.State.
const (
	ReleaseRunning   = "RUNNING"
	ReleaseSucceeded = "SUCCEEDED"
	ReleaseFailed    = "FAILED"
	ReleaseCancelled = "CANCELLED"
	ReleaseTimeout   = "TIMEOUT"
)

// Release steps, in the order a release runs them (JobEvent.Step).
const (
	StepPurge   = "purge"
	StepPrewarm = "prewarm"
	StepVerify  = "verify"
)

// Step states.
const (
	StepPending   = "PENDING"
	StepRunning   = "RUNNING"
	StepDone      = "DONE"
	StepFailed    = "FAILED"
	StepSkipped   = "SKIPPED"   // the release did not ask for it
	StepCancelled = "CANCELLED" // cancelled, timed out or after a failed step
)

// QueryRelease answers a running release's ReleaseStatus.
const QueryRelease = "release"

// MemoReleaseHash is the memo key of a release's request hash (hex
// SHA-256 of its canonical body): an Idempotency-Key is bound to it.
const MemoReleaseHash = "releaseHash"

// MemoReleaseAppKey is the memo key of a release's appKey, read by the API
// to authorize its readers without a worker.
const MemoReleaseAppKey = "appKey"

// ReleaseWorkflowID is the id of a release job; id is what the API answers.
func ReleaseWorkflowID(id string) string { return "release-" + id }

// ReleaseJob is the input of ReleaseWorkflow: the purge seqs the API
// admitted (seq numbers reserved, NHN rate limit taken) and the prewarm job
// (its URL list stored), both for one distribution.
type ReleaseJob struct {
	ReleaseID string `json:"releaseId"`
	AppKey    string `json:"appKey"`
	Domain    string `json:"domain"`
	// DistributionSeq is the distribution's NHN seq, listed with each purge.
	DistributionSeq int64      `json:"distributionSeq"`
	Purges          []PurgeSeq `json:"purges,omitempty"`
	// Prewarm is nil for a purge-only release; Prewarm.Verify asks the
	// prewarm job to measure warmth (the release's verify step).
	Prewarm          *PrewarmJob `json:"prewarm,omitempty"`
	PrewarmRequestID string      `json:"prewarmRequestId,omitempty"`
	PrewarmHash      string      `json:"prewarmHash,omitempty"`
	// Deadline bounds the whole release from its start; when it passes the
	// step running is cancelled and the release ends TIMEOUT.
	Deadline   time.Duration `json:"deadline"`
	AcceptedAt int64         `json:"acceptedAt"` // epoch ms
}

// ReleaseEdgeReceipt is one edge's receipt of one release step.
type ReleaseEdgeReceipt struct {
	EdgeID string `json:"edgeId"`
	// Answer is the edge's last HTTP answer for the step ("200 Purged",
	// "200 HIT", or the error), Verified what a check showed afterwards:
	// MISS (purge: a cache-only probe finds no copy cached before it), BAN
	// (bans registered), HIT (every URL served from cache), or PARTIAL.
	Answer    string `json:"answer,omitempty"`
	Verified  string `json:"verified,omitempty"`
	AppliedAt int64  `json:"appliedAt,omitempty"` // epoch ms of the last unit applied
	Attempts  int    `json:"attempts,omitempty"`  // tries of the edge, summed over seqs
	Done      int    `json:"done"`                // units (seqs, URLs) the edge completed
	Total     int    `json:"total"`
	Error     string `json:"error,omitempty"`
}

// ReleaseStep is one step's state; Done/Total count its units: purge seqs
// × edges, prewarm URL × edge pairs, verify URL × edge pairs seen as HIT.
type ReleaseStep struct {
	Name      string               `json:"name"`
	State     string               `json:"state"`
	StartedAt int64                `json:"startedAt,omitempty"`
	EndedAt   int64                `json:"endedAt,omitempty"`
	Done      int                  `json:"done"`
	Total     int                  `json:"total"`
	Edges     []ReleaseEdgeReceipt `json:"edges,omitempty"`
	Error     string               `json:"error,omitempty"`
}

// ReleaseStatus is a release's state, answered by QueryRelease and as the
// workflow's result.
type ReleaseStatus struct {
	ReleaseID        string             `json:"releaseId"`
	AppKey           string             `json:"appKey"`
	Domain           string             `json:"domain"`
	State            string             `json:"state"`
	AcceptedAt       int64              `json:"acceptedAt"`
	EndedAt          int64              `json:"endedAt,omitempty"`
	PurgeSeqs        []int64            `json:"purgeSeqs,omitempty"`
	PrewarmRequestID string             `json:"prewarmRequestId,omitempty"`
	Steps            []ReleaseStep      `json:"steps"`
	Warmth           *activities.Warmth `json:"warmth,omitempty"`
	Error            string             `json:"error,omitempty"`
}

// Step answers the named step (nil when absent).
func (st *ReleaseStatus) Step(name string) *ReleaseStep {
	for i := range st.Steps {
		if st.Steps[i].Name == name {
			return &st.Steps[i]
		}
	}
	return nil
}

func newReleaseStatus(job ReleaseJob) *ReleaseStatus {
	st := &ReleaseStatus{ReleaseID: job.ReleaseID, AppKey: job.AppKey, Domain: job.Domain, State: ReleaseRunning,
		AcceptedAt: job.AcceptedAt, PrewarmRequestID: job.PrewarmRequestID}
	for _, p := range job.Purges {
		st.PurgeSeqs = append(st.PurgeSeqs, p.Seq)
	}
	step := func(name string, asked bool, total int) {
		s := ReleaseStep{Name: name, State: StepPending, Total: total}
		if !asked {
			s.State = StepSkipped
		}
		st.Steps = append(st.Steps, s)
	}
	edges, urls := 0, 0
	if len(job.Purges) > 0 {
		edges = len(job.Purges[0].EdgeIDs)
	}
	if job.Prewarm != nil {
		urls = job.Prewarm.URLCount * len(job.Prewarm.EdgeIDs)
	}
	step(StepPurge, len(job.Purges) > 0, len(job.Purges)*edges)
	step(StepPrewarm, job.Prewarm != nil, urls)
	step(StepVerify, job.Prewarm != nil && job.Prewarm.Verify, urls)
	return st
}

// ReleaseWorkflow is one release: the purge seqs (each a child
// PurgeWorkflow, listed by GET …/purges as any purge), waiting until every
// edge confirmed each of them; then the prewarm (a child PrewarmWorkflow,
// its status on GET /status as any prewarm), which with Verify measures
// warmth: a GET of every URL through every targeted edge, counted as HIT or
// not. A step that fails ends the release FAILED and the later steps
// CANCELLED. Cancelling the workflow cancels the step running (CANCELLED);
// Deadline does the same and ends it TIMEOUT. Each step done and the release
// done are published as job events (PublishJobEvent).
func ReleaseWorkflow(ctx workflow.Context, job ReleaseJob) (ReleaseStatus, error) {
	st := newReleaseStatus(job)
	if err := workflow.SetQueryHandler(ctx, QueryRelease, func() (ReleaseStatus, error) { return *st, nil }); err != nil {
		return *st, err
	}
	runCtx, cancelRun := workflow.WithCancel(ctx)
	timedOut := false
	if job.Deadline > 0 {
		timerCtx, stopTimer := workflow.WithCancel(ctx)
		defer stopTimer()
		workflow.Go(timerCtx, func(gctx workflow.Context) {
			if workflow.NewTimer(gctx, job.Deadline).Get(gctx, nil) == nil {
				timedOut = true
				cancelRun()
			}
		})
	}
	r := &releaseRun{job: job, st: st}
	ok := r.purge(runCtx) && r.prewarm(runCtx) && r.verify(runCtx)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	switch {
	case ok:
		st.State = ReleaseSucceeded
	case timedOut:
		st.State, st.Error = ReleaseTimeout, fmt.Sprintf("deadline of %s passed", job.Deadline)
	case ctx.Err() != nil:
		st.State, st.Error = ReleaseCancelled, "cancelled"
	default:
		st.State = ReleaseFailed
	}
	for i := range st.Steps {
		if s := &st.Steps[i]; s.State == StepPending || s.State == StepRunning {
			s.State = StepCancelled
		}
	}
	st.EndedAt = workflow.Now(dctx).UnixMilli()
	if err := workflow.UpsertTypedSearchAttributes(dctx, StatusAttr.ValueSet(st.State)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert release status", "error", err)
	}
	countFinished(dctx, KindRelease, st.State)
	PublishJobEvent(dctx, JobEvent{Type: EventReleaseDone, AppKey: job.AppKey, JobID: job.ReleaseID, State: st.State,
		At: st.EndedAt, Detail: map[string]any{"error": st.Error}})
	return *st, nil
}

// releaseRun is one run of ReleaseWorkflow: its input and status.
type releaseRun struct {
	job ReleaseJob
	st  *ReleaseStatus
}

// begin marks step name running and answers it, or nil when skipped.
func (r *releaseRun) begin(ctx workflow.Context, name string) *ReleaseStep {
	s := r.st.Step(name)
	if s.State == StepSkipped {
		return nil
	}
	s.State, s.StartedAt = StepRunning, workflow.Now(ctx).UnixMilli()
	return s
}

// end closes step s as ok or failed (errMsg) and publishes it; it answers ok.
func (r *releaseRun) end(ctx workflow.Context, s *ReleaseStep, ok bool, errMsg string) bool {
	s.State, s.Error = StepDone, errMsg
	if !ok {
		s.State = StepFailed
		if ctx.Err() != nil {
			s.State = StepCancelled
		}
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	s.EndedAt = workflow.Now(dctx).UnixMilli()
	PublishJobEvent(dctx, JobEvent{Type: EventReleaseStepDone, AppKey: r.job.AppKey, JobID: r.job.ReleaseID, Step: s.Name,
		State: s.State, At: s.EndedAt, Detail: map[string]any{"done": s.Done, "total": s.Total}})
	return ok
}

// purge starts every purge seq as a child PurgeWorkflow at once and waits
// for each; the step is done when every edge confirmed every seq.
func (r *releaseRun) purge(ctx workflow.Context) bool {
	s := r.begin(ctx, StepPurge)
	if s == nil {
		return true
	}
	futures := make([]workflow.ChildWorkflowFuture, len(r.job.Purges))
	for i, pr := range r.job.Purges {
		futures[i] = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, r.purgeChildOptions(pr)), PurgeWorkflow, pr)
	}
	rec := newReceipts(r.job.Purges[0].EdgeIDs, len(r.job.Purges))
	ok, errMsg := true, ""
	for i, f := range futures {
		var res PurgeStatus
		if err := awaitChild(ctx, f, &res); err != nil {
			ok, errMsg = false, fmt.Sprintf("purge seq %d: %s", r.job.Purges[i].Seq, rootMessage(err))
			continue
		}
		rec.addPurge(res)
		if res.State != PurgeDone {
			ok, errMsg = false, fmt.Sprintf("purge seq %d ended %s: an edge did not confirm it", res.Seq, res.State)
		}
		s.Done, s.Edges = rec.done(), rec.rows()
	}
	return r.end(ctx, s, ok, errMsg)
}

// awaitChild waits for child f's result into out, or for ctx to be
// cancelled (the release cancelled or past its deadline): the SDK asks the
// child to cancel, yet a child waits for its edges and would hold the
// release; it is terminated when the release ends (ParentClosePolicy
// TERMINATE, the default).
func awaitChild(ctx workflow.Context, f workflow.ChildWorkflowFuture, out any) error {
	var err error
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(f, func(f workflow.Future) { err = f.Get(ctx, out) })
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { err = temporal.NewCanceledError("release cancelled") })
	sel.Select(ctx)
	return err
}

func (r *releaseRun) purgeChildOptions(pr PurgeSeq) workflow.ChildWorkflowOptions {
	return workflow.ChildWorkflowOptions{
		WorkflowID:            PurgeWorkflowID(pr.AppKey, pr.Seq),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			KindAttr.ValueSet(KindPurge), AppKeyAttr.ValueSet(pr.AppKey), DomainAttr.ValueSet(pr.Domain),
			PurgeTypeAttr.ValueSet(pr.Type), StatusAttr.ValueSet(PurgeRunning), SeqAttr.ValueSet(pr.Seq),
			CreatedAttr.ValueSet(time.UnixMilli(pr.PurgeTime).UTC())),
		Memo: PurgeMemo(pr, r.job.DistributionSeq),
	}
}

// prewarm runs the prewarm job as a child PrewarmWorkflow (with Verify it
// also measures warmth) and waits for it.
func (r *releaseRun) prewarm(ctx workflow.Context) bool {
	s := r.begin(ctx, StepPrewarm)
	if s == nil {
		return true
	}
	job := *r.job.Prewarm
	memo := PrewarmJobMemo(job)
	memo[MemoRequestHash] = r.job.PrewarmHash
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            job.JobID,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			KindAttr.ValueSet(KindPrewarm), DomainAttr.ValueSet(job.Domain), StatusAttr.ValueSet(PrewarmInProgress),
			CreatedAttr.ValueSet(time.UnixMilli(r.job.AcceptedAt).UTC()), AppKeyAttr.ValueSet(r.job.AppKey)),
		Memo: memo,
	}
	var res PrewarmStatus
	if err := awaitChild(ctx, workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), PrewarmWorkflow, job), &res); err != nil {
		return r.end(ctx, s, false, "prewarm: "+rootMessage(err))
	}
	for _, e := range res.Edges {
		s.Done += e.Done - e.Failed
		s.Edges = append(s.Edges, ReleaseEdgeReceipt{EdgeID: e.EdgeID, Done: e.Done - e.Failed, Total: e.Total, Error: e.Error})
	}
	r.st.Warmth = res.Warmth
	if res.Status != PrewarmCompleted || res.FailedCount > 0 {
		return r.end(ctx, s, false, fmt.Sprintf("prewarm ended %s with %d URLs failed %s", res.Status, res.FailedCount, res.Error))
	}
	return r.end(ctx, s, true, "")
}

// verify reads the warmth the prewarm job measured: the step is done when
// every URL × edge pair answered a HIT.
func (r *releaseRun) verify(ctx workflow.Context) bool {
	s := r.begin(ctx, StepVerify)
	if s == nil {
		return true
	}
	w := r.st.Warmth
	if w == nil {
		return r.end(ctx, s, false, "the prewarm job measured no warmth")
	}
	for _, e := range w.Edges {
		s.Done += e.Hit
		v := "HIT"
		if e.Hit < e.Total {
			v = "PARTIAL"
		}
		s.Edges = append(s.Edges, ReleaseEdgeReceipt{EdgeID: e.EdgeID, Answer: e.Answer, Verified: v, AppliedAt: e.CheckedAt,
			Attempts: e.Attempts, Done: e.Hit, Total: e.Total, Error: e.Error})
	}
	if s.Done < s.Total {
		return r.end(ctx, s, false, fmt.Sprintf("%d of %d URL×edge pairs are not a HIT", s.Total-s.Done, s.Total))
	}
	return r.end(ctx, s, true, "")
}

// receipts sums each edge's purge receipts over a release's seqs.
type receipts struct {
	ids   []string
	seqs  int
	edges map[string]*ReleaseEdgeReceipt
}

func newReceipts(ids []string, seqs int) *receipts {
	r := &receipts{ids: ids, seqs: seqs, edges: map[string]*ReleaseEdgeReceipt{}}
	for _, id := range ids {
		r.edges[id] = &ReleaseEdgeReceipt{EdgeID: id, Total: seqs}
	}
	return r
}

// addPurge adds one seq's per-edge states.
func (r *receipts) addPurge(res PurgeStatus) {
	for _, e := range res.Edges {
		rc, ok := r.edges[e.EdgeID]
		if !ok {
			continue
		}
		rc.Attempts += e.Attempts
		rc.AppliedAt = max(rc.AppliedAt, e.AppliedAt)
		if e.Answer != "" {
			rc.Answer = e.Answer
		}
		if e.Error != "" {
			rc.Error = e.Error
		}
		if !e.Confirmed {
			rc.Verified = "UNCONFIRMED"
			continue
		}
		rc.Done++
		if rc.Verified == "" || rc.Verified == e.Probe {
			rc.Verified = e.Probe
		}
	}
}

func (r *receipts) done() int {
	n := 0
	for _, id := range r.ids {
		n += r.edges[id].Done
	}
	return n
}

// rows are the receipts in edge order.
func (r *receipts) rows() []ReleaseEdgeReceipt {
	out := make([]ReleaseEdgeReceipt, 0, len(r.ids))
	for _, id := range r.ids {
		out = append(out, *r.edges[id])
	}
	return out
}

// versionPrewarmWarmth is the GetVersion change id of PrewarmWorkflow's
// warmth measurement (version 1: a job with Verify runs MeasureWarmth after
// its chunks).
const versionPrewarmWarmth = "prewarm-warmth"

// versionWarmthDeadline is the GetVersion change id of the warmth
// measurement's timeout (version 1: every attempt together within what is
// left of the job's deadline, counted from the workflow's start; before
// it each attempt had the whole deadline).
const versionWarmthDeadline = "prewarm-warmth-deadline"

// measureWarmth runs MeasureWarmth on the job's edges within what is left
// of the job's deadline (retried twice); a failure leaves a Warmth with
// each edge's error, so the release's verify step fails with the reason.
func measureWarmth(ctx workflow.Context, job PrewarmJob) *activities.Warmth {
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    workerKnobs(ctx).HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second,
			NonRetryableErrorTypes: []string{activities.ErrUnknownEdge, activities.ErrPayloadMissing}},
	}
	if workflow.GetVersion(ctx, versionWarmthDeadline, workflow.DefaultVersion, 1) == 1 {
		left := max(timeout-workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime), time.Second)
		opts.StartToCloseTimeout, opts.ScheduleToCloseTimeout = left, left
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	var a *activities.Prewarm
	in := activities.WarmthInput{JobID: job.JobID, EdgeIDs: job.EdgeIDs, Domain: job.Domain, Scheme: job.Scheme,
		URLsKey: job.URLsKey, Header: job.Header}
	var w activities.Warmth
	if err := workflow.ExecuteActivity(actx, a.MeasureWarmth, in).Get(ctx, &w); err != nil {
		w = activities.Warmth{}
		for _, id := range job.EdgeIDs {
			w.Edges = append(w.Edges, activities.EdgeWarmth{EdgeID: id, Total: job.URLCount, Error: rootMessage(err)})
		}
	}
	return &w
}
