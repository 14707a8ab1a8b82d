//go:build !unit

package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// recording gates the in-memory recorder: the global tracer provider is
// set once per test binary (OpenTelemetry's global delegates to the first
// one), and only the tracing test records.
var (
	recording   atomic.Bool
	recorder    = tracetest.NewSpanRecorder()
	setRecorder atomic.Bool
)

type gatedSampler struct{}

func (gatedSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if recording.Load() {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop}
}
func (gatedSampler) Description() string { return "recording while the tracing test runs" }

func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	if setRecorder.CompareAndSwap(false, true) {
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(gatedSampler{}), sdktrace.WithSpanProcessor(recorder)))
		otel.SetTextMapPropagator(tracing.Propagator)
	}
	recording.Store(true)
	t.Cleanup(func() { recording.Store(false) })
	return recorder
}

// ownProcesses runs a worker and an API on env's Temporal with logger, as
// `cdnflow worker` and `cdnflow api` would (env has no worker).
func ownProcesses(t *testing.T, env *testenv.Env, logger *zap.Logger) *testenv.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stack.Connect(ctx, env.Config, logger)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.RunWorker(runCtx, env.Config, env.Inventory, c, env.Payloads, logger) }()
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{Temporal: c, Config: env.Config, Inventory: env.Inventory, Logger: logger, Payloads: env.Payloads}))
	t.Cleanup(func() {
		ts.Close()
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		c.Close()
	})
	own := *env
	own.API.URL = ts.URL
	return &own
}

// traceparent is a caller's W3C trace context with a fresh trace id.
func traceparent(t *testing.T) (header string, traceID trace.TraceID, parent trace.SpanID) {
	t.Helper()
	if _, err := rand.Read(traceID[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(parent[:]); err != nil {
		t.Fatal(err)
	}
	return "00-" + hex.EncodeToString(traceID[:]) + "-" + hex.EncodeToString(parent[:]) + "-01", traceID, parent
}

// spanTree is the recorded spans of one trace, with lookups by name.
type spanTree struct {
	t     *testing.T
	spans []sdktrace.ReadOnlySpan
	byID  map[trace.SpanID]sdktrace.ReadOnlySpan
}

func treeOf(t *testing.T, rec *tracetest.SpanRecorder, id trace.TraceID) spanTree {
	tr := spanTree{t: t, byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == id {
			tr.spans = append(tr.spans, s)
			tr.byID[s.SpanContext().SpanID()] = s
		}
	}
	return tr
}

func (tr spanTree) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tr.spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// missing names the wanted spans the trace does not have yet.
func (tr spanTree) missing(names ...string) error {
	var miss []string
	for _, n := range names {
		if len(tr.named(n)) == 0 {
			miss = append(miss, n)
		}
	}
	if len(miss) > 0 {
		var have []string
		for _, s := range tr.spans {
			have = append(have, s.Name())
		}
		return fmt.Errorf("trace lacks %v; has %v", miss, have)
	}
	return nil
}

// childOf fails unless every span named child has a parent named parent.
func (tr spanTree) childOf(child, parent string) {
	tr.t.Helper()
	for _, s := range tr.named(child) {
		p, ok := tr.byID[s.Parent().SpanID()]
		if !ok || p.Name() != parent {
			tr.t.Fatalf("span %q has parent %v, want %q", child, p, parent)
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// A purge request is one trace — the caller's traceparent, the
// API's server span, the workflow start, the workflow run, its activities
// and every PURGE sent to an edge — and the request log and the
// activities' logs carry its trace id and the job's workflow id.
func TestPurgeIsOneTraceFromRequestToEdges(t *testing.T) {
	rec := recordSpans(t)
	env := testenv.Start(t, testenv.Options{Edges: 2, NoWorker: true, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
	}})
	core, logs := observer.New(zapcore.DebugLevel)
	env = ownProcesses(t, env, zap.New(core))
	d := createDistribution(t, env, "/")

	header, traceID, callerSpan := traceparent(t)
	req, _ := http.NewRequest(http.MethodPost, env.API.URL+"/v1.5/appKeys/"+appKey+"/purges",
		strings.NewReader(`{"domain":"`+d.Domain+`","purgeType":"ITEM","purgeList":"/traced.css"}`))
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", header)
	var pr struct{ PurgeSeq int64 }
	doJSON(t, req, &pr)
	waitPurge(t, env, d.Domain, pr.PurgeSeq)
	jobID := workflows.PurgeWorkflowID(appKey, pr.PurgeSeq)

	const server, start, run = "POST /v1.5/appKeys/:appKey/purges", "StartWorkflow:PurgeWorkflow", "RunWorkflow:PurgeWorkflow"
	const startAct, runAct, edgeReq = "StartActivity:PurgeEdges", "RunActivity:PurgeEdges", "edge PURGE"
	var tr spanTree
	eventually.Within(t, 30*time.Second, func() error {
		tr = treeOf(t, rec, traceID)
		return tr.missing(server, start, run, startAct, runAct, edgeReq)
	})
	srv := tr.named(server)
	if len(srv) != 1 || srv[0].Parent().SpanID() != callerSpan || srv[0].SpanKind() != trace.SpanKindServer {
		t.Fatalf("server spans %v: want one, child of the caller's span %s", srv, callerSpan)
	}
	tr.childOf(start, server)
	tr.childOf(run, start)
	tr.childOf(startAct, run)
	tr.childOf(runAct, startAct)
	tr.childOf(edgeReq, runAct)
	// Every edge got its PURGE within the trace.
	var edges []string
	for _, s := range tr.named(edgeReq) {
		edges = append(edges, attr(s, "server.address")+":"+attr(s, "server.port"))
	}
	for _, e := range env.Edges {
		if !slices.Contains(edges, e.Edge.Address) {
			t.Fatalf("edge PURGE spans went to %v; edge %s is missing", edges, e.Edge.Address)
		}
	}
	// One trace per job: every span of the job's start and run is in it
	// (a later status query is a span of the GET that asked).
	for _, s := range rec.Ended() {
		kind, _, _ := strings.Cut(s.Name(), ":")
		ofRun := kind == "StartWorkflow" || kind == "RunWorkflow" || kind == "StartActivity" || kind == "RunActivity"
		if ofRun && attr(s, "temporalWorkflowID") == jobID && s.SpanContext().TraceID() != traceID {
			t.Fatalf("span %q of %s is in trace %s, not the request's %s", s.Name(), jobID, s.SpanContext().TraceID(), traceID)
		}
	}
	checkLogs(t, logs, traceID.String(), jobID)
}

// checkLogs wants the request log line and an activity's log line with
// the trace id and the job's workflow id. Activities log through the SDK's
// logger (activity.GetLogger), which names the workflow (WorkflowID) and,
// with the tracing interceptor, the trace (TraceID).
func checkLogs(t *testing.T, logs *observer.ObservedLogs, traceID, jobID string) {
	t.Helper()
	var request, activity bool
	for _, e := range logs.All() {
		f := e.ContextMap()
		if ids, ok := f["workflowIds"].([]interface{}); ok && f["traceId"] == traceID && e.Message == "http request" && slices.Contains(ids, any(jobID)) {
			request = true
		}
		if f["TraceID"] == traceID && f["WorkflowID"] == jobID && f["ActivityType"] != nil {
			activity = true
		}
	}
	if !request || !activity {
		t.Fatalf("logs with trace id %s: request line %v, activity line %v; want both, naming %s", traceID, request, activity, jobID)
	}
}

func doJSON(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var env struct {
		Header nhnHeader `json:"header"`
	}
	if err := json.Unmarshal(data, &env); err != nil || !env.Header.IsSuccessful {
		t.Fatalf("%s %s = %d %s (%v)", req.Method, req.URL.Path, resp.StatusCode, data, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
}

// A prewarm is one trace too: server span → StartWorkflow →
// RunWorkflow:PrewarmWorkflow → the chunk activity (one for every
// edge) → one "edge GET" per URL and edge, sent to the edge with the
// trace's traceparent.
func TestPrewarmIsOneTraceFromRequestToEdges(t *testing.T) {
	rec := recordSpans(t)
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true})
	core, logs := observer.New(zapcore.DebugLevel)
	env = ownProcesses(t, env, zap.New(core))

	header, traceID, callerSpan := traceparent(t)
	urls := []string{"http://" + domain + "/traced/1.js", "http://" + domain + "/traced/2.js"}
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "region": "all"}, map[string]string{"traceparent": header})
	if st := waitPrewarm(t, env, id); st.Status != "COMPLETED" {
		t.Fatalf("prewarm = %+v", st)
	}
	jobID := workflows.PrewarmWorkflowID(id)

	const server, start, run = "POST /prewarm", "StartWorkflow:PrewarmWorkflow", "RunWorkflow:PrewarmWorkflow"
	const startAct, runAct, edgeReq = "StartActivity:PrewarmChunk", "RunActivity:PrewarmChunk", "edge GET"
	var tr spanTree
	eventually.Within(t, 30*time.Second, func() error {
		tr = treeOf(t, rec, traceID)
		if err := tr.missing(server, start, run, startAct, runAct, edgeReq); err != nil {
			return err
		}
		if n := len(tr.named(edgeReq)); n < len(urls) {
			return fmt.Errorf("%d edge GET spans, want one per URL (%d)", n, len(urls))
		}
		return nil
	})
	if srv := tr.named(server); len(srv) != 1 || srv[0].Parent().SpanID() != callerSpan {
		t.Fatalf("server spans %v: want one, child of the caller's span", srv)
	}
	tr.childOf(start, server)
	tr.childOf(run, start)
	tr.childOf(startAct, run)
	tr.childOf(runAct, startAct)
	tr.childOf(edgeReq, runAct)
	var paths []string
	for _, s := range tr.named(edgeReq) {
		paths = append(paths, attr(s, "url.full"))
	}
	for _, u := range urls {
		path := strings.TrimPrefix(u, "http://"+domain)
		if !slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, path) }) {
			t.Fatalf("edge GET spans %v: none for %s", paths, path)
		}
	}
	checkLogs(t, logs, traceID.String(), jobID)
}
