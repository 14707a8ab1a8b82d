//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"github.com/cdnflow/cdnflow/activities"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// faultEdges is a testenv whose worker reaches every edge through a fault
// proxy (HTTP listener, and the Varnish CLI when asked); the API and the
// test's own edge checks (env.EdgeGet) still use the edges' real addresses.
type faultEdges struct {
	env   *testenv.Env
	http  []*edgetest.FaultProxy
	admin []*edgetest.FaultProxy // nil unless asked for
}

func startFaultEdges(t *testing.T, edges int, proxyAdmin bool, configure func(*config.Config)) *faultEdges {
	t.Helper()
	env := testenv.Start(t, testenv.Options{Edges: edges, NoWorker: true, Configure: func(c *config.Config) {
		// The edge sync loop's own requests would be counted and faulted
		// by the proxies: one round at start, then none during the test.
		c.EdgeSyncEvery = time.Hour
		if configure != nil {
			configure(c)
		}
	}})
	fe := &faultEdges{env: env}
	proxied := make([]inventory.Edge, len(env.Edges))
	for i, e := range env.Edges {
		h := edgetest.StartFaultProxy(t, e.Edge.Address)
		fe.http = append(fe.http, h)
		var a *edgetest.FaultProxy
		if proxyAdmin {
			a = edgetest.StartFaultProxy(t, e.Edge.AdminAddress)
			fe.admin = append(fe.admin, a)
		}
		proxied[i] = edgetest.Via(e.Edge, h, a)
	}
	inv, err := inventory.New(proxied)
	if err != nil {
		t.Fatalf("proxied inventory: %v", err)
	}
	// Registered after the proxies' and the env's cleanups, so it runs
	// first: the worker stops before anything it talks to.
	worker, err := stack.Start(context.Background(), stack.Options{Config: env.Config, Inventory: inv, Logger: env.Logger, NoAPI: true})
	if err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		if err := worker.Stop(); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	// The sync loop's first round is over before a test faults anything.
	eventually.WithinEvery(t, 60*time.Second, 100*time.Millisecond, func() error {
		var out struct {
			Edges []struct {
				Sync *activities.EdgeSyncReport `json:"sync"`
			} `json:"edges"`
		}
		getJSON(t, env.API.URL+"/v1/edges", &out)
		for _, e := range out.Edges {
			if e.Sync == nil {
				return fmt.Errorf("edge sync round not over")
			}
		}
		return nil
	})
	return fe
}

// waitFaulted waits until proxy p has handled at least n connections in a
// fault mode.
func waitFaulted(t *testing.T, p *edgetest.FaultProxy, n int64) {
	t.Helper()
	eventually.WithinEvery(t, 20*time.Second, 5*time.Millisecond, func() error {
		if got := p.Faulted(); got < n {
			return fmt.Errorf("proxy saw %d faulted connections, want %d", got, n)
		}
		return nil
	})
}

// An edge that answers too slowly, answers 5xx or resets the connection
// fails each of its pairs after the configured attempts with the reason;
// the healthy edge warms everything; the job completes with every URL in
// failedUrl. A 5xx edge that recovers while a pair is being retried warms it.
func TestPrewarmEdgeFaults(t *testing.T) {
	const attempts = 4
	fe := startFaultEdges(t, 4, false, func(c *config.Config) {
		c.PrewarmAttempts = attempts
		c.PrewarmAttemptTimeout = 500 * time.Millisecond
	})
	env := fe.env
	const healthy, slow, unavailable, reset = 0, 1, 2, 3
	fe.http[slow].SetMode(edgetest.Slow(time.Minute))
	fe.http[unavailable].SetMode(edgetest.Status(503))
	fe.http[reset].SetMode(edgetest.Reset())
	want := map[string]struct {
		state  string
		status int
		reason string
	}{
		env.Edges[healthy].Edge.ID:     {"success", 200, ""},
		env.Edges[slow].Edge.ID:        {"failed", 0, "deadline exceeded"},
		env.Edges[unavailable].Edge.ID: {"failed", 503, "edge answered HTTP 503"},
		env.Edges[reset].Edge.ID:       {"failed", 0, "connection reset by peer"},
	}

	const n = 3
	var urls []string
	for i := range n {
		urls = append(urls, fmt.Sprintf("http://%s/static/fault-%d.js", domain, i))
	}
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "region", "region": "all"}, nil)
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Total != n || st.Completed != n || st.InProgress != 0 ||
		st.Failed != n || st.Succeeded != 0 || len(st.FailedURL) != n || len(st.InProgressURL) != 0 {
		t.Fatalf("status = %+v", st)
	}
	if len(st.Edges) != 4 {
		t.Fatalf("edges = %+v", st.Edges)
	}
	for _, e := range st.Edges {
		failed := n
		if e.EdgeID == env.Edges[healthy].Edge.ID {
			failed = 0
		}
		if e.Total != n || e.Done != n || e.Failed != failed || e.Error != "" {
			t.Errorf("edge progress %+v, want done %d failed %d", e, n, failed)
		}
	}
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges?pageSize=100", &pairs); code != 200 || pairs.TotalPairs != 4*n || len(pairs.Pairs) != 4*n {
		t.Fatalf("pairs = %d %+v", code, pairs)
	}
	for _, p := range pairs.Pairs {
		w := want[p.EdgeID]
		wantAttempts := attempts
		if w.state == "success" {
			wantAttempts = 1
		}
		if p.State != w.state || p.Status != w.status || p.Attempts != wantAttempts ||
			(w.reason == "" && p.Error != "") || !strings.Contains(p.Error, w.reason) {
			t.Errorf("pair %s %s: state %s status %d attempts %d error %q; want %s %d, %d attempts, reason %q",
				p.EdgeID, p.URL, p.State, p.Status, p.Attempts, p.Error, w.state, w.status, wantAttempts, w.reason)
		}
	}
	// Every attempt really went through its proxy, and the healthy edge
	// stored what it fetched. Each attempt of the job's pairs is pipelined
	// on one connection (--prewarm-pipeline): a reset ends them all at
	// once, while a GET that gets no answer in time is that pair's alone
	// and the others go on a new connection.
	for i, perAttempt := range map[int]int{slow: n, unavailable: 1, reset: 1} {
		if got, want := fe.http[i].Faulted(), int64(perAttempt*attempts); got < want {
			t.Errorf("proxy of edge %d faulted %d connections, want at least %d", i, got, want)
		}
	}
	for _, u := range urls {
		if got := cacheState(t, env, healthy, strings.TrimPrefix(u, "http://"+domain)); got != "HIT" {
			t.Errorf("%s on the healthy edge = %s", u, got)
		}
	}
	env.Replay(t, "prewarm-"+id, "")
	if t.Failed() {
		return
	}

	// The 5xx edge recovers after the first attempt of each pair: the
	// retries warm them and the job reports no failure.
	before := fe.http[unavailable].Faulted()
	urls = []string{"http://" + domain + "/static/recover-1.js", "http://" + domain + "/static/recover-2.js"}
	id = startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "pop",
		"region": []string{env.Edges[unavailable].Edge.ID}}, nil)
	waitFaulted(t, fe.http[unavailable], before+int64(len(urls)))
	fe.http[unavailable].SetMode(edgetest.Pass())
	st = waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Completed != 2 || st.Succeeded != 2 || st.Failed != 0 || len(st.FailedURL) != 0 {
		t.Fatalf("status after recovery = %+v", st)
	}
	getJSON(t, env.API.URL+"/prewarm/"+id+"/edges", &pairs)
	if len(pairs.Pairs) != 2 {
		t.Fatalf("pairs after recovery = %+v", pairs)
	}
	for _, p := range pairs.Pairs {
		if p.State != "success" || p.Status != 200 || p.Attempts < 2 || p.Attempts > attempts || p.Error != "" {
			t.Errorf("pair after recovery = %+v, want success after a retry", p)
		}
		if got := cacheState(t, env, unavailable, strings.TrimPrefix(p.URL, "http://"+domain)); got != "HIT" {
			t.Errorf("%s on the recovered edge = %s", p.URL, got)
		}
	}
}

// A purge is not done while an edge answers 5xx, resets the connection or
// does not answer in time: each such edge stays in pendingEdges with its
// last error and still serves the path from cache (HIT), progress counts
// only the edge that confirmed, and the purge reaches 100 once the edges
// answer again, when no edge serves the path from cache any more.
func TestPurgeEdgeFaults(t *testing.T) {
	fe := startFaultEdges(t, 4, false, func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		c.PurgeDeadline = 2 * time.Minute
		// the edge client's timeouts of purges, bans, site-table calls and probes
		c.EdgePurgeTimeout, c.EdgeBanTimeout, c.EdgeSiteTimeout, c.EdgeProbeTimeout = time.Second, time.Second, time.Second, time.Second
	})
	env := fe.env
	d := createDistribution(t, env, "/base")
	const slow, unavailable, reset = 1, 2, 3
	fe.http[slow].SetMode(edgetest.Slow(time.Minute))
	fe.http[unavailable].SetMode(edgetest.Status(503))
	fe.http[reset].SetMode(edgetest.Reset())
	reasons := map[string]string{
		env.Edges[slow].Edge.ID:        "deadline exceeded",
		env.Edges[unavailable].Edge.ID: "edge answered HTTP 503",
		env.Edges[reset].Edge.ID:       "connection reset by peer",
	}

	// The test's own GETs use the edges' real addresses, not the proxies.
	cacheOnEveryEdge(t, env, d.Domain, "/a.js")

	var pr struct{ PurgeSeq int64 }
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a.js"}, &pr); !h.IsSuccessful {
		t.Fatalf("purge: %+v", h)
	}
	waitPurgeHeldBack(t, env, d.Domain, 30*time.Second, func(item service.PurgeItem) bool {
		explained := 0
		for _, p := range item.PendingEdges {
			if r, ok := reasons[p.EdgeID]; ok && strings.Contains(p.Error, r) && strings.Contains(p.Error, p.EdgeID) {
				explained++
			}
		}
		return item.Seq == pr.PurgeSeq && item.Progress == 25 && len(item.PendingEdges) == 3 && explained == 3
	})
	// The faulted edges never got the PURGE: they still serve the old copy.
	for _, i := range []int{slow, unavailable, reset} {
		if got := xcacheOn(t, env, i, d.Domain, "/a.js"); got != "HIT" {
			t.Errorf("faulted edge %s while the purge is held back: %s, want HIT", env.Edges[i].Edge.ID, got)
		}
	}
	for _, i := range []int{slow, unavailable, reset} {
		fe.http[i].SetMode(edgetest.Pass())
	}
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	requireMissOnEveryEdge(t, env, d.Domain, "/a.js")
	env.Replay(t, "purge-"+appKey+"-"+itoa64(pr.PurgeSeq), "")
}

// An edge whose HTTP port resets every connection cannot take a change
// into its site table: once the tries are spent the change ends in ERROR
// naming the edge and the reason, the other edge goes back to the last
// good config, and the change applies once the edge answers again.
func TestDistributionEdgeResetFault(t *testing.T) {
	fe := startFaultEdges(t, 2, true, func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
	})
	env := fe.env
	d := createDistribution(t, env, "/good")
	fe.http[1].SetMode(edgetest.Reset())
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	patch := map[string]any{"domain": d.Domain, "origins": []map[string]any{{"origin": originHost, "port": atoi(originPort), "originPath": "/bad"}}}
	if h := nhn(t, env, "PATCH", "/distributions", secret, patch, nil); !h.IsSuccessful {
		t.Fatalf("patch: %+v", h)
	}
	v := waitStatus(t, env, d.Domain, "ERROR")
	if !strings.Contains(v.LastError, env.Edges[1].Edge.ID) || !strings.Contains(v.LastError, "connection reset by peer") {
		t.Fatalf("lastError = %q", v.LastError)
	}
	if len(v.Origins) != 1 || v.Origins[0].OriginPath != "/good" || fe.http[1].Faulted() == 0 {
		t.Fatalf("config after error = %+v (faulted %d)", v.Origins, fe.http[1].Faulted())
	}
	waitRolledBack(t, env, 0, d.Domain, "/good")
	fe.http[1].SetMode(edgetest.Pass())
	if h := nhn(t, env, "PATCH", "/distributions", secret, patch, nil); !h.IsSuccessful {
		t.Fatalf("patch after recovery: %+v", h)
	}
	waitStatus(t, env, d.Domain, "OPEN")
	for i := range env.Edges {
		if r := edgeGet(t, env, i, d.Domain, "/z.js", ""); r.Header.Get("X-Origin-Path") != "/bad/z.js" {
			t.Fatalf("edge %d after recovery: %v", i, r.Header)
		}
	}
}
