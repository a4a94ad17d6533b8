package interceptors

import (
	"log/slog"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/trace"
)

// An Option configures the chain built by NewChain.
type Option func(*options)

type options struct {
	logger            *slog.Logger
	recovery          bool
	logging           bool
	logHealthChecks   bool
	loggingOpts       []logging.Option
	middlewareLogging bool
	metrics           bool
	registerer        prometheus.Registerer
	latencyBuckets    []float64
	servedBy          string
	tracing           bool
	tracerProvider    trace.TracerProvider
	tracingOpts       []otelgrpc.Option
}

func defaultOptions() options {
	return options{
		logger:     slog.Default(),
		recovery:   true,
		logging:    true,
		metrics:    true,
		registerer: prometheus.DefaultRegisterer,
	}
}

// WithLogger sets the logger for call lines and recovered panics (default
// slog.Default(), read when NewChain runs). A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithoutRecovery leaves panics in handlers unrecovered: the process crashes,
// as with a bare grpc.Server.
func WithoutRecovery() Option { return func(o *options) { o.recovery = false } }

// WithoutLogging drops the one-line-per-call log.
func WithoutLogging() Option { return func(o *options) { o.logging = false } }

// WithLogHealthChecks logs calls to /grpc.health.v1.Health/ too. They are
// skipped by default: Kubernetes probes every few seconds and the lines would
// drown the real traffic. The kit's own calls between pods (fair share's
// load queries, ORCA's reports) are never logged.
func WithLogHealthChecks() Option { return func(o *options) { o.logHealthChecks = true } }

// WithLoggingOptions logs calls with go-grpc-middleware's own logging
// interceptor instead of the chain's call line, and passes it opts after
// rotor's (finish-call events only, grpc.time_us in whole microseconds, the
// code the client gets), so they can override them. Use it for what only
// the middleware does: payload logging (logging.WithLogOnEvents with
// PayloadReceived, PayloadSent), start-of-call lines, custom levels, codes
// or fields. It costs more server CPU and allocations a call
// (BenchmarkChainAlone; README.md has the figures). Its lines carry the
// same keys plus protocol, grpc.component,
// grpc.start_time and, for calls with a deadline, grpc.request.deadline;
// and it logs a stream handler's io.EOF as OK, where the client gets
// Unknown. Health checks stay unlogged unless WithLogHealthChecks.
func WithLoggingOptions(opts ...logging.Option) Option {
	return func(o *options) {
		o.middlewareLogging = true
		o.loggingOpts = append(o.loggingOpts, opts...)
	}
}

// WithoutMetrics drops the Prometheus call metrics (grpc_server_*).
func WithoutMetrics() Option { return func(o *options) { o.metrics = false } }

// WithRegisterer registers the call metrics on r instead of
// prometheus.DefaultRegisterer. A nil r keeps the default.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) {
		if r != nil {
			o.registerer = r
		}
	}
}

// WithLatencyBuckets sets the upper bounds, in seconds, of the
// grpc_server_handling_seconds histogram (default prometheus.DefBuckets,
// 5 ms … 10 s).
func WithLatencyBuckets(b []float64) Option {
	return func(o *options) { o.latencyBuckets = append([]float64(nil), b...) }
}

// WithServedBy adds the ServedBy interceptors, outermost, so that every
// response carries the x-served-by header with name. Off by default: the
// header tells clients which pod served them, which is useful in a demo or
// when debugging balance, and information a public API may not want to give.
// An empty name leaves it off.
func WithServedBy(name string) Option { return func(o *options) { o.servedBy = name } }

// WithTracing traces every call with OpenTelemetry: one server span per
// call, from the stats handler of otelgrpc (OpenTelemetry Go contrib's gRPC
// instrumentation), continuing the trace of the W3C trace context
// (traceparent, tracestate) and baggage the call carries, and the kit's own
// events on it (SpanEventGoAway, GoAwayReasonKey, LameDuckKey). Spans go to tp; nil means the global
// provider, otel.GetTracerProvider(), read when NewChain runs. Sampling is
// tp's: a provider from the OpenTelemetry SDK with a ParentBased sampler
// keeps the decision of the caller (a traced gateway, say) and samples new
// traces at its own rate.
//
// Off by default. A stats handler is a grpc.ServerOption, not an
// interceptor: Chain.ServerOptions includes it, and with rotor's server
// pass Chain.StatsHandlers to server.WithGRPCOptions as well as the
// interceptors.
//
// Calls to /grpc.health.v1.Health/ (Kubernetes probes every few seconds),
// rotor's fair-share load queries and ORCA's load reports are not traced.
// otelgrpc records no metrics (the chain's Prometheus metrics count the
// calls). opts are passed to otelgrpc after rotor's own
// (WithTracerProvider, WithPropagators with W3C trace context and baggage,
// WithMeterProvider with a no-op provider, WithFilter), so they override
// them: otelgrpc.WithFilter to trace probes too, otelgrpc.WithMeterProvider
// for OpenTelemetry's RPC metrics, otelgrpc.WithPropagators for B3 and the
// like.
func WithTracing(tp trace.TracerProvider, opts ...otelgrpc.Option) Option {
	return func(o *options) {
		o.tracing = true
		o.tracerProvider = tp
		o.tracingOpts = append(o.tracingOpts, opts...)
	}
}
