package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// serviceName is the service.name of the example's spans, unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
const serviceName = "rotor-example-server"

// tracingFlags are the example's OpenTelemetry settings.
type tracingFlags struct {
	endpoint string
	sample   float64
}

func bindTracingFlags(fs *flag.FlagSet) *tracingFlags {
	f := &tracingFlags{}
	fs.StringVar(&f.endpoint, "otlp-endpoint", "", `trace calls and REST requests with OpenTelemetry, exported over OTLP/gRPC to this collector: host:port in plaintext (a collector in the cluster or on the node), or a URL, "https://host:port" for TLS; empty: no tracing`)
	fs.Float64Var(&f.sample, "trace-sample", 1, "with -otlp-endpoint: the fraction of new traces to sample, 0 to 1 (calls whose caller sampled are always sampled); lower it for busy services, e.g. 0.01")
	return f
}

// start returns the tracer provider the flags ask for, and a function that
// flushes and stops it; a nil provider (and a no-op stop) when tracing is
// off. The provider samples parent-based: a call whose caller's trace is
// sampled is traced, and a new trace is sampled with probability sample.
func (f *tracingFlags) start(ctx context.Context, instance string) (trace.TracerProvider, func(context.Context) error, error) {
	nop := func(context.Context) error { return nil }
	if f.endpoint == "" {
		return nil, nop, nil
	}
	if f.sample < 0 || f.sample > 1 {
		return nil, nop, fmt.Errorf("-trace-sample %v: want a fraction from 0 to 1", f.sample)
	}
	endpoint := otlptracegrpc.WithEndpoint(f.endpoint)
	opts := []otlptracegrpc.Option{endpoint, otlptracegrpc.WithInsecure()}
	if strings.Contains(f.endpoint, "://") {
		opts = []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(f.endpoint)} // http:// plaintext, https:// TLS
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, nop, fmt.Errorf("-otlp-endpoint %q: %w", f.endpoint, err)
	}
	// The defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
	// detected after them, win.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceInstanceID(instance)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, nop, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f.sample))),
	)
	return tp, tp.Shutdown, nil
}
