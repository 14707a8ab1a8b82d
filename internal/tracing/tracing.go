// Package tracing sets up OpenTelemetry for a cdnflow process: one trace
// per job, from the HTTP request (otelecho in httpapi) through the workflow
// start, the workflow and its activities (the Temporal SDK's interceptor,
// installed by internal/temporalclient on the client and so on the worker)
// to every request to an edge (otelhttp in edge.Client). Spans go to the
// global tracer provider; Setup installs an OTLP exporter there when the
// standard environment asks for one, and otherwise leaves the no-op
// provider: tracing is off and costs next to nothing. The W3C trace
// context propagator is always installed, so a caller's traceparent still
// reaches the logs and the edges.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Standard OpenTelemetry environment variables Setup reads (the SDK and
// the exporter read the rest themselves: OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, OTEL_TRACES_SAMPLER, OTEL_BSP_*,
// OTEL_RESOURCE_ATTRIBUTES).
const (
	EnvExporter       = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvServiceName    = "OTEL_SERVICE_NAME"
)

// Propagator is the W3C trace context (traceparent, tracestate) and
// baggage, the propagator every cdnflow process installs.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Enabled reports whether getenv asks for exported traces, and why not:
// OTEL_TRACES_EXPORTER=none turns them off; otherwise an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER=otlp (the spec's default endpoint,
// http://localhost:4318) turns them on. Other exporter names and the grpc
// protocol are errors: cdnflow exports OTLP over HTTP (http/protobuf).
func Enabled(getenv func(string) string) (bool, error) {
	exp := strings.TrimSpace(strings.ToLower(getenv(EnvExporter)))
	switch exp {
	case "none":
		return false, nil
	case "", "otlp":
	default:
		return false, fmt.Errorf("%s=%q: cdnflow exports traces with otlp (or none)", EnvExporter, exp)
	}
	if exp == "" && getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "" {
		return false, nil
	}
	proto := getenv(EnvTracesProtocol)
	if proto == "" {
		proto = getenv(EnvProtocol)
	}
	if proto != "" && proto != "http/protobuf" {
		return false, fmt.Errorf("%s=%q: cdnflow exports OTLP over HTTP, set http/protobuf (a collector's port 4318)", EnvProtocol, proto)
	}
	return true, nil
}

// process is the one exporting provider of the process, shared by every
// Setup (a benchmark may start several stacks) and shut down by the last.
var process struct {
	mu    sync.Mutex
	users int
	tp    *sdktrace.TracerProvider
}

// Setup installs the propagator and, when Enabled(os.Getenv), a tracer
// provider that batches spans to the OTLP/HTTP exporter, as the global
// provider. service is the service.name unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) sets one. shutdown flushes and stops the
// exporter when the last Setup of the process is shut down; it does
// nothing when tracing is off. Errors: a bad OTEL_* setting.
func Setup(ctx context.Context, service string, logger *zap.Logger) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	on, err := Enabled(os.Getenv)
	if err != nil || !on {
		return func(context.Context) error { return nil }, err
	}
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.tp == nil {
		tp, err := newProvider(ctx, service)
		if err != nil {
			return nil, err
		}
		otel.SetTracerProvider(tp)
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("opentelemetry", zap.Error(err)) }))
		process.tp = tp
		logger.Info("tracing on: spans exported by OTLP/HTTP", zap.String("service", service))
	}
	process.users++
	var once sync.Once
	return func(ctx context.Context) error {
		var err error
		once.Do(func() {
			process.mu.Lock()
			defer process.mu.Unlock()
			if process.users--; process.users == 0 && process.tp != nil {
				err = process.tp.Shutdown(ctx)
				process.tp = nil
			}
		})
		if err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	}, nil
}

func newProvider(ctx context.Context, service string) (*sdktrace.TracerProvider, error) {
	// The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, headers,
	// timeout and compression itself.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// LogFields are the zap fields naming ctx's span: traceId and spanId (hex,
// as every tracing backend shows them); none when ctx has no valid span.
func LogFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{zap.String("traceId", sc.TraceID().String()), zap.String("spanId", sc.SpanID().String())}
}
