package interceptors_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// pieces are the chains the benchmarks compare; nil opts means no
// interceptors at all. sample, when positive, adds WithTracing with an
// OpenTelemetry SDK provider that samples that fraction of the calls (see
// tracedProvider).
var pieces = []struct {
	name   string
	opts   []interceptors.Option
	sample float64
}{
	{"bare", nil, 0},
	{"recovery", []interceptors.Option{interceptors.WithoutLogging(), interceptors.WithoutMetrics()}, 0},
	{"logging", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutMetrics()}, 0},
	{"metrics", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutLogging()}, 0},
	{"servedby", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutLogging(), interceptors.WithoutMetrics(), interceptors.WithServedBy("pod-a")}, 0},
	{"default", []interceptors.Option{}, 0},
	{"default-nolog", []interceptors.Option{interceptors.WithoutLogging()}, 0},
	// The logger at Warn: only the server's failures would be logged.
	{"default-warn", []interceptors.Option{interceptors.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))}, 0},
	// go-grpc-middleware's own logging interceptor (WithLoggingOptions),
	// alone and in the chain, for comparison.
	{"mwlogging", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutMetrics(), interceptors.WithLoggingOptions()}, 0},
	{"default-mwlog", []interceptors.Option{interceptors.WithLoggingOptions()}, 0},
	// The default chain traced, 1 % and all of the calls sampled.
	{"default+trace1%", []interceptors.Option{}, 0.01},
	{"default+trace100%", []interceptors.Option{}, 1},
}

// benchChain builds a chain on a registry of its own that logs to
// io.Discard, so that the log's cost is the formatting, not the disk, and
// traces a sample fraction of the calls when sample is positive.
func benchChain(b *testing.B, opts []interceptors.Option, sample float64) *interceptors.Chain {
	if sample > 0 {
		opts = append(slices.Clip(opts), interceptors.WithTracing(tracedProvider(b, sample)))
	}
	c, err := interceptors.NewChain(append([]interceptors.Option{
		interceptors.WithRegisterer(prometheus.NewRegistry()),
		interceptors.WithLogger(discard),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// tracedProvider is an OpenTelemetry SDK tracer provider as a program would
// run it, ParentBased(TraceIDRatioBased(sample)) with a batching span
// processor, whose exporter drops the spans: what the benchmarks measure is
// the instrumentation and the SDK, not the collector or the network.
func tracedProvider(b *testing.B, sample float64) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// BenchmarkChain measures the per-call cost of each piece of the chain: one
// unary Hi call at a time over a real gRPC connection, on loopback TCP and on
// bufconn (an in-memory net.Conn: no kernel, so the interceptors weigh
// more). ns/op and allocs/op cover client and server together. See doc.go
// for the recipe and the numbers.
func BenchmarkChain(b *testing.B) {
	for _, transport := range []string{"tcp", "bufconn"} {
		b.Run(transport, func(b *testing.B) {
			for _, p := range pieces {
				b.Run(p.name, func(b *testing.B) {
					var opts []grpc.ServerOption
					if p.opts != nil {
						opts = benchChain(b, p.opts, p.sample).ServerOptions()
					}
					client := benchServer(b, transport, opts...)
					ctx := context.Background()
					req := &hellov1.HiRequest{ToWho: "bench", Message: "hello"}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := client.Hi(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkChainAlone measures the chain's own cost: its unary interceptors
// around a handler that does nothing, with no transport, so the number holds
// still on a busy machine. It is the server CPU a call pays for the chain.
func BenchmarkChainAlone(b *testing.B) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}})
	info := &grpc.UnaryServerInfo{FullMethod: hellov1.Hello_Hi_FullMethodName}
	nop := func(context.Context, any) (any, error) { return nil, nil }
	for _, p := range pieces[1:] {
		if p.name == "servedby" || p.sample > 0 {
			continue // grpc.SetHeader needs a real call's stream, a span its stats handler
		}
		b.Run(p.name, func(b *testing.B) {
			call := nop
			u := benchChain(b, p.opts, p.sample).Unary()
			for i := len(u) - 1; i >= 0; i-- {
				next, ic := call, u[i]
				call = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = call(ctx, nil)
			}
		})
	}
}

// BenchmarkThroughput compares the calls per second a server answers with
// each piece of the chain against a bare server, in one run: both servers
// run side by side on loopback TCP and the benchmark alternates batches of
// calls between them, bare first in even rounds and second in odd ones, so
// that whatever else the machine does hits both alike. Client and server
// share the CPUs, and the handler does nothing: the chain's cost shows as
// much as it can. Two shapes of load:
//
//   - 1conn: 16 concurrent callers on one connection, one client's load;
//     grpc-go's per-connection pipeline, not the CPU, limits it;
//   - 4conns: 32 callers over 4 connections, which keeps both cores busy:
//     the rate is the CPU's, and the ratio the chain's share of CPU a call.
//
// It reports both rates and their ratio, "x-bare" (chain / bare; 1 means
// free). ns/op is the time of one pair of batches.
func BenchmarkThroughput(b *testing.B) {
	req := &hellov1.HiRequest{ToWho: "bench", Message: "hello"}
	for _, shape := range []struct {
		name           string
		conns, callers int
	}{{"1conn", 1, 16}, {"4conns", 4, 32}} {
		const callsEach = 16
		b.Run(shape.name, func(b *testing.B) {
			for _, p := range pieces[1:] {
				b.Run(p.name, func(b *testing.B) {
					bare := benchClients(b, shape.conns)
					chain := benchClients(b, shape.conns, benchChain(b, p.opts, p.sample).ServerOptions()...)
					batch := func(clients []hellov1.HelloClient) time.Duration {
						start := time.Now()
						var wg sync.WaitGroup
						for i := range shape.callers {
							c := clients[i%len(clients)]
							wg.Go(func() {
								for range callsEach {
									if _, err := c.Hi(context.Background(), req); err != nil {
										b.Error(err)
										return
									}
								}
							})
						}
						wg.Wait()
						return time.Since(start)
					}
					batch(bare) // connections up, buffers warm
					batch(chain)
					var tBare, tChain time.Duration
					rounds := 0
					for b.Loop() {
						if rounds%2 == 0 {
							tBare += batch(bare)
							tChain += batch(chain)
						} else {
							tChain += batch(chain)
							tBare += batch(bare)
						}
						rounds++
					}
					calls := float64(rounds * shape.callers * callsEach)
					b.ReportMetric(calls/tBare.Seconds(), "bare-calls/s")
					b.ReportMetric(calls/tChain.Seconds(), "calls/s")
					b.ReportMetric(tBare.Seconds()/tChain.Seconds(), "x-bare")
				})
			}
		})
	}
}

// benchClients starts a server with the Hello service and opts on loopback
// TCP and returns n clients, each on a connection of its own.
func benchClients(b *testing.B, n int, opts ...grpc.ServerOption) []hellov1.HelloClient {
	s := grpc.NewServer(opts...)
	hellov1.RegisterHelloServer(s, helloService{})
	b.Cleanup(s.Stop)
	addr := serveOn(b, s)
	clients := make([]hellov1.HelloClient, n)
	for i := range clients {
		clients[i] = hellov1.NewHelloClient(dial(b, addr))
	}
	return clients
}

func benchServer(b *testing.B, transport string, opts ...grpc.ServerOption) hellov1.HelloClient {
	if transport == "tcp" {
		return benchClients(b, 1, opts...)[0]
	}
	s := grpc.NewServer(opts...)
	hellov1.RegisterHelloServer(s, helloService{})
	cc, stop, err := serveInMemory(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	return hellov1.NewHelloClient(cc)
}
