package interceptors_test

import (
	"context"
	"fmt"
	"log"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// Tracing on a plain grpc.Server: ServerOptions carries otelgrpc's stats
// handler with the interceptors. A real program gives a TracerProvider of
// the OpenTelemetry SDK that exports over OTLP (example/server shows one);
// here the spans stay in memory.
func ExampleWithTracing() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	chain, err := interceptors.NewChain(interceptors.WithoutLogging(), interceptors.WithRegisterer(interceptors.NewRegistry()),
		interceptors.WithTracing(tp))
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(chain.ServerOptions()...)
	hellov1.RegisterHelloServer(s, helloService{})
	cc, stop, err := serveInMemory(s)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	if _, err := hellov1.NewHelloClient(cc).Hi(context.Background(), &hellov1.HiRequest{ToWho: "you"}); err != nil {
		log.Fatal(err)
	}
	// The server span ends as the answer leaves.
	for deadline := time.Now().Add(5 * time.Second); len(spans.Ended()) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for _, sp := range spans.Ended() {
		fmt.Println(sp.SpanKind(), sp.Name())
	}
	// Output: server hello.v1.Hello/Hi
}

// With rotor's server, the stats handler goes in as a gRPC option, and the
// kit's GOAWAYs show on the spans of the calls they hit (SpanEventGoAway).
func ExampleChain_StatsHandlers() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	chain, err := interceptors.NewChain(interceptors.WithTracing(tp))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...),
	)
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, helloService{})
	fmt.Println(len(chain.StatsHandlers()), "stats handler")
	// Output: 1 stats handler
}
