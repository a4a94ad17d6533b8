package interceptors_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// discard is the logger of tests and benchmarks that do not read the log:
// JSON, as in production, to io.Discard.
var discard = slog.New(slog.NewJSONHandler(io.Discard, nil))

func TestMetricsScrape(t *testing.T) {
	chain, reg := newChain(t, interceptors.WithLogger(discard))
	cm, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ends := newConnEnds(cm)
	addr := serve(t, append(chain.ServerOptions(), grpc.StatsHandler(ends))...)

	// Two connections through the stats handler path; close the second.
	a, b := dial(t, addr), dial(t, addr)
	for range 5 {
		mustHi(t, a)
	}
	mustHi(t, b)
	mustHi(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ends.wait(t)
	// A rotation as rotor's Server reports it.
	cm.ConnDraining("age")

	mfs := scrape(t, interceptors.MetricsHandler(reg))
	hiOK := map[string]string{"grpc_service": "hello.v1.Hello", "grpc_method": "Hi", "grpc_type": "unary", "grpc_code": "OK"}
	if got := value(t, mfs, "grpc_server_handled_total", hiOK); got != 7 {
		t.Errorf("grpc_server_handled_total%v = %v, want 7", hiOK, got)
	}
	hiLatency := map[string]string{"grpc_service": "hello.v1.Hello", "grpc_method": "Hi"}
	if got := find(t, mfs, "grpc_server_handling_seconds", hiLatency).GetHistogram().GetSampleCount(); got != 7 {
		t.Errorf("grpc_server_handling_seconds count = %v, want 7", got)
	}
	expectValues(t, mfs, []sample{
		{"rotor_connections_open", nil, 1},
		{"rotor_connections_opened_total", nil, 2},
		{"rotor_connections_closed_total", map[string]string{"reason": "unknown"}, 1},
		{"rotor_connections_closed_total", map[string]string{"reason": "age"}, 0},
		{"rotor_rotations_total", map[string]string{"reason": "age"}, 1},
		{"rotor_rotations_total", map[string]string{"reason": "shutdown"}, 0},
	})
	expectHistogram(t, mfs, "rotor_connection_rpcs", 1, 2) // one connection with 2 calls
	if n := find(t, mfs, "rotor_connection_lifetime_seconds", nil).GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("rotor_connection_lifetime_seconds count = %d, want 1", n)
	}
}

func TestRecovery(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		name := map[bool]string{false: "unary", true: "stream"}[streaming]
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			chain, reg := newChain(t, interceptors.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			cc := dial(t, serve(t, chain.ServerOptions()...))

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if streaming {
				var st grpc.ServerStreamingClient[hellov1.HiStreamResponse]
				st, err = hellov1.NewHelloClient(cc).HiStream(ctx, &hellov1.HiStreamRequest{Message: "panic"})
				if err == nil {
					_, err = st.Recv()
				}
			} else {
				_, err = hi(t, cc, "panic")
			}
			if status.Code(err) != codes.Internal {
				t.Fatalf("panicking call: %v, want code Internal", err)
			}
			if strings.Contains(status.Convert(err).Message(), secret) {
				t.Errorf("the client got the panic value: %q", status.Convert(err).Message())
			}
			mustHi(t, cc) // the server keeps serving

			panics := withMsg(logs.records(t), "panic recovered")
			if len(panics) != 1 {
				t.Fatalf("%d panic records, want 1; log:\n%v", len(panics), logs.records(t))
			}
			p := panics[0]
			if p["level"] != "ERROR" || p["panic"] != secret {
				t.Errorf("panic record %v: want level ERROR and panic %q", p, secret)
			}
			if stack, _ := p["stack"].(string); !strings.Contains(stack, "interceptors_test.helloService.Hi") {
				t.Errorf("panic record has no stack through the handler:\n%s", stack)
			}
			// Recovery runs inside metrics and logging: both saw Internal.
			method := map[bool]string{false: "Hi", true: "HiStream"}[streaming]
			byCode := map[string]int{}
			for _, r := range withMsg(logs.records(t), "finished call") {
				if r["grpc.method"] == method {
					byCode[r["grpc.code"].(string)]++
				}
			}
			if byCode["Internal"] != 1 {
				t.Errorf("finished call lines of %s by code: %v, want one Internal", method, byCode)
			}
			mfs := scrape(t, interceptors.MetricsHandler(reg))
			if got := value(t, mfs, "grpc_server_handled_total", map[string]string{"grpc_method": method, "grpc_code": "Internal"}); got != 1 {
				t.Errorf("grpc_server_handled_total{%s, Internal} = %v, want 1", method, got)
			}
		})
	}
}

func TestLogging(t *testing.T) {
	for _, c := range []struct {
		name       string
		opts       []interceptors.Option
		wantHealth int
	}{
		{"default skips health checks", nil, 0},
		{"WithLogHealthChecks", []interceptors.Option{interceptors.WithLogHealthChecks()}, 1},
		{"WithLoggingOptions", []interceptors.Option{interceptors.WithLoggingOptions()}, 0},
		{"WithLoggingOptions and WithLogHealthChecks", []interceptors.Option{interceptors.WithLoggingOptions(), interceptors.WithLogHealthChecks()}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuffer
			opts := append([]interceptors.Option{interceptors.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))}, c.opts...)
			chain, _ := newChain(t, opts...)
			cc := dial(t, serve(t, chain.ServerOptions()...))

			mustHi(t, cc)
			mustHi(t, cc)
			hiStream(t, cc, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			// Fair share's load queries between pods are never logged
			// (this server does not implement them: the call still
			// passes the interceptors).
			if _, err := fairsharev1.NewLoadServiceClient(cc).GetLoad(ctx, &fairsharev1.GetLoadRequest{}); status.Code(err) != codes.Unimplemented {
				t.Fatalf("GetLoad: %v, want Unimplemented", err)
			}
			// The logging interceptor writes its line before grpc-go sends
			// the call's status, so every line is in by now.
			recs := withMsg(logs.records(t), "finished call")

			byMethod := map[string]int{}
			for _, r := range recs {
				byMethod[r["grpc.service"].(string)+"/"+r["grpc.method"].(string)]++
			}
			want := map[string]int{"hello.v1.Hello/Hi": 2, "hello.v1.Hello/HiStream": 1}
			if c.wantHealth > 0 {
				want["grpc.health.v1.Health/Check"] = c.wantHealth
			}
			if !maps.Equal(byMethod, want) {
				t.Errorf("lines per method %v, want %v", byMethod, want)
			}
			if len(withMsg(logs.records(t), "started call")) != 0 {
				t.Error("started call lines logged; want one line per call")
			}
			for _, r := range recs {
				if r["grpc.code"] != "OK" {
					t.Errorf("line %v: grpc.code %v, want OK", r, r["grpc.code"])
				}
				if _, ok := r["grpc.time_us"].(float64); !ok {
					t.Errorf("line %v: grpc.time_us is %T, want a number", r, r["grpc.time_us"])
				}
				if p, _ := r["peer.address"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("line %v: peer.address %q, want the client's loopback address", r, p)
				}
			}
		})
	}
}

// TestCallLine checks what the call line says beyond the happy path: the
// code and level of failed calls (the code the client got and the metrics
// counted), fields added by a handler and by an outer interceptor, the
// logger's own attributes, the method type of a stream, and that a logger's
// level filters lines.
func TestCallLine(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil)).With("pod", "pod-a")
	chain, reg := newChain(t, interceptors.WithLogger(logger))
	// A user's interceptor before the chain, adding a field for the call.
	tenant := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(logging.InjectFields(ctx, logging.Fields{"tenant", "t-1"}), req)
	}
	cc := dial(t, serve(t,
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{tenant}, chain.Unary()...)...),
		grpc.ChainStreamInterceptor(chain.Stream()...)))

	for _, c := range []struct {
		message string
		want    codes.Code
	}{{"fail", codes.Unavailable}, {"field", codes.OK}, {"canceled", codes.Canceled}} {
		if _, err := hi(t, cc, c.message); status.Code(err) != c.want {
			t.Fatalf("Hi(%s): %v, want %v", c.message, err, c.want)
		}
	}
	hiStream(t, cc, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := hellov1.NewHelloClient(cc).HiStream(ctx, &hellov1.HiStreamRequest{Message: "eof"})
	for err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unknown {
		t.Fatalf("HiStream returning io.EOF: %v, want Unknown", err)
	}

	recs := withMsg(logs.records(t), "finished call")
	want := []struct{ method, code, level string }{
		{"Hi", "Unavailable", "WARN"},
		{"Hi", "OK", "INFO"},
		{"Hi", "Canceled", "INFO"},
		{"HiStream", "OK", "INFO"},
		{"HiStream", "Unknown", "ERROR"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d finished call lines, want %d:\n%v", len(recs), len(want), recs)
	}
	mfs := scrape(t, interceptors.MetricsHandler(reg))
	for i, w := range want {
		r := recs[i]
		if r["grpc.method"] != w.method || r["grpc.code"] != w.code || r["level"] != w.level {
			t.Errorf("line %d: %v %v at %v, want %s %s at %s", i, r["grpc.method"], r["grpc.code"], r["level"], w.method, w.code, w.level)
		}
		labels := map[string]string{"grpc_method": w.method, "grpc_code": w.code}
		if got := value(t, mfs, "grpc_server_handled_total", labels); got != 1 {
			t.Errorf("grpc_server_handled_total%v = %v, want 1, as logged", labels, got)
		}
		if _, hasErr := r["grpc.error"]; hasErr != (w.code != "OK") {
			t.Errorf("line %d (%s): grpc.error %v", i, w.code, r["grpc.error"])
		}
		if us, ok := r["grpc.time_us"].(float64); !ok || us != math.Trunc(us) || us < 0 {
			t.Errorf("line %d: grpc.time_us %v, want whole microseconds", i, r["grpc.time_us"])
		}
		if _, ok := r["grpc.time_ms"]; ok {
			t.Errorf("line %d has grpc.time_ms as well", i)
		}
		if r["pod"] != "pod-a" {
			t.Errorf("line %d: pod %v, want the logger's own attribute pod-a", i, r["pod"])
		}
		wantType, wantTenant := "unary", "t-1"
		if w.method == "HiStream" {
			wantType, wantTenant = "server_stream", ""
		}
		if r["grpc.method_type"] != wantType {
			t.Errorf("line %d: grpc.method_type %v, want %s", i, r["grpc.method_type"], wantType)
		}
		if tenant, _ := r["tenant"].(string); tenant != wantTenant {
			t.Errorf("line %d: tenant %q, want %q (injected by the outer interceptor)", i, tenant, wantTenant)
		}
	}
	if e, _ := recs[0]["grpc.error"].(string); !strings.Contains(e, "try another pod") {
		t.Errorf("failed call: grpc.error %q, want the status message", e)
	}
	// JSON decoding keeps the last of duplicate keys: a handler's
	// grpc.service must not have been written after the chain's.
	if field := recs[1]; field["user"] != "u-1" || field["grpc.service"] != "hello.v1.Hello" {
		t.Errorf("call with logging.AddFields: user %v grpc.service %v, want u-1 and hello.v1.Hello", field["user"], field["grpc.service"])
	}

	t.Run("logger level", func(t *testing.T) {
		var logs syncBuffer
		warn := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		chain, _ := newChain(t, interceptors.WithLogger(warn))
		cc := dial(t, serve(t, chain.ServerOptions()...))
		mustHi(t, cc)
		_, _ = hi(t, cc, "fail")
		recs := withMsg(logs.records(t), "finished call")
		if len(recs) != 1 || recs[0]["grpc.code"] != "Unavailable" {
			t.Errorf("lines with the logger at WARN: %v, want only the failed call", recs)
		}
	})

	t.Run("WithLoggingOptions uses the middleware's interceptor", func(t *testing.T) {
		var logs syncBuffer
		chain, _ := newChain(t, interceptors.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
			interceptors.WithLoggingOptions(logging.WithLogOnEvents(logging.StartCall, logging.FinishCall)))
		cc := dial(t, serve(t, chain.ServerOptions()...))
		if _, err := hi(t, cc, "field"); err != nil {
			t.Fatal(err)
		}
		started, finished := withMsg(logs.records(t), "started call"), withMsg(logs.records(t), "finished call")
		if len(started) != 1 || len(finished) != 1 {
			t.Fatalf("%d started and %d finished lines, want 1 and 1", len(started), len(finished))
		}
		f := finished[0]
		if f["protocol"] != "grpc" || f["user"] != "u-1" || f["grpc.code"] != "OK" {
			t.Errorf("middleware's finished line %v: want protocol=grpc, user=u-1, grpc.code=OK", f)
		}
		if us, ok := f["grpc.time_us"].(float64); !ok || us != math.Trunc(us) {
			t.Errorf("middleware's grpc.time_us is %v, want rotor's whole microseconds", f["grpc.time_us"])
		}
		// A handler's context error: the client gets Canceled, and so does
		// the line (the middleware's own default says Unknown).
		if _, err := hi(t, cc, "canceled"); status.Code(err) != codes.Canceled {
			t.Fatalf("Hi(canceled): %v, want Canceled", err)
		}
		finished = withMsg(logs.records(t), "finished call")
		if got := finished[len(finished)-1]["grpc.code"]; got != "Canceled" {
			t.Errorf("middleware's line for a context error: grpc.code %v, want Canceled", got)
		}
	})
}

func TestServedBy(t *testing.T) {
	unary, stream := interceptors.ServedBy("pod-a")
	standalone := []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
	withChain, _ := newChain(t, interceptors.WithLogger(discard), interceptors.WithServedBy("pod-a"))
	defaultChain, _ := newChain(t, interceptors.WithLogger(discard))
	for _, c := range []struct {
		name string
		opts []grpc.ServerOption
		want []string
	}{
		{"ServedBy", standalone, []string{"pod-a"}},
		{"WithServedBy", withChain.ServerOptions(), []string{"pod-a"}},
		{"off by default", defaultChain.ServerOptions(), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc := dial(t, serve(t, c.opts...))
			var md metadata.MD
			if _, err := hi(t, cc, "hello", grpc.Header(&md)); err != nil {
				t.Fatal(err)
			}
			if got := md.Get(interceptors.ServedByHeader); !slices.Equal(got, c.want) {
				t.Errorf("unary: %s = %q, want %q", interceptors.ServedByHeader, got, c.want)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := hellov1.NewHelloClient(cc).HiStream(ctx, &hellov1.HiStreamRequest{Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			smd, err := st.Header()
			if err != nil {
				t.Fatal(err)
			}
			if got := smd.Get(interceptors.ServedByHeader); !slices.Equal(got, c.want) {
				t.Errorf("stream: %s = %q, want %q", interceptors.ServedByHeader, got, c.want)
			}
		})
	}
}
