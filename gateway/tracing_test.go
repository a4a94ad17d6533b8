package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/server"
)

// tracedBackend is a rotor server with the chain traced into tp.
func tracedBackend(t *testing.T, tp trace.TracerProvider) *backend {
	t.Helper()
	chain, err := interceptors.NewChain(interceptors.WithoutMetrics(),
		interceptors.WithoutLogging(), interceptors.WithTracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	return startBackend(t, "pod-a",
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...))
}

func spanRecorder(t *testing.T) (*tracetest.SpanRecorder, trace.TracerProvider) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, tp
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// A REST call is one trace: the gateway's HTTP server span continues the
// client's W3C trace context, the gRPC client span is its child, and the
// gRPC server span (interceptors.WithTracing) is the client span's, through
// the traceparent metadata the gateway sends in place of the client's.
// Probes make no span.
func TestRESTCallIsOneTrace(t *testing.T) {
	sr, tp := spanRecorder(t)
	b := tracedBackend(t, tp)
	_, base := startGateway(t, b, gateway.Config{TracerProvider: tp})

	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, body := do(t, nil, http.MethodPost, base+"/v1/hi", `{"toWho":"t"}`,
		"traceparent", "00-"+traceID+"-"+clientSpan+"-01", "tracestate", "vendor=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/hi: %s %s", resp.Status, body)
	}
	if resp, _ := do(t, nil, http.MethodGet, base+gateway.ReadyzPath, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz: %s", resp.Status)
	}
	testkit.Eventually(t, 5*time.Second, "three ended spans", func() bool { return len(sr.Ended()) >= 3 })
	var httpSpan, clientSpanS, serverSpan sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch {
		case s.SpanKind() == trace.SpanKindServer && s.Name() == "POST /v1/hi":
			httpSpan = s
		case s.SpanKind() == trace.SpanKindClient && s.Name() == "hello.v1.Hello/Hi":
			clientSpanS = s
		case s.SpanKind() == trace.SpanKindServer && s.Name() == "hello.v1.Hello/Hi":
			serverSpan = s
		default:
			t.Errorf("unexpected span %q kind %v", s.Name(), s.SpanKind())
		}
	}
	if httpSpan == nil || clientSpanS == nil || serverSpan == nil {
		t.Fatalf("spans: HTTP server %v, gRPC client %v, gRPC server %v; want all three", httpSpan != nil, clientSpanS != nil, serverSpan != nil)
	}
	for _, s := range []sdktrace.ReadOnlySpan{httpSpan, clientSpanS, serverSpan} {
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("%s (%v): trace %s, want the REST client's %s", s.Name(), s.SpanKind(), got, traceID)
		}
	}
	for _, link := range []struct {
		what          string
		child         sdktrace.ReadOnlySpan
		parent        string
		remote        bool
		parentOfWhich string
	}{
		{"HTTP server span", httpSpan, clientSpan, true, "the REST client's traceparent"},
		{"gRPC client span", clientSpanS, httpSpan.SpanContext().SpanID().String(), false, "the HTTP server span"},
		{"gRPC server span", serverSpan, clientSpanS.SpanContext().SpanID().String(), true, "the gRPC client span"},
	} {
		p := link.child.Parent()
		if p.SpanID().String() != link.parent || p.IsRemote() != link.remote {
			t.Errorf("%s: parent %s (remote %v), want %s, %s", link.what, p.SpanID(), p.IsRemote(), link.parent, link.parentOfWhich)
		}
	}
	if got := spanAttr(httpSpan, "http.route").AsString(); got != "/v1/hi" {
		t.Errorf("HTTP span http.route = %q, want /v1/hi", got)
	}
	// One traceparent reached the server, the gateway's, and the client's
	// tracestate went along.
	md := b.lastMD(t)
	if tp := md.Get("traceparent"); len(tp) != 1 || !strings.Contains(tp[0], clientSpanS.SpanContext().SpanID().String()) {
		t.Errorf("traceparent metadata %q, want one, naming the gRPC client span %s", tp, clientSpanS.SpanContext().SpanID())
	}
	if ts := md.Get("tracestate"); len(ts) != 1 || ts[0] != "vendor=1" {
		t.Errorf("tracestate metadata %q, want the client's vendor=1", ts)
	}
}

// Tracing wraps the response writer and the request body: the gateway's
// limits, JSON checks and per-write deadlines must hold through it.
func TestTracedGatewayKeepsItsLimits(t *testing.T) {
	sr, tp := spanRecorder(t)
	b := tracedBackend(t, tp)
	_, base := startGateway(t, b, gateway.Config{TracerProvider: tp, MaxBodyBytes: 1 << 10, ReadTimeout: time.Second, WriteTimeout: time.Second})
	big := `{"to_who":"` + strings.Repeat("x", 2<<10) + `"}`
	for _, tc := range []struct {
		name, body string
		chunked    bool
		status     int
	}{
		{"trailing object", `{"toWho":"a"}{"x":1}`, false, 400},
		{"body over limit", big, false, 413},
		{"chunked body over limit", big, true, 413},
	} {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/hi", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.chunked {
			req.ContentLength = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	// 1.5 s of stream through 1 s read and write timeouts.
	if n := countStream(t, base, 15, 100); n != 15 {
		t.Errorf("got %d of 15 stream messages through the traced gateway", n)
	}
	testkit.Eventually(t, 5*time.Second, "the HTTP spans", func() bool {
		n := 0
		for _, s := range sr.Ended() {
			if s.SpanKind() == trace.SpanKindServer && strings.HasPrefix(s.Name(), "POST") {
				n++
			}
		}
		return n == 4
	})
}
