//go:build !unit

package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/starter"
	"github.com/cdnflow/cdnflow/workflows"
)

const tierHost = "tiers.example.com"

// tierPurgeDelay is how long the shield's proxy holds each burst of
// purge requests: the window in which a child purged out of order would
// refill from the shield's old copy.
const tierPurgeDelay = 250 * time.Millisecond

// Two tiers of real varnishd, as docs/tiers.md describes: edge 0 is the
// shield, edges 1-3 its children. One stack serves every subtest, in
// order (the last stops the shield).
func TestTiers(t *testing.T) {
	// The purge client reaches the shield through a proxy that holds each
	// burst of PURGE/BAN requests for tierPurgeDelay (testenv.Shield).
	env := testenv.Start(t, testenv.Options{Edges: 4, Configure: func(c *config.Config) {
		c.PrewarmAttempts = 2
		c.PrewarmAttemptTimeout = 2 * time.Second
	}, Shield: &testenv.Shield{PurgeDelay: tierPurgeDelay}})
	shield := env.Edges[0].Edge.ID
	children := []string{env.Edges[1].Edge.ID, env.Edges[2].Edge.ID, env.Edges[3].Edge.ID}

	t.Run("prewarm of the children fetches each URL from the origin once", func(t *testing.T) {
		var urls []string
		for i := range 40 {
			urls = append(urls, fmt.Sprintf("http://%s/fill/app-%d.js", tierHost, i))
		}
		before := env.Origin.Requests()
		st := tierPrewarm(t, env, urls, children)
		if got := env.Origin.Requests() - before; got != int64(len(urls)) {
			t.Fatalf("origin fetches = %d for %d URLs on 3 children, want 1 per URL", got, len(urls))
		}
		if st.Status != "COMPLETED" || st.Completed != len(urls) {
			t.Fatalf("status = %+v", st)
		}
		rows := map[string]workflows.EdgeProgress{}
		for _, e := range st.Edges {
			rows[e.EdgeID] = e
		}
		for _, id := range append([]string{shield}, children...) {
			if r := rows[id]; r.Done != len(urls) || r.Failed != 0 {
				t.Fatalf("row of %s = %+v (rows %+v)", id, r, st.Edges)
			}
		}
		for i := 1; i < 4; i++ {
			if got := tierGet(t, env, i, "/fill/app-7.js").Header.Get("X-Cache"); got != "HIT" {
				t.Fatalf("child %d: X-Cache %s after the prewarm", i, got)
			}
		}
		tierStatusCommand(t, env, st.RequestID, append([]string{shield}, children...))
	})

	t.Run("prewarm naming only the shield", func(t *testing.T) {
		before := env.Origin.Requests()
		st := tierPrewarm(t, env, []string{"http://" + tierHost + "/fill/shield-only.js"}, []string{shield})
		if st.Status != "COMPLETED" || len(st.Edges) != 1 || env.Origin.Requests()-before != 1 {
			t.Fatalf("status = %+v, origin fetches %d", st, env.Origin.Requests()-before)
		}
	})

	t.Run("purge races visitors: no child serves the old object after progress 100", func(t *testing.T) {
		tierPurgeRaces(t, env, 100, 10)
	})

	t.Run("soft purge: no child keeps the old object once it refreshed", func(t *testing.T) {
		tierSoftPurge(t, env, 30)
	})

	t.Run("shield stopped mid-prewarm and mid-purge", func(t *testing.T) {
		tierShieldDown(t, env, children)
	})
}

// tierPrewarm prewarms urls on the PoPs ids through the API and waits for
// its end.
func tierPrewarm(t *testing.T, env *testenv.Env, urls, ids []string) service.PrewarmStatusResponse {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"url_list": urls, "cf_domain": tierHost, "target_type": "pop", "region": ids})
	resp, err := http.Post(env.API.URL+"/prewarm", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var started struct{ RequestID string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &started) != nil {
		t.Fatalf("prewarm = %d %s", resp.StatusCode, data)
	}
	var st service.PrewarmStatusResponse
	eventually.WithinEvery(t, 2*time.Minute, 100*time.Millisecond, func() error {
		st = service.PrewarmStatusResponse{}
		resp, err := http.Get(env.API.URL + "/status?requestID=" + started.RequestID)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err
		}
		if st.Status == "IN_PROGRESS" {
			return fmt.Errorf("prewarm still %+v", st)
		}
		return nil
	})
	return st
}

// tierStatusCommand runs `cdnflow status ID --json` and checks that its
// output carries the API's edges[]: a row for each of ids (the shield the
// job added among them) with the API's counts.
func tierStatusCommand(t *testing.T, env *testenv.Env, id string, ids []string) {
	t.Helper()
	var out, errOut bytes.Buffer
	sio := starter.IO{In: strings.NewReader(""), Out: &out, Err: &errOut, Client: http.DefaultClient}
	if code := starter.Status(context.Background(), sio, []string{id, "--api", env.API.URL, "--json"}); code != starter.ExitOK {
		t.Fatalf("cdnflow status --json: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var got service.PrewarmStatusResponse
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("cdnflow status --json output %q: %v", out.String(), err)
	}
	rows := map[string]workflows.EdgeProgress{}
	for _, e := range got.Edges {
		rows[e.EdgeID] = e
	}
	for _, e := range ids {
		if r, ok := rows[e]; !ok || r.Total == 0 || r.Done != r.Total {
			t.Fatalf("cdnflow status --json: row of %s = %+v, %v (edges %+v)\n%s", e, r, ok, got.Edges, out.String())
		}
	}
}

// tierStatusLines runs `cdnflow status ID` (human output) for the
// prewarm st, in which the shield failed pairs but no URL failed: exit 0,
// and a line names the shield with its row's failed count.
func tierStatusLines(t *testing.T, env *testenv.Env, st service.PrewarmStatusResponse, shield string) {
	t.Helper()
	var row workflows.EdgeProgress
	for _, e := range st.Edges {
		if e.EdgeID == shield {
			row = e
		}
	}
	if row.Failed == 0 {
		t.Fatalf("shield row %+v: no failed pairs with the shield down (rows %+v)", row, st.Edges)
	}
	var out, errOut bytes.Buffer
	sio := starter.IO{In: strings.NewReader(""), Out: &out, Err: &errOut, Client: http.DefaultClient}
	code := starter.Status(context.Background(), sio, []string{st.RequestID, "--api", env.API.URL})
	want := fmt.Sprintf("  edge %s: %d of %d failed", shield, row.Failed, row.Total)
	if code != starter.ExitOK || !strings.Contains(out.String(), want) {
		t.Fatalf("cdnflow status: exit %d, want 0 and a line %q\n%s\n%s", code, want, out.String(), errOut.String())
	}
}

// tierGet is one visitor GET through edge i; the body is read.
func tierGet(t *testing.T, env *testenv.Env, i int, path string) *http.Response {
	t.Helper()
	resp := env.EdgeGet(t, i, tierHost, path, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// tierPurge runs one ITEM purge of paths on every edge of the inventory
// (soft: a soft purge), tiered as the API starts it (inventory.Parents),
// and returns its end state.
func tierPurge(t *testing.T, env *testenv.Env, name string, paths []string, deadline, catchUp time.Duration, soft ...bool) (client.WorkflowRun, workflows.PurgeStatus) {
	t.Helper()
	ids := env.Inventory.IDs()
	req := workflows.PurgeSeq{Domain: tierHost, Hosts: []string{tierHost}, Type: activities.PurgeItem, Paths: paths, Soft: len(soft) > 0 && soft[0],
		EdgeIDs: ids, Parents: env.Inventory.Parents(ids), Deadline: deadline, CatchUp: catchUp, PurgeTime: time.Now().UnixMilli()}
	run, err := env.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "tiers-purge-" + name, TaskQueue: env.Config.TaskQueue}, workflows.PurgeWorkflow, req)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.PurgeStatus
	if err := run.Get(context.Background(), &st); err != nil {
		t.Fatalf("purge %s: %v", name, err)
	}
	return run, st
}

// tierPurgeRaces purges objects objects rounds times (one ITEM purge of
// all of them per round, objects × rounds races) while visitors keep
// requesting them through the children; once a purge reached progress
// 100 every child must answer the origin's new generation of every
// object.
func tierPurgeRaces(t *testing.T, env *testenv.Env, objects, rounds int) {
	paths := make([]string, objects)
	for i := range paths {
		paths[i] = fmt.Sprintf("/race/object-%d.js", i)
	}
	for c := 1; c < 4; c++ {
		for _, p := range paths {
			tierGet(t, env, c, p)
		}
	}
	var visits, stale atomic.Int64
	for round := range rounds {
		gen := strconv.FormatInt(env.Origin.Generation.Add(1), 10)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for c := 1; c < 4; c++ {
			wg.Add(1)
			go func() { // a visitor on child c, through every object, until the purge ended
				defer wg.Done()
				for n := c * objects / 3; ctx.Err() == nil; n++ {
					tierGet(t, env, c, paths[n%objects])
					visits.Add(1)
				}
			}()
		}
		_, st := tierPurge(t, env, fmt.Sprintf("race-%d", round), paths, 30*time.Second, 0)
		cancel()
		wg.Wait()
		if st.Progress != 100 || st.State != workflows.PurgeDone {
			t.Fatalf("round %d: purge %+v", round, st)
		}
		for c := 1; c < 4; c++ {
			for _, p := range paths {
				if got := tierGet(t, env, c, p).Header.Get("X-Origin-Generation"); got != gen && stale.Add(1) <= 5 {
					t.Errorf("round %d: child %d serves %s generation %s after progress 100, want %s", round, c, p, got, gen)
				}
			}
		}
	}
	t.Logf("%d races (%d objects × %d purges, shield purge held %s), %d visitor requests during the purges; %d stale answers after progress 100",
		objects*rounds, objects, rounds, tierPurgeDelay, visits.Load(), stale.Load())
	if stale.Load() > 0 {
		t.Errorf("%d stale answers after progress 100", stale.Load())
	}
	env.Replay(t, "tiers-purge-race-0", "purge_tiers") // the purge-tiers shape (docs/versioning.md)
}

// tierSoftPurge soft-purges objects objects cached on every tier. A
// soft-purged child may answer its own old copy once (grace: it refreshes
// in the background), but its refresh must bring the new generation: the
// shield's old copy must not be in grace for it.
func tierSoftPurge(t *testing.T, env *testenv.Env, objects int) {
	paths := make([]string, objects)
	for i := range paths {
		paths[i] = fmt.Sprintf("/soft/object-%d.js", i)
	}
	for c := 1; c < 4; c++ {
		for _, p := range paths {
			tierGet(t, env, c, p) // the children and the shield hold the old generation
		}
	}
	gen := strconv.FormatInt(env.Origin.Generation.Add(1), 10)
	run, st := tierPurge(t, env, "soft", paths, 30*time.Second, 0, true)
	if st.Progress != 100 || st.State != workflows.PurgeDone {
		t.Fatalf("soft purge %+v", st)
	}
	for c := 1; c < 4; c++ {
		for _, p := range paths {
			tierGet(t, env, c, p) // may be the child's own copy in grace; starts its refresh
		}
	}
	var stale []string
	eventually.WithinEvery(t, 10*time.Second, 100*time.Millisecond, func() error {
		stale = stale[:0]
		for c := 1; c < 4; c++ {
			for _, p := range paths {
				if got := tierGet(t, env, c, p).Header.Get("X-Origin-Generation"); got != gen {
					stale = append(stale, fmt.Sprintf("child %d %s: generation %s", c, p, got))
				}
			}
		}
		if len(stale) > 0 {
			return fmt.Errorf("%d of %d answers stale after the soft purge's refresh, want generation %s: %v", len(stale), 3*objects, gen, stale[:min(len(stale), 5)])
		}
		return nil
	})
	t.Logf("soft purge of %d objects on 3 children: 0 stale answers after their refresh", objects)
	env.Replay(t, run.GetID(), "purge_tiers_soft")
}

// tierShieldDown stops the shield: a prewarm of the children still warms
// them (from the origin, reported), a purge leaves the children waiting
// for the shield, and once the shield answers again the catch-up reaches
// it first, then its children.
func tierShieldDown(t *testing.T, env *testenv.Env, children []string) {
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("http://%s/slow/500/down-%d.js", tierHost, i))
	}
	fallbacks := func() (n uint64) {
		for i := 1; i < 4; i++ {
			n += env.Edges[i].Connector.ParentFallbacks()
		}
		return n
	}
	before := fallbacks()
	done := make(chan service.PrewarmStatusResponse, 1)
	go func() { done <- tierPrewarm(t, env, urls, children) }()
	time.Sleep(time.Second) // the shield's pairs are under way
	if err := env.Edges[0].Process.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := <-done
	// Status is per URL × chosen edge: the shield's failed pairs show in
	// its row only, every URL reached every child.
	if st.Status != "COMPLETED" || st.Failed != 0 || len(st.FailedURL) != 0 || st.Succeeded != len(urls) {
		t.Fatalf("status with the shield down = %s, %d failed %v, %d succeeded; want every URL succeeded on the chosen children (rows %+v)",
			st.Status, st.Failed, st.FailedURL, st.Succeeded, st.Edges)
	}
	for _, e := range st.Edges {
		if e.EdgeID != env.Edges[0].Edge.ID && (e.Done != len(urls) || e.Failed != 0) {
			t.Fatalf("child row %+v with the shield down", e)
		}
	}
	if fallbacks() == before {
		t.Fatalf("no fallback to the origin reported while the shield was down (rows %+v)", st.Edges)
	}
	tierStatusLines(t, env, st, env.Edges[0].Edge.ID)
	resp := tierGet(t, env, 1, "/fallback/check.js")
	if got := resp.Header.Get(connector.HeaderTierFallback); got != "origin; parent="+env.Edges[0].Edge.ID {
		t.Fatalf("%s = %q on a miss with the shield down", connector.HeaderTierFallback, got)
	}

	gen := env.Origin.Generation.Add(1)
	var pst workflows.PurgeStatus
	restarted := make(chan struct{})
	go func() { // the shield comes back while its purge is owed
		defer close(restarted)
		time.Sleep(3 * time.Second)
		env.Edges[0].Restart(t)
	}()
	waiting := tierWatchWaiting(env, "tiers-purge-shield-down", env.Edges[0].Edge.ID, children[0])
	_, pst = tierPurge(t, env, "shield-down", []string{"/race/object.js"}, 2*time.Second, time.Minute)
	<-restarted
	if row := waiting(); row == "" {
		t.Fatalf("no receipt of the purge showed child %s waiting for parent %s while the shield retried before its deadline", children[0], env.Edges[0].Edge.ID)
	}
	if pst.State != workflows.PurgeDone || pst.Progress != 100 {
		t.Fatalf("purge with the shield down = %+v", pst)
	}
	var shieldAt int64
	for _, e := range pst.Edges {
		if !e.CaughtUp || e.Probe != "BAN" || e.Answer != "200 Ban added" || e.AppliedAt == 0 {
			t.Fatalf("edge %+v: every edge waited for the shield and caught up, with the ban's receipt", e)
		}
		if e.EdgeID == env.Edges[0].Edge.ID {
			shieldAt = e.AppliedAt
		}
	}
	for _, e := range pst.Edges {
		if e.AppliedAt < shieldAt {
			t.Fatalf("edge %s caught up at %d, before its shield (%d): catch-up out of tier order", e.EdgeID, e.AppliedAt, shieldAt)
		}
	}
	for i := 1; i < 4; i++ {
		if got := tierGet(t, env, i, "/race/object.js").Header.Get("X-Origin-Generation"); got != strconv.FormatInt(gen, 10) {
			t.Fatalf("child %d serves generation %s after the catch-up, want %d", i, got, gen)
		}
	}
}

// tierWatchWaiting polls the receipt (QueryPurgeStatus) of purge wfID
// while it runs. The answered func stops the polling and returns the error
// of child's row from a receipt in which shield had neither confirmed nor
// reached its deadline (not owed) and child's row named shield as what it
// waits for; "" when no receipt did.
func tierWatchWaiting(env *testenv.Env, wfID, shield, child string) func() string {
	ctx, cancel := context.WithCancel(context.Background())
	found := make(chan string, 1)
	go func() {
		defer close(found)
		for ctx.Err() == nil {
			if row := tierWaitingRow(ctx, env, wfID, shield, child); row != "" {
				found <- row
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() string {
		cancel()
		return <-found
	}
}

func tierWaitingRow(ctx context.Context, env *testenv.Env, wfID, shield, child string) string {
	v, err := env.Client.QueryWorkflow(ctx, wfID, "", workflows.QueryPurgeStatus)
	if err != nil {
		return ""
	}
	var st workflows.PurgeStatus
	if err := v.Get(&st); err != nil {
		return ""
	}
	rows := map[string]workflows.PurgeEdgeState{}
	for _, e := range st.Edges {
		rows[e.EdgeID] = e
	}
	p, c := rows[shield], rows[child]
	if p.Confirmed || p.Owed || c.Confirmed || !strings.Contains(c.Error, "waiting for parent "+shield) {
		return ""
	}
	return c.Error
}
