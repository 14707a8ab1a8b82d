package edge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

// A request whose context belongs to a trace carries its traceparent to
// the edge; one without (tracing off, no traceparent from the job's
// request) goes straight to the transport and carries none.
func TestEdgeRequestsCarryTheCallersTraceOnly(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		w.Header().Set("X-Cache", "MISS")
	}))
	defer srv.Close()
	e := inventory.Edge{ID: "T1", Address: srv.Listener.Addr().String()}
	c := edge.NewClient(edge.Options{})

	if _, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: "a.test", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if tp := <-got; tp != "" {
		t.Fatalf("untraced request sent traceparent %q", tp)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	if _, err := c.Fetch(ctx, e, edge.FetchRequest{Host: "a.test", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if tp := <-got; !strings.HasPrefix(tp, "00-"+tid.String()+"-") {
		t.Fatalf("traced request sent traceparent %q, want trace %s", tp, tid)
	}
}
