package interceptors

import (
	"context"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/rotorkit/rotor/internal/conninfo"
)

// The names rotor puts on a call's server span when WithTracing is on and
// the server is rotor's (package server). A plain grpc.Server knows nothing
// of GOAWAYs, so its spans carry none of them.
const (
	// SpanEventGoAway is the event of a call whose connection the kit sent
	// GOAWAY while the call ran, timed at the GOAWAY, with the attribute
	// GoAwayReasonKey. The call itself goes on (it has the grace to
	// finish); its client's next calls go to a new connection.
	SpanEventGoAway = "rotor.goaway"
	// GoAwayReasonKey is the reason of the GOAWAY: age, api, admin,
	// signal, peers, fairshare, shutdown or lameduck (the server package's
	// Reason values), or a reason of the program's own given to
	// server.Rotation. It is set on the span of every call whose
	// connection was sent GOAWAY before the call ended, including calls
	// that began on a connection already draining (those have no event:
	// their client had not yet read the GOAWAY when it sent them).
	GoAwayReasonKey = "rotor.goaway.reason"
	// LameDuckKey is true on the span of a call served on a lame-duck
	// connection: one accepted while the server drained at shutdown, from a
	// client whose address list still held the pod.
	LameDuckKey = "rotor.connection.lame_duck"
)

// w3c is the propagator of the kit's tracing, here and in the gateway:
// W3C trace context (traceparent, tracestate) and W3C baggage.
func w3c() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// tracingHandler is the otelgrpc server stats handler WithTracing asks for.
func tracingHandler(o *options) stats.Handler {
	opts := []otelgrpc.Option{
		otelgrpc.WithPropagators(w3c()),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithFilter(traced),
	}
	if o.tracerProvider != nil {
		opts = append(opts, otelgrpc.WithTracerProvider(o.tracerProvider))
	}
	return otelgrpc.NewServerHandler(append(opts, o.tracingOpts...)...)
}

// traced is the otelgrpc filter of WithTracing: probes and the kit's own
// calls are not traced.
func traced(info *stats.RPCTagInfo) bool {
	service := serviceOf(info.FullMethodName)
	return service != healthService && !kitService(service)
}

// goAwayUnary and goAwayStream put the kit's connection events on the span
// of the call: rotor's server puts the call's connection in its context
// (internal/conninfo), and the span is otelgrpc's, started before any
// interceptor runs. The events are read once the handler returns, when the
// span is still open: no goroutine or callback per call.
func goAwayUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c := conninfo.From(ctx)
	if c == nil {
		return h(ctx, req)
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return h(ctx, req)
	}
	start := time.Now()
	resp, err := h(ctx, req)
	annotate(span, c, start)
	return resp, err
}

func goAwayStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c := conninfo.From(ss.Context())
	if c == nil {
		return h(srv, ss)
	}
	span := trace.SpanFromContext(ss.Context())
	if !span.IsRecording() {
		return h(srv, ss)
	}
	start := time.Now()
	err := h(srv, ss)
	annotate(span, c, start)
	return err
}

// annotate records on span what happened to connection c up to now, for a
// call that began at start.
func annotate(span trace.Span, c conninfo.Conn, start time.Time) {
	if c.LameDuck() {
		span.SetAttributes(attribute.Bool(LameDuckKey, true))
	}
	reason, at := c.GoAway()
	if reason == "" {
		return
	}
	r := attribute.String(GoAwayReasonKey, reason)
	span.SetAttributes(r)
	if !at.Before(start) {
		span.AddEvent(SpanEventGoAway, trace.WithTimestamp(at), trace.WithAttributes(r))
	}
}
