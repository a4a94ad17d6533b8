package interceptors

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/stats"
)

// fakeConn is a connection as rotor's server describes it (conninfo.Conn).
type fakeConn struct {
	reason   string
	at       time.Time
	lameDuck bool
}

func (c fakeConn) GoAway() (string, time.Time) { return c.reason, c.at }
func (c fakeConn) LameDuck() bool              { return c.lameDuck }

// What a call's span says about its connection, for each thing that can
// have happened to it by the time the call ends.
func TestAnnotate(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	reason := attribute.String(GoAwayReasonKey, "fairshare")
	for _, c := range []struct {
		name      string
		conn      fakeConn
		wantAttrs []attribute.KeyValue
		wantEvent bool
	}{
		{"serving", fakeConn{}, nil, false},
		{"GOAWAY while the call ran", fakeConn{reason: "fairshare", at: start.Add(time.Second)}, []attribute.KeyValue{reason}, true},
		{"GOAWAY as the call began", fakeConn{reason: "fairshare", at: start}, []attribute.KeyValue{reason}, true},
		// The client sent the call before it read the GOAWAY: the call is
		// on a draining connection, but the GOAWAY did not hit it.
		{"GOAWAY before the call", fakeConn{reason: "fairshare", at: start.Add(-time.Millisecond)}, []attribute.KeyValue{reason}, false},
		{"lame duck", fakeConn{lameDuck: true}, []attribute.KeyValue{attribute.Bool(LameDuckKey, true)}, false},
		{"lame duck nudged", fakeConn{lameDuck: true, reason: "lameduck", at: start.Add(5 * time.Second)},
			[]attribute.KeyValue{attribute.Bool(LameDuckKey, true), attribute.String(GoAwayReasonKey, "lameduck")}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
			_, span := tp.Tracer("test").Start(context.Background(), "call")
			annotate(span, c.conn, start)
			span.End()
			s := sr.Ended()[0]
			if !slices.Equal(s.Attributes(), c.wantAttrs) {
				t.Errorf("attributes %v, want %v", s.Attributes(), c.wantAttrs)
			}
			events := s.Events()
			if !c.wantEvent {
				if len(events) != 0 {
					t.Errorf("events %v, want none", events)
				}
				return
			}
			if len(events) != 1 || events[0].Name != SpanEventGoAway || !events[0].Time.Equal(c.conn.at) ||
				!slices.Equal(events[0].Attributes, []attribute.KeyValue{attribute.String(GoAwayReasonKey, c.conn.reason)}) {
				t.Errorf("events %+v, want one %s at %v with reason %q", events, SpanEventGoAway, c.conn.at, c.conn.reason)
			}
		})
	}
}

// Probes and the kit's own exchanges are not traced; everything else is.
func TestTracedFilter(t *testing.T) {
	for method, want := range map[string]bool{
		"/hello.v1.Hello/Hi": true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": true,
		"/grpc.health.v1.Health/Check":                              false,
		"/grpc.health.v1.Health/Watch":                              false,
		"/rotor.fairshare.v1.LoadService/GetLoad":                   false,
		"/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics":     false,
	} {
		if got := traced(&stats.RPCTagInfo{FullMethodName: method}); got != want {
			t.Errorf("traced(%s) = %v, want %v", method, got, want)
		}
	}
}
