package interceptors_test

import (
	"context"
	"io"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// recorder returns a tracer provider of the OpenTelemetry SDK that samples
// every trace and keeps every ended span in memory.
func recorder(t testing.TB) (*tracetest.SpanRecorder, trace.TracerProvider) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, tp
}

// ended waits until sr holds n ended spans and returns them. A server
// span ends after the client has its answer, so it has to be waited for.
func ended(t testing.TB, sr *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, "ended spans", func() bool { return len(sr.Ended()) >= n })
	spans := sr.Ended()
	if len(spans) != n {
		for _, s := range spans {
			t.Logf("span %q kind %v", s.Name(), s.SpanKind())
		}
		t.Fatalf("%d ended spans, want %d", len(spans), n)
	}
	return spans
}

// attr returns the value of the attribute key of s, and whether s has it.
func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// A traced call continues the trace of the W3C traceparent it carries, in
// one server span named after the method; health checks make no span.
func TestTracingContinuesTheCallersTrace(t *testing.T) {
	sr, tp := recorder(t)
	chain, _ := newChain(t, interceptors.WithLogger(discard), interceptors.WithTracing(tp))
	cc := dial(t, serve(t, chain.ServerOptions()...))

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := hellov1.NewHelloClient(cc).Hi(ctx, &hellov1.HiRequest{ToWho: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	hiStream(t, cc, 2)
	spans := ended(t, sr, 2) // Hi and HiStream; not the health check
	// A server span ends after its client has the answer, so the two may
	// end in either order (CI once saw HiStream's first).
	hiSpan, streamSpan := spans[0], spans[1]
	if streamSpan.Name() == "hello.v1.Hello/Hi" {
		hiSpan, streamSpan = streamSpan, hiSpan
	}
	if hiSpan.Name() != "hello.v1.Hello/Hi" || hiSpan.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v, want hello.v1.Hello/Hi, server", hiSpan.Name(), hiSpan.SpanKind())
	}
	if got := hiSpan.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace id %s, want the caller's %s", got, traceID)
	}
	if got := hiSpan.Parent().SpanID().String(); got != parentID || !hiSpan.Parent().IsRemote() {
		t.Errorf("parent %s (remote %v), want the caller's span %s", got, hiSpan.Parent().IsRemote(), parentID)
	}
	if streamSpan.Name() != "hello.v1.Hello/HiStream" || streamSpan.Parent().IsValid() {
		t.Errorf("span %q with parent %v, want hello.v1.Hello/HiStream, a new trace", streamSpan.Name(), streamSpan.Parent().SpanID())
	}
	// A plain grpc.Server knows nothing of GOAWAYs.
	for _, s := range spans {
		if _, ok := attr(s, interceptors.GoAwayReasonKey); ok || len(s.Events()) > 0 && s.Events()[0].Name == interceptors.SpanEventGoAway {
			t.Errorf("span %q carries rotor's GOAWAY on a plain grpc.Server", s.Name())
		}
	}
}

// Without WithTracing nothing is traced, whatever the global provider.
func TestNoTracingByDefault(t *testing.T) {
	chain, _ := newChain(t, interceptors.WithLogger(discard))
	if n := len(chain.StatsHandlers()); n != 0 {
		t.Fatalf("%d stats handlers without WithTracing, want none", n)
	}
}

// heldHello's Hi waits for the test; its HiStream streams until the
// connection drains (testkit.Hello).
type heldHello struct {
	testkit.Hello
	started chan struct{}
	release chan struct{}
}

func (h *heldHello) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	if req.GetMessage() == "hold" {
		h.started <- struct{}{}
		<-h.release
	}
	return h.Hello.Hi(ctx, req)
}

// The case: a call runs while rotor sends its connection GOAWAY.
// Its span, and that of a stream on the same connection, get the event at
// the moment of the GOAWAY with its reason; a call on the new connection
// gets none.
func TestGoAwayShowsOnTheSpansOfTheCallsItHits(t *testing.T) {
	sr, tp := recorder(t)
	chain, _ := newChain(t, interceptors.WithLogger(discard), interceptors.WithTracing(tp))
	svc := &heldHello{Hello: testkit.Hello{Name: "a"}, started: make(chan struct{}), release: make(chan struct{})}
	srv, addr := testkit.StartRotor(t, svc,
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...))
	client := hellov1.NewHelloClient(testkit.Dial(t, addr, server.Config{}))

	stream := testkit.OpenStream(t.Context(), t, client)
	answered := make(chan error, 1)
	go func() {
		_, err := client.Hi(context.Background(), &hellov1.HiRequest{Message: "hold"})
		answered <- err
	}()
	<-svc.started
	before := time.Now()
	if res, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off, Spread: server.Off}); err != nil || res.Rotated != 1 {
		t.Fatalf("Rotate = %+v, %v; want the one connection rotated", res, err)
	}
	after := time.Now()
	var err error
	for err == nil {
		_, err = stream.Recv() // the stream ends cleanly when its connection drains
	}
	if err != io.EOF {
		t.Fatalf("HiStream: %v", err)
	}
	close(svc.release)
	if err := <-answered; err != nil {
		t.Fatalf("the call in flight failed: %v", err)
	}
	if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil { // on a new connection
		t.Fatal(err)
	}

	spans := ended(t, sr, 3)
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	his, streams := byName["hello.v1.Hello/Hi"], byName["hello.v1.Hello/HiStream"]
	if len(his) != 2 || len(streams) != 1 {
		t.Fatalf("spans %v, want two Hi and one HiStream", byName)
	}
	// A server span ends after its client has the answer, so spans may end
	// in any order: the held call is the Hi span with a GOAWAY, and the
	// call on the new connection must have none.
	held, fresh := his[0], his[1]
	if _, ok := attr(fresh, interceptors.GoAwayReasonKey); ok {
		held, fresh = fresh, held
	}
	for _, s := range []sdktrace.ReadOnlySpan{streams[0], held} {
		if v, ok := attr(s, interceptors.GoAwayReasonKey); !ok || v.AsString() != "api" {
			t.Errorf("%s: %s = %v, want api", s.Name(), interceptors.GoAwayReasonKey, v.Emit())
		}
		ev := s.Events()
		if len(ev) != 1 || ev[0].Name != interceptors.SpanEventGoAway {
			t.Errorf("%s: events %v, want one %s", s.Name(), ev, interceptors.SpanEventGoAway)
			continue
		}
		if ev[0].Time.Before(before) || ev[0].Time.After(after) {
			t.Errorf("%s: the GOAWAY event is at %v, want the moment of the GOAWAY, between %v and %v", s.Name(), ev[0].Time, before, after)
		}
		if len(ev[0].Attributes) != 1 || ev[0].Attributes[0] != attribute.String(interceptors.GoAwayReasonKey, "api") {
			t.Errorf("%s: event attributes %v, want the reason", s.Name(), ev[0].Attributes)
		}
	}
	if _, ok := attr(fresh, interceptors.GoAwayReasonKey); ok || len(fresh.Events()) != 0 {
		t.Errorf("the call on the new connection has events %v and attributes %v; want no GOAWAY", fresh.Events(), fresh.Attributes())
	}
}
