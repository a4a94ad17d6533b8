package interceptors_test

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// pieces are the chains the benchmarks compare; nil opts means no
// interceptors at all.
var pieces = []struct {
	name string
	opts []interceptors.Option
}{
	{"bare", nil},
	{"recovery", []interceptors.Option{interceptors.WithoutLogging(), interceptors.WithoutMetrics()}},
	{"logging", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutMetrics()}},
	{"metrics", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutLogging()}},
	{"servedby", []interceptors.Option{interceptors.WithoutRecovery(), interceptors.WithoutLogging(), interceptors.WithoutMetrics(), interceptors.WithServedBy("pod-a")}},
	{"default", []interceptors.Option{}},
	{"default-nolog", []interceptors.Option{interceptors.WithoutLogging()}},
}

// benchChain builds a chain on a registry of its own that logs to
// io.Discard, so that the log's cost is the formatting, not the disk.
func benchChain(b *testing.B, opts []interceptors.Option) *interceptors.Chain {
	c, err := interceptors.NewChain(append([]interceptors.Option{
		interceptors.WithRegisterer(prometheus.NewRegistry()),
		interceptors.WithLogger(discard),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return c
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
						opts = benchChain(b, p.opts).ServerOptions()
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
		if p.name == "servedby" {
			continue // grpc.SetHeader needs a real call's stream
		}
		b.Run(p.name, func(b *testing.B) {
			call := nop
			u := benchChain(b, p.opts).Unary()
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

func benchServer(b *testing.B, transport string, opts ...grpc.ServerOption) hellov1.HelloClient {
	s := grpc.NewServer(opts...)
	hellov1.RegisterHelloServer(s, helloService{})
	b.Cleanup(s.Stop)
	if transport == "tcp" {
		return hellov1.NewHelloClient(dial(b, serveOn(b, s)))
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = s.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	return hellov1.NewHelloClient(cc)
}
