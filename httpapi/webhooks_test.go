//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/sync/errgroup"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// signedDelivery is one request a receiver accepted, as it came.
type signedDelivery struct {
	Secret string `json:"secret"`
	ID     string `json:"id"`
	TS     string `json:"ts"`
	Sig    string `json:"sig"`
	Body   string `json:"body"`
}

// receiver is a webhook endpoint on loopback: fail says which requests
// (numbered from 0) it answers 500; it can be taken down (its port
// refuses connections) and brought back on the same port.
type receiver struct {
	addr   string
	secret string
	fail   func(n int) bool

	mu       sync.Mutex
	srv      *http.Server
	requests int
	failed   int
	accepted map[string]int // webhook-id → 2xx answers
	got      []signedDelivery
}

func newReceiver(t *testing.T, fail func(int) bool) *receiver {
	port, err := freeport.Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: fmt.Sprintf("127.0.0.1:%d", port), fail: fail, accepted: map[string]int{}}
	r.up(t)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) up(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("receiver up: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.requests
	r.requests++
	if r.fail != nil && r.fail(n) {
		r.failed++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	id := req.Header.Get("webhook-id")
	r.accepted[id]++
	r.got = append(r.got, signedDelivery{Secret: r.secret, ID: id, TS: req.Header.Get("webhook-timestamp"), Sig: req.Header.Get("webhook-signature"), Body: string(body)})
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() (map[string]int, []signedDelivery, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	acc := make(map[string]int, len(r.accepted))
	for k, v := range r.accepted {
		acc[k] = v
	}
	return acc, append([]signedDelivery(nil), r.got...), r.requests, r.failed
}

// webhookSub is POST /v1/webhooks's answer.
type webhookSub struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

func createWebhook(t *testing.T, env *testenv.Env, url string) webhookSub {
	t.Helper()
	code, data, _ := call(t, env.API.URL, "POST", "/v1/webhooks", nil, map[string]any{"appKey": appKey, "url": url})
	var sub webhookSub
	if code != http.StatusCreated || json.Unmarshal(data, &sub) != nil || !strings.HasPrefix(sub.Secret, "whsec_") {
		t.Fatalf("create webhook %s = %d %s", url, code, data)
	}
	return sub
}

// webhookBulkEvents is how many events the test signals besides the real
// ones: 200, or CDNFLOW_WEBHOOK_TEST_EVENTS (at most 995, so that with the
// 3 real events they fit in MaxWebhookQueue, which the outage receiver's
// queue holds while it is down).
func webhookBulkEvents() int {
	n, err := strconv.Atoi(os.Getenv("CDNFLOW_WEBHOOK_TEST_EVENTS"))
	if err != nil || n < 1 || n > 995 {
		return 200
	}
	return n
}

// Every job event reaches both subscriptions of the appKey, signed: a
// receiver that fails half of the requests and one that is down while the
// events are published. Real jobs publish (a distribution's states, a
// purge seq's end), and webhookBulkEvents more are signalled to the
// appKey's hub as PublishJobEvent does. Each event is accepted exactly
// once per receiver, by webhook-id, and every accepted request's
// signature verifies with the Standard Webhooks npm package (node).
func TestWebhooksDeliverEveryEventOnceSigned(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.PurgeItemInterval = 0
		// Outage and backoff in seconds, so the test stays short; the
		// window stays the production 25 h.
		c.WebhookRetryInitial, c.WebhookRetryMax, c.WebhookConcurrency = 100*time.Millisecond, time.Second, 8
	}})
	flaky := newReceiver(t, func(n int) bool { return n%2 == 1 })
	outage := newReceiver(t, nil)
	subFlaky := createWebhook(t, env, "http://"+flaky.addr+"/hook?token=tenant-token")
	subDown := createWebhook(t, env, "http://"+outage.addr+"/hook")
	flaky.secret, outage.secret = subFlaky.Secret, subDown.Secret

	start := time.Now()
	outage.down()
	d := createDistribution(t, env, "/")
	purge(t, env, map[string]any{"domain": d.Domain, "purgeType": "ITEM", "purgeList": "/a.css"})
	t.Logf("distribution and purge: %s", time.Since(start))
	want := publishBulk(t, env, webhookBulkEvents())
	t.Logf("%d events signalled: %s", len(want), time.Since(start))
	time.Sleep(3 * time.Second) // the outage: every delivery to it fails meanwhile
	outage.up(t)

	total := len(want) + 3 // + OPENING, OPEN, purge.done
	for name, r := range map[string]*receiver{"flaky": flaky, "outage": outage} {
		// About 8 events/s reach a receiver failing every other request on
		// a loaded 2-core box: the wait grows with the events.
		eventually.Within(t, max(90*time.Second, time.Duration(total)*250*time.Millisecond), func() error {
			acc, _, _, _ := r.snapshot()
			if len(acc) < total {
				return fmt.Errorf("%s receiver: %d of %d events accepted", name, len(acc), total)
			}
			return nil
		})
		t.Logf("%s receiver has every event: %s", name, time.Since(start))
		acc, got, requests, failed := r.snapshot()
		for id, n := range acc {
			if n != 1 {
				t.Errorf("%s receiver: webhook-id %s accepted %d times", name, id, n)
			}
		}
		missing := 0
		for _, id := range want {
			if acc[id] != 1 {
				missing++
			}
		}
		checkRealEvents(t, name, got, d.Domain)
		delivered := float64(len(want)-missing) / float64(len(want))
		t.Logf("%s receiver: %d requests, %d answered 500, %d events accepted; bulk delivered %.2f %% (%d/%d)",
			name, requests, failed, len(acc), 100*delivered, len(want)-missing, len(want))
		if delivered < 0.999 {
			t.Errorf("%s receiver: %.3f of the events delivered, want >= 0.999", name, delivered)
		}
		verifySignatures(t, got)
	}
	checkDeliveryLog(t, env, subFlaky.ID, total)
}

// publishBulk signals n job events to the appKey's hub (the signal
// PublishJobEvent sends) and answers their webhook-ids.
func publishBulk(t *testing.T, env *testenv.Env, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	at := time.Now().UnixMilli()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		ev := workflows.JobEvent{Type: workflows.EventPrewarmDone, AppKey: appKey, JobID: fmt.Sprintf("bulk-%04d", i), State: "COMPLETED", At: at,
			Detail: map[string]any{"total": i}}
		ids[i] = workflows.WebhookMessageID(ev)
		g.Go(func() error {
			if err := env.Client.SignalWorkflow(ctx, workflows.WebhooksWorkflowID(appKey), "", workflows.SignalJobEvent, ev); err != nil {
				return fmt.Errorf("signal event %d: %w", i, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkRealEvents finds the events the jobs published themselves: the
// distribution's OPEN and the purge seq's end.
func checkRealEvents(t *testing.T, name string, got []signedDelivery, domain string) {
	t.Helper()
	seen := map[string]bool{}
	for _, g := range got {
		var p struct {
			Type string             `json:"type"`
			Data workflows.JobEvent `json:"data"`
		}
		if err := json.Unmarshal([]byte(g.Body), &p); err != nil || p.Type != p.Data.Type || p.Data.AppKey != appKey {
			t.Errorf("%s receiver: body %s is not a job event of %s", name, g.Body, appKey)
			continue
		}
		seen[p.Type+"/"+p.Data.State] = true
		if p.Type == workflows.EventDistributionState && p.Data.JobID != domain {
			t.Errorf("%s receiver: distribution event of %s, want %s", name, p.Data.JobID, domain)
		}
	}
	for _, k := range []string{"distribution.state/OPENING", "distribution.state/OPEN", "purge.done/DONE"} {
		if !seen[k] {
			t.Errorf("%s receiver: no %s event", name, k)
		}
	}
}

// checkDeliveryLog reads the subscription's delivery log through the API.
func checkDeliveryLog(t *testing.T, env *testenv.Env, id string, total int) {
	t.Helper()
	var l workflows.WebhookLog
	eventually.Within(t, 30*time.Second, func() error {
		code, data, _ := call(t, env.API.URL, "GET", "/v1/webhooks/"+id+"/deliveries?appKey="+appKey, nil, nil)
		if code != http.StatusOK || json.Unmarshal(data, &l) != nil {
			return fmt.Errorf("deliveries = %d %s", code, data)
		}
		if l.Delivered != int64(total) {
			return fmt.Errorf("log: %d delivered, want %d", l.Delivered, total)
		}
		return nil
	})
	if l.Failed != 0 || l.Dropped != 0 || len(l.Recent) != min(total, workflows.WebhookLogSize) {
		t.Errorf("log: %d failed, %d dropped, %d recent; want 0, 0, %d", l.Failed, l.Dropped, len(l.Recent), min(total, workflows.WebhookLogSize))
	}
	retried := 0
	for _, d := range l.Recent {
		if d.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("log: no delivery of the flaky receiver took more than one attempt")
	}
}

const verifyScript = `
const { Webhook } = require("standardwebhooks");
const lines = require("fs").readFileSync(process.argv[2], "utf8").trim().split("\n");
let ok = 0, bad = 0;
for (const l of lines) {
  const d = JSON.parse(l);
  try {
    new Webhook(d.secret).verify(d.body, {"webhook-id": d.id, "webhook-timestamp": d.ts, "webhook-signature": d.sig});
    ok++;
  } catch (e) { bad++; }
}
console.log(JSON.stringify({ok, bad}));
`

// verifySignatures checks every delivery's signature with the Standard
// Webhooks npm package standardwebhooks 1.1.1 run by node (installed with
// npm into the user cache once); without node or npm, with the Go
// reference library's Verify. One tampered copy must fail, so the checker
// itself is seen to refuse.
func verifySignatures(t *testing.T, got []signedDelivery) {
	t.Helper()
	tampered := got[0]
	tampered.Body = strings.Replace(tampered.Body, `"appKey"`, `"appkey"`, 1)
	all := append(append([]signedDelivery(nil), got...), tampered)
	dir, err := nodeStandardWebhooks()
	if err != nil {
		t.Logf("node verification unavailable (%v): verifying with the Go reference library", err)
		bad := 0
		for _, d := range all {
			wh, err := standardwebhooks.NewWebhook(d.Secret)
			h := http.Header{"Webhook-Id": {d.ID}, "Webhook-Timestamp": {d.TS}, "Webhook-Signature": {d.Sig}}
			if err != nil || wh.Verify([]byte(d.Body), h) != nil {
				bad++
			}
		}
		if bad != 1 {
			t.Errorf("Go Verify: %d of %d refused, want only the tampered one", bad, len(all))
		}
		return
	}
	file := filepath.Join(t.TempDir(), "deliveries.jsonl")
	var b strings.Builder
	for _, d := range all {
		line, _ := json.Marshal(d)
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "verify.js")
	if err := os.WriteFile(script, []byte(verifyScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, file)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	out, err := cmd.Output()
	var res struct{ OK, Bad int }
	if err != nil || json.Unmarshal(out, &res) != nil {
		t.Fatalf("node verify: %v %s", err, out)
	}
	if res.OK != len(got) || res.Bad != 1 {
		t.Errorf("standardwebhooks (npm): %d verified, %d refused; want %d and the tampered one", res.OK, res.Bad, len(got))
		return
	}
	t.Logf("standardwebhooks 1.1.1 (npm, node): %d signatures verified, the tampered copy refused", res.OK)
}

// nodeStandardWebhooks answers a directory whose node_modules holds
// standardwebhooks 1.1.1, installing it there with npm the first time.
func nodeStandardWebhooks() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "cdnflow-tests", "standardwebhooks-1.1.1")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--silent", "standardwebhooks@1.1.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", errors.Join(err, fmt.Errorf("npm install: %s", out))
	}
	return dir, nil
}
