package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// tracedChainServer is the overhead benchmark's rotor server with the
// default chain traced by OpenTelemetry: a tracer provider of the SDK as a
// program runs it, ParentBased(TraceIDRatioBased(sample)) with a batching
// span processor, whose exporter drops the spans, so that what is measured
// is the instrumentation and the SDK, not a collector. The benchmark's
// calls carry no trace context, so sample is the fraction of calls traced.
// stop shuts the provider down after the server.
func tracedChainServer(quiet *slog.Logger, sample float64) (srv *server.Server, stop func(), err error) {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	stopTracing := func() { _ = tp.Shutdown(context.Background()) }
	chain, err := interceptors.NewChain(interceptors.WithRegisterer(prometheus.NewRegistry()), interceptors.WithLogger(quiet),
		interceptors.WithTracing(tp))
	if err != nil {
		stopTracing()
		return nil, nil, err
	}
	srv, err = server.New(server.WithMaxConnectionAge(30*time.Second), server.WithLogger(quiet),
		server.WithUnaryInterceptors(chain.Unary()...), server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...))
	if err != nil {
		stopTracing()
		return nil, nil, err
	}
	hellov1.RegisterHelloServer(srv, &hello.Service{Name: "rotor+chain+tracing"})
	chain.InitializeMetrics(srv)
	return srv, func() { _ = srv.Close(); stopTracing() }, nil
}
