package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cdnflow/cdnflow/internal/tracing"
)

func TestEnabled(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		on      bool
		wantErr string
	}{
		"nothing set: off":        {env: nil},
		"endpoint: on":            {env: map[string]string{tracing.EnvEndpoint: "http://collector:4318"}, on: true},
		"traces endpoint: on":     {env: map[string]string{tracing.EnvTracesEndpoint: "http://collector:4318/v1/traces"}, on: true},
		"exporter otlp: on":       {env: map[string]string{tracing.EnvExporter: "otlp"}, on: true},
		"none wins over endpoint": {env: map[string]string{tracing.EnvExporter: "none", tracing.EnvEndpoint: "http://collector:4318"}},
		"http/protobuf":           {env: map[string]string{tracing.EnvEndpoint: "http://c:4318", tracing.EnvProtocol: "http/protobuf"}, on: true},
		"grpc refused":            {env: map[string]string{tracing.EnvEndpoint: "http://c:4317", tracing.EnvTracesProtocol: "grpc"}, wantErr: "http/protobuf"},
		"unknown exporter":        {env: map[string]string{tracing.EnvExporter: "zipkin"}, wantErr: "otlp"},
	} {
		on, err := tracing.Enabled(func(k string) string { return tc.env[k] })
		if on != tc.on || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Enabled = %v, %v; want %v, error containing %q", name, on, err, tc.on, tc.wantErr)
		}
	}
}

// An OTLP endpoint in the environment makes Setup export spans over
// OTLP/HTTP, with OTEL_SERVICE_NAME as service.name; shutdown flushes.
func TestSetupExportsToTheOTLPEndpoint(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv(tracing.EnvEndpoint, collector.URL)
	t.Setenv(tracing.EnvServiceName, "cdnflow-test")

	shutdown, err := tracing.Setup(context.Background(), "cdnflow-api", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "a job")
	want := span.SpanContext().TraceID()
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			var service string
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if s.GetName() == "a job" && trace.TraceID(s.GetTraceId()) == want {
						if service != "cdnflow-test" {
							t.Fatalf("service.name = %q, want OTEL_SERVICE_NAME's cdnflow-test", service)
						}
						return
					}
				}
			}
		}
	}
	t.Fatalf("the collector got %d exports, none with the span (trace %s)", len(got), want)
}
