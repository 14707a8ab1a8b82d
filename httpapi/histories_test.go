//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// The tests here run the paths that are not a happy path through Temporal
// (a seq reservation, a worker hand-off and retried activity) end to end, check their effect on the edges, and keep
// their histories for the replay set (CDNFLOW_RECORD_HISTORIES=1).

// A purge of more paths than one seq holds reserves its seqs in one update
// of the purge counter; every path cached on every edge before is gone
// from every edge once both seqs are at 100.
func TestPurgeReservesSeqs(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}})
	d := createDistribution(t, env, "/base")
	paths := make([]string, 201) // one more than an ITEM seq holds
	for i := range paths {
		paths[i] = fmt.Sprintf("/r/%d.css", i)
		cacheOnEveryEdge(t, env, d.Domain, paths[i])
	}
	var pr struct{ PurgeSeqs []int64 }
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")}, &pr); !h.IsSuccessful {
		t.Fatalf("purge: %+v", h)
	}
	if len(pr.PurgeSeqs) != 2 || pr.PurgeSeqs[1] != pr.PurgeSeqs[0]+1 {
		t.Fatalf("201 paths gave seqs %v, want two consecutive", pr.PurgeSeqs)
	}
	for _, seq := range pr.PurgeSeqs {
		waitPurge(t, env, d.Domain, seq)
	}
	for _, p := range paths {
		requireMissOnEveryEdge(t, env, d.Domain, p)
	}
	// The counter's history holds the reservation: one update (the rate
	// limit and the seqs together) for 2 seqs.
	reserved := 0
	for _, ev := range env.History(t, workflows.SequenceWorkflowID("purge")).GetEvents() {
		req := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest()
		if req.GetInput().GetName() != workflows.UpdateAdmitPurge {
			continue
		}
		var a workflows.AdmitPurge
		if err := converter.GetDefaultDataConverter().FromPayloads(req.GetInput().GetArgs(), &a); err != nil {
			t.Fatal(err)
		}
		if a.N == 2 && a.Scope == "items" {
			reserved++
		}
	}
	if reserved != 1 {
		t.Fatalf("%d reservations of 2 seqs in the purge counter's history, want 1", reserved)
	}
	env.Replay(t, workflows.SequenceWorkflowID("purge"), "sequence_reserve")
	env.Replay(t, "purge-"+appKey+"-"+itoa64(pr.PurgeSeqs[1]), "purge_reserved_seq")
}

// A worker that stops gracefully in the middle of a prewarm hands its
// chunk off (WorkerStopping, with the pairs done so far on every edge in
// the last heartbeat); the chunk's next attempt on a new worker resumes
// from them: no pair is fetched twice (a HIT row) and the origin serves
// each pair once.
func TestPrewarmWorkerStopHandsOff(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true, Configure: func(c *config.Config) {
		c.PrewarmConcurrency = 2
		c.HeartbeatTimeout = time.Minute // nothing here waits for a timeout
	}})
	runWorker := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stack.RunWorker(ctx, env.Config, env.Inventory, env.Client, env.Payloads, env.Logger) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		}
	}
	stopFirst := runWorker()
	edgeID := env.Edges[0].Edge.ID
	urls := make([]string, 300)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/40/handoff/%d.js", domain, i)
	}
	base := env.Origin.Requests()
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop", "region": []string{edgeID}}, nil)
	jobID := workflows.PrewarmWorkflowID(id) // its chunk activities fan out to the edges
	eventually.Within(t, time.Minute, func() error {
		if n := heartbeatPairs(t, env, jobID); n < 10 {
			return fmt.Errorf("%d pairs in the chunk's heartbeat", n)
		}
		return nil
	})
	stopFirst()
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), jobID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.GetPendingActivities()) != 1 {
		t.Fatalf("pending activities after the stop: %+v", desc.GetPendingActivities())
	}
	pa := desc.GetPendingActivities()[0]
	if typ := pa.GetLastFailure().GetApplicationFailureInfo().GetType(); typ != "WorkerStopping" {
		t.Fatalf("the chunk's last failure is %q (%s), want WorkerStopping", typ, pa.GetLastFailure().GetMessage())
	}
	handedOff := heartbeatPairs(t, env, jobID)
	if fetched := env.Origin.Requests() - base; handedOff == 0 || int64(handedOff) != fetched {
		t.Fatalf("the hand-off recorded %d pairs, the origin served %d: every fetched pair must be recorded", handedOff, fetched)
	}

	t.Cleanup(runWorker())
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("after the hand-off: %+v", st)
	}
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges?pageSize=1000", &pairs); code != 200 || len(pairs.Pairs) != len(urls) {
		t.Fatalf("pairs = %d, %d rows", code, len(pairs.Pairs))
	}
	for _, p := range pairs.Pairs {
		if p.State != "success" || p.Cache != "MISS" {
			t.Fatalf("pair %s: %s %s, want success on a first fetch (MISS); %d pairs were handed off", p.URL, p.State, p.Cache, handedOff)
		}
	}
	if got := env.Origin.Requests() - base; got != int64(len(urls)) {
		t.Fatalf("the origin served %d requests for %d pairs", got, len(urls))
	}
	// The history holds the hand-off and the retried activity (attempt 2).
	env.Replay(t, jobID, "prewarm_job_handoff")
}

// heartbeatPairs is how many pairs the last heartbeats of a prewarm
// workflow's pending chunks record.
func heartbeatPairs(t *testing.T, env *testenv.Env, workflowID string) int {
	t.Helper()
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return 0 // not started yet
	}
	if err != nil {
		t.Fatalf("describe %s: %v", workflowID, err)
	}
	n := 0
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetHeartbeatDetails() == nil {
			continue
		}
		pairs, err := activities.HeartbeatPairs(pa.GetHeartbeatDetails())
		if err != nil {
			t.Fatalf("heartbeat of %s: %v", workflowID, err)
		}
		n += pairs
	}
	return n
}

// A job of many chunks (here one URL each; through the API chunks hold
// hundreds) runs every chunk once, each as one activity on the edge: every
// URL is fetched from the origin once and is cached on the edge.
func TestPrewarmManyChunksRunOnce(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 60
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/can/%d.js", domain, i)
	}
	list, _ := json.Marshal(urls)
	key := "prewarm/can-test/urls.json"
	if err := env.Payloads.Put(ctx, key, list); err != nil {
		t.Fatal(err)
	}
	edgeID := env.Edges[0].Edge.ID
	job := workflows.PrewarmJob{
		JobID: "prewarm-can-test", Domain: domain, Scheme: "http", URLsKey: key, URLCount: n, EdgeIDs: []string{edgeID},
		Timeout: 4 * time.Minute, ChunkSize: 1,
	}
	base := env.Origin.Requests()
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: job.JobID, TaskQueue: env.Config.TaskQueue}, workflows.PrewarmWorkflow, job)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.PrewarmStatus
	if err := run.Get(ctx, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != workflows.PrewarmCompleted || st.SuccessCount != n || st.Edges[0].Done != n {
		t.Fatalf("job = %+v", st)
	}
	chunks := map[int]int{}
	for _, ev := range env.History(t, job.JobID).GetEvents() {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			var c activities.PrewarmChunkInput
			if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &c); err != nil {
				t.Fatal(err)
			}
			if len(c.EdgeIDs) != 1 || c.EdgeIDs[0] != edgeID || c.End != c.Start+1 {
				t.Fatalf("chunk %+v", c)
			}
			chunks[c.Chunk]++
		}
	}
	for c := 0; c < n; c++ {
		if chunks[c] != 1 {
			t.Errorf("chunk %d scheduled %d times, want once", c, chunks[c])
		}
	}
	if got := env.Origin.Requests() - base; got != n {
		t.Errorf("the origin served %d requests for %d URLs", got, n)
	}
	for _, u := range urls {
		if got := cacheState(t, env, 0, strings.TrimPrefix(u, "http://"+domain)); got != "HIT" {
			t.Fatalf("%s on the edge after the job: %s", u, got)
		}
	}
}
