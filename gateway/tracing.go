package gateway

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// w3c is the propagator of the kit's tracing, as in package interceptors:
// W3C trace context (traceparent, tracestate) and W3C baggage.
func w3c() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// traceHTTP wraps h, the REST routes, in otelhttp's handler: a server span
// per request, continuing the request's W3C trace context. otelhttp records
// no metrics here; the gRPC server's count the calls.
func traceHTTP(h http.Handler, tp trace.TracerProvider) http.Handler {
	return otelhttp.NewHandler(h, "rest",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(w3c()),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()))
}

// traceGRPC is the dial option of the REST connections: otelgrpc's client
// handler opens a client span for each call under the request's span and
// writes its context into the call's metadata, replacing a traceparent
// that ForwardHeaders copied from the request.
func traceGRPC(tp trace.TracerProvider) grpc.DialOption {
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(w3c()),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider())))
}

// nameSpan names the request's span after its route, "POST /v1/hi", and
// sets http.route, once grpc-gateway has matched it: only the mux knows the
// pattern, and the path itself may hold ids. It adds no metadata.
func nameSpan(ctx context.Context, r *http.Request) metadata.MD {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return nil
	}
	if pattern, ok := runtime.HTTPPathPattern(ctx); ok {
		span.SetName(r.Method + " " + pattern)
		span.SetAttributes(attribute.String("http.route", pattern))
	}
	return nil
}
