package testkit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/internal/hellosvc"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// Quiet is a logger that drops everything, for servers whose logs a test
// does not read.
var Quiet = slog.New(slog.DiscardHandler)

// Hello is the fixture service: Hi answers with Name, HiStream streams
// greetings and, unless IgnoreDrain, ends cleanly when its connection is
// sent GOAWAY (server.Draining).
type Hello struct {
	hellov1.UnimplementedHelloServer
	Name        string
	IgnoreDrain bool
}

// Hi answers one greeting as h.Name.
func (h *Hello) Hi(_ context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	return hellosvc.Greeting(h.Name, req), nil
}

// HiStream sends req.Count greetings (0: until the call ends), one every
// req.IntervalMs (default 100 ms); see hellosvc.Stream.
func (h *Hello) HiStream(req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
	return hellosvc.Stream(h.Name, h.IgnoreDrain, req, stream)
}

// Serve serves srv on a free loopback port until the test ends, and
// returns the address. Serve must end with ErrServerClosed, or the test
// fails.
func Serve(t testing.TB, srv *server.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve() = %v, want ErrServerClosed", err)
		}
	})
	return lis.Addr().String()
}

// StartRotor builds a rotor server from opts (after a quiet logger and no
// shutdown delay, which opts may override), registers svc (a Hello named
// "a" when nil) and serves it; see Serve.
func StartRotor(t testing.TB, svc hellov1.HelloServer, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(append([]server.Option{server.WithLogger(Quiet), server.WithShutdownDelay(server.Off)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if svc == nil {
		svc = &Hello{Name: "a"}
	}
	hellov1.RegisterHelloServer(srv, svc)
	return srv, Serve(t, srv)
}

// OpenStream opens a HiStream of greetings every 20 ms until ctx ends, and
// waits for the first, so that the stream is open on the server when it
// returns.
func OpenStream(ctx context.Context, t testing.TB, client hellov1.HelloClient) grpc.ServerStreamingClient[hellov1.HiStreamResponse] {
	t.Helper()
	stream, err := client.HiStream(ctx, &hellov1.HiStreamRequest{IntervalMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	return stream
}

// Dial connects to target with the kit's dial options for a server with
// cfg (plaintext unless opts say otherwise); the connection closes when the
// test ends.
func Dial(t testing.TB, target string, cfg server.Config, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, cfg.DialOptions()...)
	cc, err := grpc.NewClient(target, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Context returns a context that ends after timeout or when the test ends,
// for a test's calls.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Receive returns the next value from ch, and fails the test if none comes
// within timeout; what says what was awaited.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: not within %s", what, timeout)
		panic("unreachable")
	}
}

// Eventually polls cond every 10 ms until it holds, and fails the test if
// it does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
