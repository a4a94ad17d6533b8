package interceptors_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// End to end with rotor's Server: ConnMetrics as its observer (and, to show
// it is not counted twice, as a stats handler too), the chain as its
// interceptors, and a shutdown that drains the one connection.
func TestRotorServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	chain, err := interceptors.NewChain(interceptors.WithRegisterer(reg), interceptors.WithLogger(discard))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(
		server.WithShutdownDelay(server.Off),
		server.WithLogger(discard),
		server.WithObserver(cm),
		server.WithGRPCOptions(grpc.StatsHandler(cm)),
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
	)
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serveRotor(t, srv)

	cc := dial(t, addr)
	for range 3 {
		mustHi(t, cc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil && !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}

	mfs := scrape(t, interceptors.MetricsHandler(reg))
	expectValues(t, mfs, []sample{
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Hi", "grpc_code": "OK"}, 3},
		{"rotor_connections_opened_total", nil, 1},
		{"rotor_connections_open", nil, 0},
		{"rotor_rotations_total", map[string]string{"reason": "shutdown"}, 1},
		{"rotor_connections_closed_total", map[string]string{"reason": "shutdown"}, 1},
		{"rotor_connections_closed_total", map[string]string{"reason": "unknown"}, 0},
	})
	expectHistogram(t, mfs, "rotor_connection_rpcs", 1, 3) // one connection with 3 calls
}

var _ server.FairShareObserver = (*interceptors.ConnMetrics)(nil)

// serveRotor registers the Hello service on srv and serves it on a loopback
// port; served receives what Serve returns.
func serveRotor(t *testing.T, srv *server.Server) (addr string, served <-chan error) {
	t.Helper()
	hellov1.RegisterHelloServer(srv, helloService{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	return lis.Addr().String(), done
}
