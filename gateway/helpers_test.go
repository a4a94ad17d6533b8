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

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

var quiet = slog.New(slog.DiscardHandler)

// backend is a rotor gRPC server with a Hello service on a loopback port,
// which records the incoming metadata of the Hello calls it serves.
type backend struct {
	srv  *server.Server
	addr string
	md   mdRecorder
}

// startBackend starts a backend with the fixture Hello service named name.
func startBackend(t testing.TB, name string, opts ...server.Option) *backend {
	t.Helper()
	return startBackendFor(t, &testkit.Hello{Name: name}, opts...)
}

// startBackendFor starts a backend serving svc; opts come after a quiet
// logger and the interceptors that record metadata.
func startBackendFor(t testing.TB, svc hellov1.HelloServer, opts ...server.Option) *backend {
	t.Helper()
	b := &backend{}
	// Only the Hello service's calls: the gateway's own health checks and
	// watches must not overwrite what a test's request carried.
	hello := "/" + hellov1.Hello_ServiceDesc.ServiceName + "/"
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, hello) {
			b.md.set(ctx)
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, hello) {
			b.md.set(ss.Context())
		}
		return h(srv, ss)
	}
	opts = append([]server.Option{server.WithLogger(quiet), server.WithUnaryInterceptors(unary), server.WithStreamInterceptors(stream)}, opts...)
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, svc)
	b.srv, b.addr = srv, testkit.Serve(t, srv)
	return b
}

func (b *backend) lastMD(t *testing.T) metadata.MD {
	t.Helper()
	md := b.md.last()
	if md == nil {
		t.Fatal("the backend saw no call")
	}
	return md
}

// mdRecorder keeps the incoming metadata of a server's last call.
type mdRecorder struct {
	mu sync.Mutex
	md metadata.MD
}

func (r *mdRecorder) set(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.md = md
	r.mu.Unlock()
}

func (r *mdRecorder) last() metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.md
}

// take returns the last call's metadata and forgets it.
func (r *mdRecorder) take() metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	md := r.md
	r.md = nil
	return md
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
