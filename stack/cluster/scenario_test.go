//go:build cluster

package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/stack/cluster"
)

// faultRun runs one fault scenario: the purge's 1,000 paths are cached on
// every edge first; then a 2,000-URL × 3-edge prewarm starts (each origin
// fetch 30 ms, a few at a time, so it runs for a while), the purge (5
// seqs) is sent once a quarter of the pairs are fetched while one edge
// hangs (until a second into the fault), and fault runs while both are in
// flight. Then every count must be exact: 6,000 pair
// rows, each pair once and successful, one origin fetch per pair (a pair
// fetched again after a lost outcome is a HIT, never a second origin
// fetch), and every purge seq at 100 with every edge answering MISS for
// every path.
func (e *env) faultRun(t *testing.T, scenario string, fault func(*testing.T, *apiClient)) {
	a := e.client(t)
	d := e.domain(t)
	edgeIDs := e.c.Inventory().IDs()
	paths := make([]string, purgeN)
	warm := make([]string, purgeN)
	for i := range paths {
		paths[i] = fmt.Sprintf("/%s/p/%d.css", scenario, i)
		warm[i] = "http://" + d + paths[i]
	}
	pre := a.waitPrewarm(a.startPrewarm("warm-"+scenario, map[string]any{"url_list": warm, "cf_domain": d, "target_type": "pop", "region": edgeIDs}), 5*time.Minute)
	if pre.Status != "COMPLETED" || pre.Succeeded != purgeN {
		t.Fatalf("warming the purge paths: %+v", pre)
	}
	urls := make([]string, jobURLs)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/30/%s/w/%d.js", d, scenario, i)
	}
	fetched := e.origin.counter(scenario)
	start := time.Now()
	a.lastJob = a.startPrewarm("job-"+scenario, map[string]any{"url_list": urls, "cf_domain": d, "target_type": "pop", "region": edgeIDs})
	waitFor(t, 3*time.Minute, func() error {
		if n := fetched.Load(); n < jobURLs*edgeCount/4 {
			return fmt.Errorf("%d of %d pairs fetched", n, jobURLs*edgeCount)
		}
		return nil
	})
	// One edge hangs (SIGSTOP) from the purge until the fault has begun,
	// so the purge is in flight when the fault lands however fast the
	// other edges confirm it.
	held := cluster.EdgeName(edgeIDs[len(edgeIDs)-1])
	if err := e.c.Pause(held); err != nil {
		t.Fatal(err)
	}
	seqs := a.purge(d, paths)
	if len(seqs) != purgeN/200 {
		t.Fatalf("%d ITEM paths gave %d seqs, want %d", purgeN, len(seqs), purgeN/200)
	}
	if st := a.status(a.lastJob); st.Status != "IN_PROGRESS" {
		t.Fatalf("the prewarm ended (%s) before the fault: the fault must land mid-job", st.Status)
	}
	t.Logf("fault %s at %d/%d origin fetches, %s into the job, %d of %d purge seqs at 100", scenario, fetched.Load(), jobURLs*edgeCount,
		time.Since(start).Round(time.Millisecond), seqsDone(a.purges(d), seqs), len(seqs))
	if done := seqsDone(a.purges(d), seqs); done == len(seqs) {
		t.Fatalf("every purge seq at 100 with %s hung: the purge must be in flight during the fault", held)
	}
	// The edge answers again a second into the fault (every fault lasts
	// longer): held longer than a prewarm GET's timeout, its queued GETs
	// would be fetched twice.
	resumed := make(chan error, 1)
	timer := time.AfterFunc(time.Second, func() { resumed <- e.c.Resume(held) })
	fault(t, a)
	if timer.Stop() {
		resumed <- e.c.Resume(held)
	}
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	e.checkPrewarm(t, a, urls, fetched.Load)
	t.Logf("prewarm of %d pairs done %s after its start", jobURLs*edgeCount, time.Since(start).Round(time.Millisecond))
	e.checkPurge(t, a, d, seqs, paths)
	e.requireAllRunning(t)
}

// checkPrewarm waits for the job and checks its counts exactly.
func (e *env) checkPrewarm(t *testing.T, a *apiClient, urls []string, originFetches func() int64) {
	t.Helper()
	st := a.waitPrewarm(a.lastJob, 10*time.Minute)
	if st.Status != "COMPLETED" || st.Total != len(urls) || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("prewarm: %s total %d succeeded %d failed %d %v", st.Status, st.Total, st.Succeeded, st.Failed, st.FailedURL)
	}
	if len(st.Edges) != edgeCount {
		t.Fatalf("prewarm reports %d edges, want %d", len(st.Edges), edgeCount)
	}
	for _, ep := range st.Edges {
		if ep.Done != len(urls) || ep.Failed != 0 || ep.Total != len(urls) {
			t.Fatalf("edge %s: done %d failed %d total %d, want %d done", ep.EdgeID, ep.Done, ep.Failed, ep.Total, len(urls))
		}
	}
	rows := a.pairs(a.lastJob)
	want := len(urls) * edgeCount
	if len(rows) != want {
		t.Fatalf("%d pair rows, want %d", len(rows), want)
	}
	seen := map[string]bool{}
	hits := 0
	for _, r := range rows {
		k := r.EdgeID + " " + r.URL
		if seen[k] {
			t.Fatalf("pair %s counted twice", k)
		}
		seen[k] = true
		if r.State != "success" {
			t.Fatalf("pair %s: %s (%s)", k, r.State, r.Error)
		}
		switch r.Cache {
		case "HIT":
			hits++
		case "MISS":
		default:
			t.Fatalf("pair %s: cache %q", k, r.Cache)
		}
	}
	for _, id := range e.c.Inventory().IDs() {
		for _, u := range urls {
			if !seen[id+" "+u] {
				t.Fatalf("pair %s %s lost", id, u)
			}
		}
	}
	if got := originFetches(); got != int64(want) {
		t.Errorf("the origin served %d requests for the job, want one per pair (%d)", got, want)
	}
	t.Logf("%d pairs, each once; %d fetched again after a lost outcome (HIT rows)", len(rows), hits)
}

// checkPurge waits for every seq at 100 with no pending edge, then asks
// every edge for every path: each must be a MISS.
func (e *env) checkPurge(t *testing.T, a *apiClient, d string, seqs []int64, paths []string) {
	t.Helper()
	waitFor(t, 5*time.Minute, func() error {
		if done := seqsDone(a.purges(d), seqs); done != len(seqs) {
			return fmt.Errorf("%d of %d purge seqs at 100", done, len(seqs))
		}
		return nil
	})
	for _, edge := range e.c.Inventory().Edges {
		for _, p := range paths {
			code, xc, err := edgeGet(edge.Address, d, p)
			if err != nil || code != 200 || xc != "MISS" {
				t.Fatalf("after the purge %s on %s: %d %q %v, want a MISS", p, edge.ID, code, xc, err)
			}
		}
	}
}

// seqsDone counts the seqs of list at 100 with no pending edge.
func seqsDone(list []purgeItem, seqs []int64) int {
	mine := map[int64]bool{}
	for _, s := range seqs {
		mine[s] = true
	}
	done := 0
	for _, p := range list {
		if mine[p.Seq] && p.Progress == 100 && len(p.PendingEdges) == 0 {
			done++
		}
	}
	return done
}

func waitFor(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	end := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
