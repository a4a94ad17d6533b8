package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// dialFrom makes a client's connections leave from ip, as a pod's load
// queries leave from its pod IP: the peers it asks learn of it from them.
func dialFrom(ip string) grpc.DialOption {
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return from.DialContext(ctx, "tcp", addr)
	})
}

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

func (e *events) closedWith(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed[reason]
}

func (e *events) opens() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opened
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
	srv, addr := testkit.StartRotor(t, svc, opts...)
	return addr, srv
}

// dial connects with the kit's recommended client options.
func dial(t *testing.T, addr string, cfg server.Config) hellov1.HelloClient {
	t.Helper()
	return hellov1.NewHelloClient(testkit.Dial(t, addr, cfg))
}

func svc(name string) *testkit.Hello { return &testkit.Hello{Name: name} }

// connect opens n client connections to addr, each with one call done.
func connect(t *testing.T, addr string, cfg server.Config, n int) {
	t.Helper()
	for range n {
		if _, err := dial(t, addr, cfg).Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
}

// clientConn is dial returning the connection itself.
func clientConn(t *testing.T, addr string, cfg server.Config) *grpc.ClientConn {
	t.Helper()
	return testkit.Dial(t, addr, cfg)
}

func loopbackListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() }) // in case the test ends before a server takes it
	return lis, lis.Addr().String()
}

// notifyCloseListener is a listener that closes closed when it is first
// closed, as the server does once its drain is over.
type notifyCloseListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func newNotifyCloseListener(l net.Listener) *notifyCloseListener {
	return &notifyCloseListener{Listener: l, closed: make(chan struct{})}
}

func (l *notifyCloseListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// quietFor waits until no connection was sent GOAWAY for reason during
// quiet, and returns how many were by then; the test fails if that takes
// longer than timeout.
func (e *events) quietFor(t *testing.T, reason string, quiet, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, since := e.drained(reason), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("connections were still sent GOAWAY for %s after %v (%d so far)", reason, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
		if n := e.drained(reason); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}
