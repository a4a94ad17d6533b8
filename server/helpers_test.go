package server_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/rotorkit/rotor/example/hello"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// peers records the distinct client addresses (so TCP connections) that
// carried calls.
type peers struct {
	mu   sync.Mutex
	seen map[string]int
}

func newPeers() *peers { return &peers{seen: map[string]int{}} }

func (p *peers) add(ctx context.Context) {
	if pr, ok := peer.FromContext(ctx); ok {
		p.mu.Lock()
		p.seen[pr.Addr.String()]++
		p.mu.Unlock()
	}
}

func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

func (p *peers) options() []server.Option {
	return []server.Option{
		server.WithUnaryInterceptors(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p.add(ctx)
			return h(ctx, req)
		}),
		server.WithStreamInterceptors(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			p.add(ss.Context())
			return h(srv, ss)
		}),
	}
}

// events is a server.Observer that counts what it is told.
type events struct {
	mu       sync.Mutex
	opened   int
	draining map[string]int
	closed   map[string]int
	changed  chan struct{}
}

func newEvents() *events {
	return &events{draining: map[string]int{}, closed: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (e *events) ConnOpened() {
	e.mu.Lock()
	e.opened++
	e.mu.Unlock()
	e.poke()
}

func (e *events) ConnDraining(reason string) {
	e.mu.Lock()
	e.draining[reason]++
	e.mu.Unlock()
	e.poke()
}

func (e *events) ConnClosed(reason string, _ time.Duration, _ uint64) {
	e.mu.Lock()
	e.closed[reason]++
	e.mu.Unlock()
	e.poke()
}

func (e *events) poke() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *events) drained(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining[reason]
}

func (e *events) open() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.opened
	for _, c := range e.closed {
		n -= c
	}
	return n
}

// waitFor waits, event by event, until cond holds or the timeout passes.
func (e *events) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// start serves svc on a loopback port and returns its address.
func start(t *testing.T, svc hellov1.HelloServer, opts ...server.Option) (string, *server.Server) {
	t.Helper()
	srv, err := server.New(append([]server.Option{server.WithShutdownDelay(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve() = %v, want ErrServerClosed", err)
		}
	})
	return lis.Addr().String(), srv
}

// dial connects with the kit's recommended client options.
func dial(t *testing.T, addr string, cfg server.Config) hellov1.HelloClient {
	t.Helper()
	opts := append(server.ClientOptions(cfg), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return hellov1.NewHelloClient(cc)
}

func svc(name string) *hello.Service { return &hello.Service{Name: name} }

// listen serves srv on a loopback port without the Close cleanup of start.
func listen(t *testing.T, srv *server.Server) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), func() {
		srv.Close()
		<-served
	}
}

// clientConn is dial returning the connection itself.
func clientConn(t *testing.T, addr string, cfg server.Config) *grpc.ClientConn {
	t.Helper()
	opts := append(server.ClientOptions(cfg), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func loopbackListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis, lis.Addr().String()
}
