//go:build !unit

package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

const (
	crashAppKey = "crash-app"
	crashSecret = "crash-secret"
	// crashHeartbeat is how soon a killed worker's activities are retried.
	crashHeartbeat = 2 * time.Second
)

// crashEnv is three real edges, the embedded Temporal server and the API in
// this process, and the worker as a separate `cdnflow worker` process that
// the test can kill -9.
func crashEnv(t *testing.T) (*testenv.Env, api, *workerProc, string, int) {
	t.Helper()
	return workerEnv(t, crashHeartbeat)
}

// workerEnv is crashEnv with a given heartbeat timeout.
func workerEnv(t *testing.T, heartbeat time.Duration) (*testenv.Env, api, *workerProc, string, int) {
	t.Helper()
	bin := buildBinary(t)
	env := testenv.Start(t, testenv.Options{Edges: 3, NoWorker: true, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{crashAppKey: crashSecret}
		c.PurgeItemInterval = 0
		c.HeartbeatTimeout = heartbeat
		// A few pairs at a time per chunk keep the job running long enough
		// for every kill to land in the middle of it.
		c.PrewarmConcurrency = 2
		c.PrewarmPipeline = 1
	}})
	// The worker process owns its tunables: it gets them as flags.
	w := startWorkerProc(t, bin, env, "--edge-purge-concurrency", "2",
		"--prewarm-concurrency", strconv.Itoa(env.Config.PrewarmConcurrency), "--prewarm-pipeline", strconv.Itoa(env.Config.PrewarmPipeline))
	host, portStr, _ := net.SplitHostPort(env.OriginAddr)
	port, _ := strconv.Atoi(portStr)
	a := api{t: t, base: env.API.URL, appKey: crashAppKey, secret: crashSecret, timeout: 3 * time.Minute}
	return env, a, w, host, port
}

// TestWorkerKilledTenTimesLosesNothing kills the worker process with
// SIGKILL ten times at random moments, each while it is alive and fetching,
// while a 6,000-pair prewarm and a 1,000-path purge run on three real
// edges. Every job must finish with exact counts, no pair lost, every URL
// cached on every edge, no purge seq may show 100 while an edge still holds
// one of its paths, and no pair whose outcome was durably recorded at a
// kill (chunk result or last heartbeat) is ever fetched again: its final
// row is that recorded outcome. Only pairs done after the last heartbeat
// before a kill may be fetched again (a HIT row, as the URLs are new).
func TestWorkerKilledTenTimesLosesNothing(t *testing.T) {
	env, a, w, originHost, originPort := crashEnv(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	domain := a.createDistribution(originHost, originPort)
	edgeIDs := make([]string, len(env.Edges))
	for i, e := range env.Edges {
		edgeIDs[i] = e.Edge.ID
	}

	// The purge's paths are cached first, on every edge, without chaos.
	purgePaths := make([]string, 1000)
	purgeURLs := make([]string, len(purgePaths))
	for i := range purgePaths {
		purgePaths[i] = fmt.Sprintf("/p/%d.css", i)
		purgeURLs[i] = "http://" + domain + purgePaths[i]
	}
	pre := a.waitPrewarm(a.startPrewarm(map[string]any{"url_list": purgeURLs, "cf_domain": domain, "target_type": "pop", "region": edgeIDs}))
	if pre.Status != "COMPLETED" || pre.Succeeded != len(purgeURLs) {
		t.Fatalf("warming the purge paths: %+v", pre.Status)
	}

	// The prewarm under test: 2,000 URLs × 3 edges, each fetch 40 ms at
	// the origin, so it runs ~20 s without kills and every kill lands
	// inside it.
	urls := make([]string, 2000)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/40/w/%d.js", domain, i)
	}
	// Origin requests of the job: every other origin request of the test is
	// a watcher's MISS, counted in watcherMisses. A pair's first fetch is a
	// MISS, one origin request; a fetch again is a HIT, none.
	originBase := env.Origin.Requests()
	// The watcher holds watchMu while it fetches, and the test reads the
	// count under it, so no watcher fetch is half counted in a reading.
	var watcherMisses atomic.Int64
	var watchMu sync.Mutex
	jobFetches := func() int64 {
		watchMu.Lock()
		defer watchMu.Unlock()
		return env.Origin.Requests() - originBase - watcherMisses.Load()
	}
	jobID := a.startPrewarm(map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop", "region": edgeIDs})

	// Watch every purge seq: the moment the API first reports 100, every
	// edge must already have dropped every path of that seq.
	seqPaths := map[int64][]string{}
	checked := map[int64]bool{}
	var seqMu sync.Mutex
	watchDone := make(chan struct{})
	violations := make(chan string, 100)
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-watchDone:
				return
			case <-time.After(50 * time.Millisecond):
			}
			items, err := a.tryPurges(domain)
			if err != nil {
				violations <- "purge list while workers crash: " + err.Error()
				continue
			}
			for _, p := range items {
				seqMu.Lock()
				paths, done := seqPaths[p.Seq], checked[p.Seq]
				seqMu.Unlock()
				if p.Progress != 100 || done || paths == nil {
					continue
				}
				watchMu.Lock()
				for _, e := range env.Edges {
					for _, path := range paths {
						_, xc, _, err := tryEdgeGet(e.Edge.Address, domain, path)
						if xc == "MISS" {
							watcherMisses.Add(1)
						}
						if err != nil || xc != "MISS" {
							violations <- fmt.Sprintf("seq %d at 100 but %s on %s is %s (%v)", p.Seq, path, e.Edge.ID, xc, err)
							break
						}
					}
				}
				watchMu.Unlock()
				seqMu.Lock()
				checked[p.Seq] = true
				seqMu.Unlock()
			}
		}
	}()

	const kills = 10
	purgeAtKill := 1 + rng.IntN(3) // the purge starts just before a random kill
	var purgeSeqs []int64
	// What was durable at each kill, by "edge/index": the next attempts
	// must resume from it and never fetch those pairs again.
	recordedAtKills := map[string]pairOutcome{}
	for k := 1; k <= kills; k++ {
		pause := time.Duration(300+rng.IntN(1700)) * time.Millisecond
		time.Sleep(pause)
		if k == purgeAtKill {
			var res struct{ PurgeSeqs []int64 }
			a.nhnRetried("POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(purgePaths, "\n")}, &res)
			purgeSeqs = res.PurgeSeqs
			seqMu.Lock()
			for i, s := range purgeSeqs {
				end := min((i+1)*200, len(purgePaths))
				seqPaths[s] = purgePaths[i*200 : end]
			}
			seqMu.Unlock()
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		st := a.prewarmStatus(jobID)
		if st.Status != "IN_PROGRESS" {
			t.Fatalf("the prewarm ended (%s) before kill %d: the test must kill mid-job", st.Status, k)
		}
		// Kill only a worker that is alive and fetching: the origin sees
		// new requests of the job within a short window just before.
		eventually.WithinEvery(t, 90*time.Second, time.Millisecond, func() error {
			watchMu.Lock()
			defer watchMu.Unlock()
			before := env.Origin.Requests()
			time.Sleep(100 * time.Millisecond)
			if env.Origin.Requests() == before {
				return fmt.Errorf("worker run %d fetched nothing in 100ms before kill %d", k, k)
			}
			return nil
		})
		w.requireAlive()
		w.kill()
		fetched, recorded := jobFetches(), recordedPairs(t, env, jobID, edgeIDs)
		for p, o := range recordedAtKills {
			if now, ok := recorded[p]; !ok || now != o {
				t.Fatalf("kill %d: pair %s was recorded as %+v at an earlier kill and is now %+v (recorded: %v)", k, p, o, now, ok)
			}
		}
		for p, o := range recorded {
			recordedAtKills[p] = o
		}
		t.Logf("kill %d after %s: prewarm %d/%d, %d pairs fetched, %d recorded", k, pause, st.Completed, st.Total, fetched, len(recorded))
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		w.start()
	}

	st := a.waitPrewarm(jobID)
	if st.Status != "COMPLETED" || st.Total != len(urls) || st.Succeeded != len(urls) || st.Failed != 0 {
		t.Fatalf("prewarm after %d kills: %s total %d succeeded %d failed %d %v", kills, st.Status, st.Total, st.Succeeded, st.Failed, st.FailedURL)
	}
	for _, e := range st.Edges {
		if e.Done != len(urls) || e.Failed != 0 {
			t.Fatalf("edge %s: done %d failed %d of %d", e.EdgeID, e.Done, e.Failed, len(urls))
		}
	}
	// Every pair succeeded, and every pair recorded at a kill kept that
	// outcome: a chunk that did not resume would fetch it again (a HIT
	// with a new duration). HIT rows are bounded by the pairs never
	// recorded at any kill.
	rows, hits := a.requireEverySucceeded(jobID, len(urls)*len(edgeIDs))
	redone := 0
	for p, o := range recordedAtKills {
		edgeID, idx, _ := strings.Cut(p, "/")
		i, _ := strconv.Atoi(idx)
		if r := rows[edgeID+"/"+urls[i]]; !sameOutcome(o, r) {
			if redone++; redone <= 5 {
				t.Errorf("pair %s was recorded at a kill as %+v, but its final row is %+v: fetched again", p, o, r)
			}
		}
	}
	if redone > 0 {
		t.Errorf("%d of %d pairs recorded at a kill were fetched again: the restarted chunks did not resume from them", redone, len(recordedAtKills))
	}
	t.Logf("%d pairs fetched again after a kill (HIT rows); %d pairs recorded at kills kept their outcome; at most %d pairs were never recorded at a kill",
		hits, len(recordedAtKills)-redone, len(urls)*len(edgeIDs)-len(recordedAtKills))
	if hits > len(urls)*len(edgeIDs)-len(recordedAtKills) {
		t.Errorf("%d HIT rows, more than the %d pairs never recorded at a kill", hits, len(urls)*len(edgeIDs)-len(recordedAtKills))
	}
	if got := jobFetches(); got != int64(len(urls)*len(edgeIDs)) {
		t.Errorf("the origin served %d requests for the job, want one per pair (%d)", got, len(urls)*len(edgeIDs))
	}
	// And the edges really hold every URL.
	for _, e := range env.Edges {
		for _, u := range urls {
			path := strings.TrimPrefix(u, "http://"+domain)
			if _, xc, _ := edgeGet(t, e.Edge.Address, domain, path); xc != "HIT" {
				t.Fatalf("%s on %s after the job: %s", path, e.Edge.ID, xc)
			}
		}
	}

	if len(purgeSeqs) != 5 {
		t.Fatalf("1,000 ITEM paths gave %d seqs, want 5", len(purgeSeqs))
	}
	a.waitPurgesDone(domain, len(purgeSeqs))
	// The watcher inspected every seq on every edge before it stops.
	eventually.Within(t, 30*time.Second, func() error {
		seqMu.Lock()
		defer seqMu.Unlock()
		for _, s := range purgeSeqs {
			if !checked[s] {
				return fmt.Errorf("the watcher has not inspected seq %d on the edges (%d of %d done)", s, len(checked), len(purgeSeqs))
			}
		}
		return nil
	})
	close(watchDone)
	watch.Wait()
	close(violations)
	for v := range violations {
		t.Error(v)
	}
}

// TestDistributionModifyingSurvivesWorkerKill kills the worker while a
// distribution is MODIFYING: after a restart the change reaches every
// edge and the distribution is OPEN again.
func TestDistributionModifyingSurvivesWorkerKill(t *testing.T) {
	env, a, w, originHost, originPort := crashEnv(t)
	domain := a.createDistribution(originHost, originPort)
	// A referrer rule makes the change compile VCL on every edge (seconds,
	// not the ~0.1 s of a site table entry): a window wide enough to see
	// MODIFYING and kill the worker in it. Requests without a Referer are
	// still admitted.
	a.nhn("PATCH", "/distributions", map[string]any{"domain": domain,
		"referrerType": "BLACKLIST", "referrers": `evil\.example`, "isAllowWhenEmptyReferrer": true,
		"origins": []map[string]any{{"origin": originHost, "port": originPort, "originPath": "/v2"}}}, nil)
	eventually.WithinEvery(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := a.distributionStatus(domain); got != "MODIFYING" {
			return fmt.Errorf("distribution is %s, want MODIFYING", got)
		}
		return nil
	})
	w.requireAlive()
	w.kill()
	if got := a.distributionStatus(domain); got != "MODIFYING" {
		t.Fatalf("with the worker dead the distribution is %s", got)
	}
	time.Sleep(crashHeartbeat)
	w.start()
	a.waitDistribution(domain, "OPEN")
	for i, e := range env.Edges {
		path := fmt.Sprintf("/after-kill/%d.js", i)
		if code, _, op := edgeGet(t, e.Edge.Address, domain, path); code != 200 || op != "/v2"+path {
			t.Fatalf("%s after the change: %d, origin path %q, want /v2%s", e.Edge.ID, code, op, path)
		}
	}
}
