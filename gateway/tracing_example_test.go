package gateway_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// A REST call traced from the gateway to the handler: the gateway and the
// gRPC server share a TracerProvider (in a real program, the OpenTelemetry
// SDK exporting over OTLP; here the spans stay in memory), and the call
// makes one trace of three spans.
func ExampleConfig_tracing() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	quiet := slog.New(slog.DiscardHandler)

	chain, err := interceptors.NewChain(interceptors.WithoutLogging(), interceptors.WithRegisterer(interceptors.NewRegistry()),
		interceptors.WithTracing(tp))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.WithLogger(quiet),
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...))
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, greeter{})
	grpcAddr := serveLocal(srv.Serve)
	defer srv.Close()

	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn:             hellov1.RegisterHelloHandlerFromEndpoint,
		Endpoint:       grpcAddr,
		Logger:         quiet,
		TracerProvider: tp,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()
	httpAddr := serveLocal(gw.Serve)

	resp, err := http.Post("http://"+httpAddr+"/v1/hi", "application/json", strings.NewReader(`{"to_who":"you"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()

	for deadline := time.Now().Add(5 * time.Second); len(spans.Ended()) < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	ended := spans.Ended()
	trace := ended[0].SpanContext().TraceID()
	var lines []string
	for _, s := range ended {
		lines = append(lines, fmt.Sprintf("%-6s %-18s same trace: %v", s.SpanKind(), s.Name(), s.SpanContext().TraceID() == trace))
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// client hello.v1.Hello/Hi  same trace: true
	// server POST /v1/hi        same trace: true
	// server hello.v1.Hello/Hi  same trace: true
}
