package main

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/internal/testkit"
)

// collector is an OTLP/gRPC trace receiver: the OpenTelemetry Collector's
// TraceService, keeping what it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
}

// receivedSpan is a span with the service.name of its resource.
type receivedSpan struct {
	*tracepb.Span
	service string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := stringAttr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, receivedSpan{Span: s, service: service})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// trace returns the spans received so far of the trace with the given id.
func (c *collector) trace(id string) []receivedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []receivedSpan
	for _, s := range c.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

func (c *collector) all() []receivedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]receivedSpan(nil), c.spans...)
}

func stringAttr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// startCollector serves a collector on a loopback port until the test ends.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	c := &collector{}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, c)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return c, lis.Addr().String()
}

// End to end through the example's flags: a REST call to the example
// server, traced into a real OTLP/gRPC receiver, is one trace of three
// spans, HTTP server → gRPC client → gRPC server, continuing the W3C
// traceparent of the REST client; the gateway's readiness checks make no
// span.
func TestRESTCallTracedOverOTLP(t *testing.T) {
	coll, addr := startCollector(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // export every 100 ms, not every 5 s
	p := startServer(t, "-otlp-endpoint", addr, "-trace-sample", "1")

	const traceID, clientSpan = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	req, err := http.NewRequest(http.MethodPost, "http://"+p.http+"/v1/hi", strings.NewReader(`{"toWho":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/hi: %s", resp.Status)
	}
	testkit.Eventually(t, 10*time.Second, "three spans of the trace at the collector", func() bool { return len(coll.trace(traceID)) >= 3 })

	spans := coll.trace(traceID)
	find := func(kind tracepb.Span_SpanKind, name string) receivedSpan {
		for _, s := range spans {
			if s.GetKind() == kind && s.GetName() == name {
				return s
			}
		}
		t.Fatalf("no %v span %q in %v", kind, name, names(spans))
		return receivedSpan{}
	}
	httpSpan := find(tracepb.Span_SPAN_KIND_SERVER, "POST /v1/hi")
	grpcClient := find(tracepb.Span_SPAN_KIND_CLIENT, "hello.v1.Hello/Hi")
	grpcServer := find(tracepb.Span_SPAN_KIND_SERVER, "hello.v1.Hello/Hi")
	if len(spans) != 3 {
		t.Errorf("spans of the trace: %v, want those three", names(spans))
	}
	for _, l := range []struct {
		child  receivedSpan
		parent string
		what   string
	}{
		{httpSpan, clientSpan, "the REST client's traceparent"},
		{grpcClient, hex.EncodeToString(httpSpan.GetSpanId()), "the HTTP server span"},
		{grpcServer, hex.EncodeToString(grpcClient.GetSpanId()), "the gRPC client span"},
	} {
		if got := hex.EncodeToString(l.child.GetParentSpanId()); got != l.parent {
			t.Errorf("%v %s: parent %s, want %s (%s)", l.child.GetKind(), l.child.GetName(), got, l.parent, l.what)
		}
		if l.child.service != serviceName {
			t.Errorf("%s: service.name %q, want %q", l.child.GetName(), l.child.service, serviceName)
		}
	}
	for _, s := range coll.all() {
		if strings.Contains(s.GetName(), "grpc.health") {
			t.Errorf("a health check was traced: %s", s.GetName())
		}
	}
}

func names(spans []receivedSpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.GetKind().String()+" "+s.GetName())
	}
	return out
}

// A sampling fraction outside 0..1 is refused at start, by name.
func TestTraceSampleOutOfRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "-otlp-endpoint", "127.0.0.1:4317", "-trace-sample", "2",
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "", "-admin-addr", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-trace-sample 2: want a fraction from 0 to 1") {
		t.Errorf("server -trace-sample 2: %v\n%s\nwant an exit naming the flag and the range", err, out)
	}
}
