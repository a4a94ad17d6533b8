package interceptors

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
)

// A Chain is rotor's default server interceptor chain. Build it once with
// NewChain and hand its interceptors to a server:
//
//	grpc.NewServer(chain.ServerOptions()...)
//	server.New(server.WithUnaryInterceptors(chain.Unary()...), server.WithStreamInterceptors(chain.Stream()...),
//		server.WithGRPCOptions(chain.StatsHandlers()...))
//
// (StatsHandlers is empty unless WithTracing is given.) The interceptors run
// in this order, outermost first:
//
//  1. tracing (only WithTracing): puts rotor's connection events on the
//     call's span, which otelgrpc's stats handler opened before any
//     interceptor ran;
//  2. ServedBy (only WithServedBy): sets the header before anything can fail;
//  3. metrics: counts and times every call, with the code the client gets;
//  4. logging: one line per finished call;
//  5. recovery: turns a panic into codes.Internal.
//
// Recovery sits inside metrics and logging so that a panic is counted and
// logged as the Internal error the client sees, instead of escaping both.
// Interceptors of your own go before the chain (they see everything,
// including the Internal of a recovered panic) or after it (their panics are
// recovered too):
//
//	grpc.ChainUnaryInterceptor(append(append(before, chain.Unary()...), after...)...)
type Chain struct {
	unary   []grpc.UnaryServerInterceptor
	stream  []grpc.StreamServerInterceptor
	metrics *grpcprom.ServerMetrics
	handler []stats.Handler
}

// NewChain builds the chain. Recovery, logging and metrics are on unless
// turned off by an option; ServedBy is off unless WithServedBy names the
// instance. The call metrics are registered on prometheus.DefaultRegisterer
// unless WithRegisterer says otherwise; building a second chain with the
// same registerer reuses the metrics registered by the first. NewChain fails
// only when the registerer refuses the metrics, for example because other
// collectors already use the grpc_server_* names.
func NewChain(opts ...Option) (*Chain, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Chain{}
	if o.tracing {
		c.handler = append(c.handler, tracingHandler(&o))
		c.add(goAwayUnary, goAwayStream)
	}
	if o.servedBy != "" {
		u, s := ServedBy(o.servedBy)
		c.add(u, s)
	}
	if o.metrics {
		m, err := registerServerMetrics(o.registerer, o.latencyBuckets)
		if err != nil {
			return nil, err
		}
		c.metrics = m
		c.add(m.UnaryServerInterceptor(), m.StreamServerInterceptor())
	}
	if o.logging {
		c.add(loggingInterceptors(&o))
	}
	if o.recovery {
		c.add(recoveryInterceptors(o.logger))
	}
	return c, nil
}

func (c *Chain) add(u grpc.UnaryServerInterceptor, s grpc.StreamServerInterceptor) {
	c.unary = append(c.unary, u)
	c.stream = append(c.stream, s)
}

// Unary returns the unary interceptors, outermost first. The slice is a copy:
// append to it freely.
func (c *Chain) Unary() []grpc.UnaryServerInterceptor {
	return append([]grpc.UnaryServerInterceptor(nil), c.unary...)
}

// Stream returns the stream interceptors, outermost first. The slice is a
// copy: append to it freely.
func (c *Chain) Stream() []grpc.StreamServerInterceptor {
	return append([]grpc.StreamServerInterceptor(nil), c.stream...)
}

// ServerOptions returns the chain as grpc.ChainUnaryInterceptor and
// grpc.ChainStreamInterceptor options for grpc.NewServer, followed by
// StatsHandlers. Interceptors given in later Chain…Interceptor options run
// inside these.
func (c *Chain) ServerOptions() []grpc.ServerOption {
	return append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(c.unary...),
		grpc.ChainStreamInterceptor(c.stream...),
	}, c.StatsHandlers()...)
}

// StatsHandlers returns the chain's stats handlers as grpc.StatsHandler
// options: otelgrpc's, which opens each call's span, when WithTracing is
// given; none otherwise. ServerOptions includes them; with rotor's server,
// pass them to server.WithGRPCOptions beside the interceptors:
//
//	server.New(server.WithUnaryInterceptors(chain.Unary()...), server.WithStreamInterceptors(chain.Stream()...),
//		server.WithGRPCOptions(chain.StatsHandlers()...))
//
// Without them the tracing interceptors find no span and do nothing.
func (c *Chain) StatsHandlers() []grpc.ServerOption {
	opts := make([]grpc.ServerOption, 0, len(c.handler))
	for _, h := range c.handler {
		opts = append(opts, grpc.StatsHandler(h))
	}
	return opts
}

// InitializeMetrics creates the call series of every method registered on s
// at zero, so that rate() and absent() work before the first call. Call it
// after registering your services. Without metrics it does nothing. Both
// *grpc.Server and rotor's *server.Server are a
// reflection.ServiceInfoProvider.
func (c *Chain) InitializeMetrics(s reflection.ServiceInfoProvider) {
	if c.metrics != nil {
		c.metrics.InitializeMetrics(s)
	}
}
