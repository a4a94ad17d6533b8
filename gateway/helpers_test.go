package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

var quiet = slog.New(slog.DiscardHandler)

// backend is a rotor gRPC server with the example Hello service on a
// loopback port.
type backend struct {
	srv  *server.Server
	addr string

	mu sync.Mutex
	md metadata.MD // incoming metadata of the last unary call
}

func startBackend(t testing.TB, name string, opts ...server.Option) *backend {
	t.Helper()
	b := &backend{}
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		b.mu.Lock()
		b.md = md
		b.mu.Unlock()
		return h(ctx, req)
	}
	opts = append([]server.Option{server.WithLogger(quiet), server.WithUnaryInterceptors(record)}, opts...)
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, &testkit.Hello{Name: name})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	b.srv, b.addr = srv, lis.Addr().String()
	return b
}

func (b *backend) lastMD(t *testing.T) metadata.MD {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.md == nil {
		t.Fatal("the backend saw no call")
	}
	return b.md
}

// startGateway serves a Gateway for cfg on a loopback port and returns it
// with its base URL. cfg gets the Hello service and the backend's endpoint
// unless it names its own.
func startGateway(t testing.TB, b *backend, cfg gateway.Config) (*gateway.Gateway, string) {
	t.Helper()
	if cfg.Fn == nil && cfg.Register == nil {
		cfg.Fn = hellov1.RegisterHelloHandlerFromEndpoint
	}
	if cfg.Endpoint == "" && cfg.GrpcPort == "" {
		cfg.Endpoint = b.addr
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	gw, err := gateway.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(lis) }()
	t.Cleanup(func() { _ = gw.Close() })
	return gw, "http://" + lis.Addr().String()
}

// do sends one request and returns the response with its body read.
func do(t testing.TB, c *http.Client, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// gwError is grpc-gateway's JSON error body (google.rpc.Status).
type gwError struct {
	Code    *int              `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

func parseError(t testing.TB, body string) gwError {
	t.Helper()
	var e gwError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code == nil || e.Details == nil {
		t.Fatalf("body %q is not a grpc-gateway error (code, message, details): %v", body, err)
	}
	return e
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
