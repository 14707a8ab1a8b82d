// Package temporalclient dials Temporal the same way for the embedded dev
// server and an external cluster (plain, mTLS or API key), and makes sure the
// namespace has the search attributes cdnflow's workflows write.
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/tracing"
)

// Settings say where and how to reach Temporal: the frontend's host:port
// (empty in `cdnflow dev`: embed one), the namespace and task queue, and the
// optional mTLS files, server name and API key. The config package binds
// them to flags and environment variables.
type Settings struct {
	TemporalAddress string
	Namespace       string
	TaskQueue       string
	TLSCertFile     string
	TLSKeyFile      string
	TLSCAFile       string
	TLSServerName   string
	TemporalAPIKey  string
	// PayloadCodec, when set, encodes every payload this client sends
	// (inputs, results, memos, heartbeat details, failure messages) and
	// decodes every payload it receives (internal/codec: AES-256-GCM);
	// search attributes are never encoded. Not a flag: the process sets
	// it from its payload key (config.Secrets).
	PayloadCodec converter.PayloadCodec
}

// Dial connects to cfg.TemporalAddress, retrying while the server starts.
func Dial(ctx context.Context, cfg Settings, logger *zap.Logger) (client.Client, error) {
	opts := client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.Namespace,
		Logger:    NewLogger(logger.Named("sdk")),
		// The SDK's own series (task latencies, pollers, failures) go to
		// the same /metrics as cdnflow's.
		MetricsHandler: metrics.SDKHandler(),
	}
	// Tracing: the SDK's OpenTelemetry interceptor carries the caller's
	// span in the headers of every start, signal, update and activity, so
	// a job is one trace; on the client, it is also the worker's
	// (internal/tracing).
	tracer, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{TextMapPropagator: tracing.Propagator})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	opts.Interceptors = []interceptor.ClientInterceptor{tracer, &workflowIDsInterceptor{}}
	tlsConf, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		opts.ConnectionOptions.TLS = tlsConf
	}
	if cfg.PayloadCodec != nil {
		codecOpts, err := codecDialOptions(cfg.PayloadCodec)
		if err != nil {
			return nil, err
		}
		opts.ConnectionOptions.DialOptions = append(opts.ConnectionOptions.DialOptions, codecOpts...)
	}
	opts.ConnectionOptions.GrpcCompression = grpcCompression(cfg.TemporalAddress)
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if attempt >= 20 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial temporal %s: %w (last error: %v)", cfg.TemporalAddress, ctx.Err(), lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("dial temporal %s: %w", cfg.TemporalAddress, lastErr)
}

// grpcCompression is the SDK's request compression for a frontend at
// hostPort: none on a loopback address or localhost (the embedded dev
// server, a sidecar; "" is the SDK's localhost:7233), where gzip only costs CPU on both ends of an in-memory copy
// (compress/flate was ~4% of the API's CPU under bench/load); gzip, the
// SDK's default, for any other host, where it saves bandwidth.
func grpcCompression(hostPort string) client.GrpcCompression {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "" || strings.EqualFold(host, "localhost") {
		return &client.GrpcCompressionNone{}
	}
	return &client.GrpcCompressionGzip{}
}

// codecDialOptions apply the payload codec on the connection, the SDK's
// codec interceptors (converter.NewPayloadCodecGRPCClientInterceptor):
// every request's payloads are encoded and every response's decoded, so
// the raw reads cdnflow decodes itself with the default data converter
// (memos of Describe and List, pending activities' heartbeat details, the
// fleet record) see plain payloads, and what the server stores is sealed.
// Failure messages and stack traces are first moved into an encoded
// attributes payload (converter.NewFailureGRPCClientInterceptor, which
// must come first in the chain): an error text may carry a URL with its
// token.
func codecDialOptions(codec converter.PayloadCodec) ([]grpc.DialOption, error) {
	failures, err := converter.NewFailureGRPCClientInterceptor(converter.NewFailureGRPCClientInterceptorOptions{EncodeCommonAttributes: true})
	if err != nil {
		return nil, fmt.Errorf("temporal failure interceptor: %w", err)
	}
	payloads, err := converter.NewPayloadCodecGRPCClientInterceptor(converter.PayloadCodecGRPCClientInterceptorOptions{Codecs: []converter.PayloadCodec{codec}})
	if err != nil {
		return nil, fmt.Errorf("temporal payload codec interceptor: %w", err)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(failures, payloads)}, nil
}

func tlsConfig(cfg Settings) (*tls.Config, error) {
	if cfg.TLSCertFile == "" && cfg.TLSCAFile == "" && cfg.TemporalAPIKey == "" && cfg.TLSServerName == "" {
		return nil, nil
	}
	conf := &tls.Config{ServerName: cfg.TLSServerName, MinVersion: tls.VersionTLS12}
	if cfg.TLSCertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load temporal client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read temporal CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal CA %s holds no PEM certificate", cfg.TLSCAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// EnsureSearchAttributes adds the custom search attributes that are missing
// from the namespace. Existing ones are left alone, so it is safe to call at
// every start of every process.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) error {
	op := c.OperatorService()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		if got, ok := have.GetCustomAttributes()[name]; ok {
			if got != typ {
				return fmt.Errorf("search attribute %s exists with type %s, cdnflow needs %s", name, got, typ)
			}
			continue
		}
		missing[name] = typ
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if err != nil {
		if _, ok := err.(*serviceerror.AlreadyExists); ok {
			return nil // another process won the race
		}
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}
