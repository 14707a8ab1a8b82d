package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// Prewarm statuses, as the PrewarmStatus API names them.
const (
	PrewarmCompleted  = "COMPLETED"
	PrewarmInProgress = "IN_PROGRESS"
	PrewarmTimeout    = "TIMEOUT"
	PrewarmFailed     = "FAILED"
)

// MaxPrewarmEdges bounds the targeted edges of one job: per-URL counters
// are one byte.
const MaxPrewarmEdges = 250

// targetChunksPerJob keeps the job's history (a few events per chunk) well
// under Temporal's ~50K events, whatever the job's size.
const targetChunksPerJob = 5000

// PrewarmJob is the input of PrewarmWorkflow: what the request asked for.
// The URL list itself lives in the payload store under URLsKey. How each
// pair is tried (attempts, timeouts, connections) is the worker's
// (activities.Prewarm).
type PrewarmJob struct {
	JobID          string            `json:"jobId"`
	Domain         string            `json:"domain"`
	Scheme         string            `json:"scheme"`
	URLsKey        string            `json:"urlsKey"`
	URLCount       int               `json:"urlCount"`
	EdgeIDs        []string          `json:"edgeIds"`
	Header         map[string]string `json:"header,omitempty"`
	NeedInvalidate bool              `json:"needInvalidate,omitempty"`
	Timeout        time.Duration     `json:"timeout"`
	// ChunkSize is URLs per activity; 0 picks one from the job's size.
	ChunkSize int `json:"chunkSize,omitempty"`
	// Verify asks the job to measure its warmth once every pair has an
	// outcome (measureWarmth; a release's verify step).
	Verify bool `json:"verify,omitempty"`
	// Shields are the edges of EdgeIDs the job warms only because they
	// serve a chosen edge (docs/tiers.md): they have rows, but a URL one
	// of them failed is not failed (status is per URL × chosen edge).
	Shields []string `json:"shields,omitempty"`
}

// ChunkReport is one edge's outcome of one chunk, as the job applies it.
type ChunkReport struct {
	EdgeID string `json:"edgeId"`
	Chunk  int    `json:"chunk"`
	Start  int    `json:"start"`
	End    int    `json:"end"`
	// Failed lists URL indices that failed on this edge after retries.
	Failed []int `json:"failed,omitempty"`
}

// EdgeProgress is one edge's share of a job.
type EdgeProgress struct {
	EdgeID string `json:"edgeId"`
	Done   int    `json:"done"`
	Failed int    `json:"failed"`
	Total  int    `json:"total"`
	Error  string `json:"error,omitempty"`
}

// PrewarmPage is one page of the index lists of PrewarmStatus: Offset
// entries skipped, at most Limit returned (0: 1000).
type PrewarmPage struct {
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
}

// PrewarmStatus is a job's status: its result, and what ReadPrewarmStatus
// answers. Lists hold URL indices into the job's URL list (the API turns
// them into URLs), paged by a PrewarmPage.
//
// A URL is completed when every targeted edge has an outcome for it; it is
// failed when at least one edge failed it after retries; it succeeded when
// every edge stored it; it is in progress otherwise.
type PrewarmStatus struct {
	Status        string         `json:"status"`
	Total         int            `json:"total"`
	Completed     int            `json:"completed"`
	InProgress    int            `json:"inProgress"`
	FailedCount   int            `json:"failedCount"`
	SuccessCount  int            `json:"successCount"`
	FailedIdx     []int          `json:"failedIdx"`
	InProgressIdx []int          `json:"inProgressIdx"`
	SuccessIdx    []int          `json:"successIdx"`
	Edges         []EdgeProgress `json:"edges"`
	Domain        string         `json:"domain"`
	URLsKey       string         `json:"urlsKey"`
	ChunkSize     int            `json:"chunkSize"`
	Error         string         `json:"error,omitempty"`
	// Warmth is the share of URLs HIT on each edge after the job ran, when
	// the job asked for it (PrewarmJob.Verify).
	Warmth *activities.Warmth `json:"warmth,omitempty"`
}

// prewarmState is the job's memory: a byte and a bit per URL, so 100,000
// URLs cost ~110 KB however many edges there are.
type prewarmState struct {
	job    PrewarmJob
	status string
	errMsg string
	done   []uint8 // edges with an outcome, per URL
	failed []bool
	edges  []EdgeProgress
	shield map[string]bool // job.Shields
	byEdge map[string]int
	seen   map[string]bool // edge/chunk already applied
	warmth *activities.Warmth
}

func newPrewarmState(job PrewarmJob) *prewarmState {
	st := &prewarmState{
		job:    job,
		status: PrewarmInProgress,
		done:   make([]uint8, job.URLCount),
		failed: make([]bool, job.URLCount),
		byEdge: map[string]int{},
		seen:   map[string]bool{},
		shield: map[string]bool{},
	}
	for _, id := range job.Shields {
		st.shield[id] = true
	}
	for i, id := range job.EdgeIDs {
		st.edges = append(st.edges, EdgeProgress{EdgeID: id, Total: job.URLCount})
		st.byEdge[id] = i
	}
	return st
}

func (st *prewarmState) apply(r ChunkReport) {
	key := fmt.Sprintf("%s/%d", r.EdgeID, r.Chunk)
	ei, ok := st.byEdge[r.EdgeID]
	if !ok || st.seen[key] || r.Start < 0 || r.End > len(st.done) || r.Start > r.End {
		return
	}
	st.seen[key] = true
	for i := r.Start; i < r.End; i++ {
		st.done[i]++
	}
	for _, i := range r.Failed {
		if i >= r.Start && i < r.End && !st.shield[r.EdgeID] {
			st.failed[i] = true
		}
	}
	st.edges[ei].Done += r.End - r.Start
	st.edges[ei].Failed += len(r.Failed)
}

func (st *prewarmState) allDone() bool {
	for _, e := range st.edges {
		if e.Done < e.Total {
			return false
		}
	}
	return true
}

func (st *prewarmState) snapshot(q PrewarmPage) PrewarmStatus {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	out := PrewarmStatus{
		Status: st.status, Total: len(st.done), Domain: st.job.Domain, URLsKey: st.job.URLsKey, ChunkSize: st.job.ChunkSize,
		Edges: append([]EdgeProgress(nil), st.edges...), Error: st.errMsg, Warmth: st.warmth,
		FailedIdx: []int{}, InProgressIdx: []int{}, SuccessIdx: []int{},
	}
	n := uint8(len(st.edges))
	add := func(list *[]int, count *int, i int) {
		if *count >= q.Offset && len(*list) < q.Limit {
			*list = append(*list, i)
		}
		*count++
	}
	var inProgress int
	for i, d := range st.done {
		switch {
		case d < n:
			add(&out.InProgressIdx, &inProgress, i)
		case st.failed[i]:
			add(&out.FailedIdx, &out.FailedCount, i)
		default:
			add(&out.SuccessIdx, &out.SuccessCount, i)
		}
	}
	out.InProgress = inProgress
	out.Completed = len(st.done) - inProgress
	return out
}

// PrewarmWorkflow is one prewarm request: one PrewarmChunk activity per
// chunk of URLs warms it on every targeted edge (runChunks); this workflow
// keeps the per-URL tally its result reports, and enforces the job's
// deadline. Readers never ask it: a job's status is read from its memo,
// its chunks' summaries and its result (prewarm_read.go).
func PrewarmWorkflow(ctx workflow.Context, job PrewarmJob) (PrewarmStatus, error) {
	job.ChunkSize = prewarmChunkSize(job)
	st := newPrewarmState(job)
	finish := func(status, msg string) (PrewarmStatus, error) { return st.finish(ctx, status, msg), nil }
	if len(job.EdgeIDs) == 0 || len(job.EdgeIDs) > MaxPrewarmEdges || job.URLCount == 0 {
		return finish(PrewarmFailed, "job has no URLs or no valid edge set")
	}
	timerFired, errMsg := runChunks(ctx, st, job)
	if job.Verify && st.allDone() && workflow.GetVersion(ctx, versionPrewarmWarmth, workflow.DefaultVersion, 1) == 1 {
		st.warmth = measureWarmth(ctx, job)
	}
	switch {
	case st.allDone():
		return finish(PrewarmCompleted, "")
	case timerFired:
		return finish(PrewarmTimeout, fmt.Sprintf("deadline of %s passed", job.Timeout))
	default:
		return finish(PrewarmFailed, errMsg)
	}
}

// finish ends the job in status: it counts the job and records the status
// in StatusAttr, and returns the result (lists cut at 100 entries).
func (st *prewarmState) finish(ctx workflow.Context, status, msg string) PrewarmStatus {
	st.status, st.errMsg = status, msg
	countFinished(ctx, KindPrewarm, status)
	if err := workflow.UpsertTypedSearchAttributes(ctx, StatusAttr.ValueSet(status)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert status", "error", err)
	}
	PublishJobEvent(ctx, prewarmDoneEvent(ctx, st))
	return st.snapshot(PrewarmPage{Limit: 100})
}

func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	for errors.Unwrap(err) != nil {
		err = errors.Unwrap(err)
	}
	return err.Error()
}
