//go:build !unit

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// sseEvent is one Server-Sent Event as the stream sent it.
type sseEvent struct {
	id, event string
	data      []byte
}

// followRelease reads GET /v1/releases/{id}/events until the stream ends.
func followRelease(t *testing.T, env *testenv.Env, id string) []sseEvent {
	t.Helper()
	resp, err := http.Get(env.API.URL + "/v1/releases/" + id + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events = %d %s %s", resp.StatusCode, ct, b)
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
	return out
}

func startRelease(t *testing.T, env *testenv.Env, body any, key string) (int, []byte, string) {
	t.Helper()
	h := map[string]string{}
	if key != "" {
		h["Idempotency-Key"] = key
	}
	resp, data := postJSON(t, env.API.URL+"/v1/releases", body, h)
	var out struct{ ReleaseID string }
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, data, out.ReleaseID
}

func getRelease(t *testing.T, env *testenv.Env, id string) workflows.ReleaseStatus {
	t.Helper()
	var st workflows.ReleaseStatus
	if code := getJSON(t, env.API.URL+"/v1/releases/"+id, &st); code != http.StatusOK {
		t.Fatalf("GET release %s = %d", id, code)
	}
	return st
}

// releaseBody is a release of paths on domain: an ITEM purge of them,
// then a prewarm of them on every edge, verified.
func releaseBody(domain string, paths []string, deadline string) map[string]any {
	urls := make([]string, len(paths))
	for i, p := range paths {
		urls[i] = "http://" + domain + p
	}
	return map[string]any{
		"appKey":   appKey,
		"purge":    map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")},
		"prewarm":  map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "region", "region": "all"},
		"deadline": deadline,
	}
}

// A release of 1,000 URLs on 3 real varnishd edges that hold the old
// objects: at the end every URL is a HIT on every edge, of an object
// fetched after the release started (its Age is younger than the release;
// the old copies were older), the origin served every URL anew to every
// edge, and the release answers each step DONE with a receipt per edge.
// The stream of events is followed to the end; the same Idempotency-Key
// answers the same release, with another body 422.
func TestReleasePurgePrewarmVerify(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 3, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
	}})
	d := createDistribution(t, env, "/")
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/release/%d.js", i)
	}
	body := releaseBody(d.Domain, paths, "5m")
	old := body["prewarm"].(map[string]any)
	if st := waitPrewarm(t, env, startPrewarm(t, env, old, nil)); st.Status != "COMPLETED" || st.Succeeded != len(paths) {
		t.Fatalf("old objects not cached: %+v", st)
	}
	time.Sleep(2 * time.Second) // the old copies' Age is now ≥ 2 s
	fetchedBefore := env.Origin.Requests()

	started := time.Now()
	code, data, id := startRelease(t, env, body, "deploy-1")
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("release = %d %s", code, data)
	}
	if _, _, again := startRelease(t, env, body, "deploy-1"); again != id {
		t.Fatalf("same key and body: release %s, want %s", again, id)
	}
	if code, data, _ := startRelease(t, env, releaseBody(d.Domain, paths[:10], "5m"), "deploy-1"); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, another body = %d %s", code, data)
	}
	events := followRelease(t, env, id)
	took := time.Since(started)
	t.Logf("release of %d URLs × %d edges: %s from POST to the done event (%d events)", len(paths), len(env.Edges), took.Round(time.Millisecond), len(events))
	if len(events) < 3 || events[len(events)-1].event != "done" {
		t.Fatalf("events: %d, last %+v", len(events), events[len(events)-1])
	}
	st := getRelease(t, env, id)
	if st.State != workflows.ReleaseSucceeded {
		t.Fatalf("release %s: %+v", st.State, st)
	}
	checkReleaseSteps(t, st, len(paths), len(env.Edges), started)
	checkNewObjectsOnEveryEdge(t, env, d.Domain, paths, took)
	if fetched := env.Origin.Requests() - fetchedBefore; fetched < int64(len(paths)*len(env.Edges)) {
		t.Fatalf("origin served %d requests during the release, want ≥ %d (every URL anew on every edge)", fetched, len(paths)*len(env.Edges))
	}
	checkPurgeReceipts(t, env, d.Domain, st.PurgeSeqs[0], len(env.Edges))
	env.Replay(t, workflows.ReleaseWorkflowID(id), "release")
	env.Replay(t, workflows.PrewarmWorkflowID(st.PrewarmRequestID), "prewarm_warmth_deadline")

	t.Run("refused in the v1 envelope", func(t *testing.T) { releaseRefusals(t, env, d.Domain, st.PurgeSeqs[len(st.PurgeSeqs)-1]) })
	t.Run("cancelled and past its deadline", func(t *testing.T) { releaseCancelAndDeadline(t, env, d.Domain) })
	t.Run("shutdown ends a stream and keeps the audit", func(t *testing.T) { releaseStreamShutdown(t, env, d.Domain) })
}

// releaseStreamShutdown: an API serving an open event stream of a running
// release drains without waiting for the stream (which ends with an error
// event) and writes the audit record of a request it served before.
func releaseStreamShutdown(t *testing.T, env *testenv.Env, domain string) {
	_, data, id := startRelease(t, env, releaseBody(domain, []string{"/slow/30000/s.js"}, "5m"), "")
	if id == "" {
		t.Fatalf("release: %s", data)
	}
	defer postJSON(t, env.API.URL+"/v1/releases/"+id+"/cancel", nil, nil)
	srv, _ := apiServer(t, env)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/releases/" + id + "/events")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", err, resp)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "id: ") {
		t.Fatalf("first line %q: %v", line, err)
	}
	for i := 2; i <= 17; i++ { // one appKey has at most 16 streams open on one API
		r, err := http.Get(ts.URL + "/v1/releases/" + id + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		if want := map[bool]int{true: http.StatusOK, false: http.StatusTooManyRequests}[i <= 16]; r.StatusCode != want {
			t.Fatalf("stream %d of one appKey = %d, want %d", i, r.StatusCode, want)
		}
	}
	since := time.Now().UTC()
	if code, data, _ := call(t, ts.URL, "POST", "/v1/releases", map[string]string{"X-Request-Id": "shutdown-audit-" + id}, map[string]any{}); code != http.StatusBadRequest {
		t.Fatalf("POST /v1/releases {} = %d %s", code, data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Drain(ctx, ts.Config); err != nil {
		t.Errorf("drain with a stream open: %v", err) // the audit must be written all the same
	}
	if rest, _ := io.ReadAll(rd); !strings.Contains(string(rest), "event: error") {
		t.Errorf("the stream ended without an error event: %q", rest)
	}
	eventually.WithinEvery(t, 20*time.Second, 200*time.Millisecond, func() error {
		for _, r := range readAudit(t, env.API.URL, "", url.Values{"since": {since.Format(time.RFC3339Nano)}}) {
			if r.RequestID == "shutdown-audit-"+id {
				return nil
			}
		}
		return fmt.Errorf("no audit record of the request served before the drain")
	})
}

// releaseRefusals: bodies a release refuses, each 400 (or 404) in the /v1
// envelope, starting nothing: the next release's purge takes seq lastSeq+1.
func releaseRefusals(t *testing.T, env *testenv.Env, domain string, lastSeq int64) {
	ok := releaseBody(domain, []string{"/a.js"}, "1m")
	large := make([]string, 20_000) // 2.4 MB of ITEM paths: over MaxReleasePurgeBytes
	for i := range large {
		large[i] = fmt.Sprintf("/assets/%0112d.js", i)
	}
	cases := map[string]map[string]any{
		"purge list too large": {"appKey": appKey, "purge": map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(large, "\n")}},
		"no appKey":            {"purge": ok["purge"]},
		"unknown appKey":       {"appKey": "nobody", "purge": ok["purge"]},
		"nothing to do":        {"appKey": appKey},
		"deadline too long":    {"appKey": appKey, "purge": ok["purge"], "deadline": "48h"},
		"two distributions": {"appKey": appKey, "prewarm": ok["prewarm"],
			"purge": map[string]any{"domain": "other.example", "purgeType": "ITEM", "purgeList": "/a.js"}},
		"bad purge type": {"appKey": appKey, "purge": map[string]any{"domain": domain, "purgeType": "NONE", "purgeList": "/a.js"}},
	}
	for name, body := range cases {
		code, data, id := startRelease(t, env, body, "")
		var e struct{ Code, Message string }
		if code != http.StatusBadRequest || id != "" || json.Unmarshal(data, &e) != nil || e.Code != "InvalidRequest" || e.Message == "" {
			t.Errorf("%s: %d %s", name, code, data)
		}
	}
	var e struct{ Code string }
	if code := getJSON(t, env.API.URL+"/v1/releases/00000000-0000-0000-0000-000000000000", &e); code != http.StatusNotFound || e.Code != "NotFound" {
		t.Errorf("unknown release = %d %+v", code, e)
	}
	_, data, id := startRelease(t, env, map[string]any{"appKey": appKey, "purge": ok["purge"]}, "")
	if id == "" {
		t.Fatalf("purge-only release: %s", data)
	}
	if st := waitReleaseEnd(t, env, id); len(st.PurgeSeqs) != 1 || st.PurgeSeqs[0] != lastSeq+1 {
		t.Errorf("the release after the refusals purged seqs %v, want [%d]: a refused release took a seq", st.PurgeSeqs, lastSeq+1)
	}
}

// releaseCancelAndDeadline: a release whose prewarm waits on a slow
// origin is cancelled (CANCELLED, the prewarm step cancelled, the verify
// step never run); another one ends TIMEOUT at its deadline.
func releaseCancelAndDeadline(t *testing.T, env *testenv.Env, domain string) {
	slow := []string{"/slow/20000/a.js", "/slow/20000/b.js"}
	_, data, id := startRelease(t, env, releaseBody(domain, slow, "5m"), "")
	if id == "" {
		t.Fatalf("release: %s", data)
	}
	waitStep(t, env, id, workflows.StepPrewarm, workflows.StepRunning)
	resp, _ := postJSON(t, env.API.URL+"/v1/releases/"+id+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel = %d", resp.StatusCode)
	}
	st := waitReleaseEnd(t, env, id)
	resp, data = postJSON(t, env.API.URL+"/v1/releases/"+id+"/cancel", nil, nil)
	var e struct{ Code, Message string }
	if resp.StatusCode != http.StatusConflict || json.Unmarshal(data, &e) != nil || e.Code == "" || !strings.Contains(e.Message, "already ended") {
		t.Errorf("cancel of an ended release = %d %s, want 409 in the /v1 envelope", resp.StatusCode, data)
	}
	if st.State != workflows.ReleaseCancelled || st.Step(workflows.StepPrewarm).State != workflows.StepCancelled ||
		st.Step(workflows.StepVerify).State != workflows.StepCancelled || st.Step(workflows.StepPurge).State != workflows.StepDone {
		t.Fatalf("cancelled release: %+v", st)
	}
	_, data, id = startRelease(t, env, releaseBody(domain, slow, "3s"), "")
	if id == "" {
		t.Fatalf("release: %s", data)
	}
	if st := waitReleaseEnd(t, env, id); st.State != workflows.ReleaseTimeout || st.Step(workflows.StepPrewarm).State != workflows.StepCancelled {
		t.Fatalf("release past its deadline: %+v", st)
	}
}

func waitStep(t *testing.T, env *testenv.Env, id, step, state string) {
	t.Helper()
	eventually.WithinEvery(t, time.Minute, 100*time.Millisecond, func() error {
		st := getRelease(t, env, id)
		if s := st.Step(step); s.State != state {
			return fmt.Errorf("step %s is %s, want %s", step, s.State, state)
		}
		return nil
	})
}

func waitReleaseEnd(t *testing.T, env *testenv.Env, id string) workflows.ReleaseStatus {
	t.Helper()
	var st workflows.ReleaseStatus
	eventually.WithinEvery(t, time.Minute, 100*time.Millisecond, func() error {
		if st = getRelease(t, env, id); st.State == workflows.ReleaseRunning {
			b, _ := json.Marshal(st)
			return fmt.Errorf("release %s still running: %s", id, b)
		}
		return nil
	})
	return st
}

// checkReleaseSteps: every step DONE with its counts, the purge's receipt
// per edge (answer, MISS, time, attempts) and warmth of every pair.
func checkReleaseSteps(t *testing.T, st workflows.ReleaseStatus, urls, edges int, started time.Time) {
	t.Helper()
	for _, s := range st.Steps {
		if s.State != workflows.StepDone || s.Done != s.Total || len(s.Edges) != edges {
			t.Fatalf("step %s: %+v", s.Name, s)
		}
	}
	if p := st.Step(workflows.StepPrewarm); p.Total != urls*edges {
		t.Fatalf("prewarm step counts %d pairs, want %d", p.Total, urls*edges)
	}
	for _, r := range st.Step(workflows.StepPurge).Edges {
		if r.Answer != "200 Purged" || r.Verified != "MISS" || r.Attempts < len(st.PurgeSeqs) || r.AppliedAt < started.UnixMilli() {
			t.Fatalf("purge receipt of %s: %+v", r.EdgeID, r)
		}
	}
	for _, r := range st.Step(workflows.StepVerify).Edges {
		if r.Verified != "HIT" || r.Done != urls || r.Attempts < 1 || r.AppliedAt < started.UnixMilli() {
			t.Fatalf("verify receipt of %s: %+v", r.EdgeID, r)
		}
	}
	if st.Warmth == nil || len(st.Warmth.Misses) != 0 {
		t.Fatalf("warmth: %+v", st.Warmth)
	}
}

// checkNewObjectsOnEveryEdge GETs every path through every edge: a HIT
// whose Age is at most the release's duration (the old copies were older).
func checkNewObjectsOnEveryEdge(t *testing.T, env *testenv.Env, domain string, paths []string, took time.Duration) {
	t.Helper()
	for i := range env.Edges {
		for _, p := range paths {
			resp := env.EdgeGet(t, i, domain, p, nil)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			age, _ := strconv.Atoi(resp.Header.Get("Age"))
			if resp.Header.Get("X-Cache") != "HIT" || time.Duration(age)*time.Second > took+time.Second {
				t.Fatalf("%s%s on %s: X-Cache %q Age %d s, want a HIT younger than the release (%s)", domain, p, env.Edges[i].Edge.ID,
					resp.Header.Get("X-Cache"), age, took)
			}
		}
	}
}

// checkPurgeReceipts reads the /v1 view of a purge seq: every edge's
// receipt; the NHN list keeps its shape (no receipt fields).
func checkPurgeReceipts(t *testing.T, env *testenv.Env, domain string, seq int64, edges int) {
	t.Helper()
	ps := purgeReceipts(t, env, seq)
	if len(ps.Edges) != edges {
		t.Fatalf("purge seq %d: %+v", seq, ps)
	}
	for _, e := range ps.Edges {
		if !e.Confirmed || e.Probe != "MISS" || e.Answer == "" || e.AppliedAt == 0 || e.Attempts < 1 {
			t.Fatalf("receipt of %s: %+v", e.EdgeID, e)
		}
	}
	var raw json.RawMessage
	if h := nhn(t, env, "GET", "/purges?domain="+domain, secret, nil, &raw); !h.IsSuccessful || !strings.Contains(string(raw), `"purgeId"`) || strings.Contains(string(raw), `"appliedAt"`) {
		t.Fatalf("NHN purge list is not in its shape or carries receipt fields (%+v): %.300s", h, raw)
	}
}
