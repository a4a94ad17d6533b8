package interceptors_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The default chain on a plain grpc.Server, with connection metrics through
// its stats handler, and /metrics on an admin listener.
func ExampleNewChain() {
	reg := interceptors.NewRegistry()
	chain, err := interceptors.NewChain(
		interceptors.WithRegisterer(reg),
		interceptors.WithLogger(slog.Default()),
	)
	if err != nil {
		log.Fatal(err)
	}
	conns, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(append(chain.ServerOptions(), grpc.StatsHandler(conns))...)
	hellov1.RegisterHelloServer(s, helloService{})
	chain.InitializeMetrics(s)

	admin := http.NewServeMux()
	admin.Handle("GET /metrics", interceptors.MetricsHandler(reg))
	go func() { log.Fatal(http.ListenAndServe("127.0.0.1:9090", admin)) }()

	lis, err := net.Listen("tcp", ":50051")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(s.Serve(lis))
}

// The chain and the connection metrics on rotor's Server: ConnMetrics is the
// Server's observer, so it learns why every connection went away.
func ExampleConnMetrics() {
	reg := interceptors.NewRegistry()
	chain, err := interceptors.NewChain(
		interceptors.WithRegisterer(reg),
		interceptors.WithServedBy(os.Getenv("POD_NAME")),
	)
	if err != nil {
		log.Fatal(err)
	}
	conns, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithObserver(conns),
	)
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, helloService{})
	chain.InitializeMetrics(srv)
	if err := srv.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Your own interceptors go around the chain (they see the Internal of a
// recovered panic) or inside it (their panics are recovered).
func ExampleChain_Unary() {
	chain, err := interceptors.NewChain(interceptors.WithoutMetrics())
	if err != nil {
		log.Fatal(err)
	}
	var auth, audit grpc.UnaryServerInterceptor = passThrough, passThrough
	unary := append([]grpc.UnaryServerInterceptor{audit}, chain.Unary()...)
	unary = append(unary, auth)
	_ = grpc.NewServer(grpc.ChainUnaryInterceptor(unary...))
	fmt.Println(len(unary), "unary interceptors")
	// Output: 4 unary interceptors
}

func passThrough(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(ctx, req)
}

func ExampleServedBy() {
	unary, stream := interceptors.ServedBy("pod-a")
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	hellov1.RegisterHelloServer(s, helloService{})
	cc, stop, err := serveInMemory(s)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	var md metadata.MD
	if _, err := hellov1.NewHelloClient(cc).Hi(context.Background(), &hellov1.HiRequest{ToWho: "you"}, grpc.Header(&md)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(interceptors.ServedByHeader, md.Get(interceptors.ServedByHeader))
	// Output: x-served-by [pod-a]
}

func ExampleMetricsHandler() {
	reg := interceptors.NewRegistry()
	conns, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		log.Fatal(err)
	}
	// What rotor's Server reports when a connection reaches its age.
	conns.ConnOpened()
	conns.ConnDraining("age")

	admin := httptest.NewServer(interceptors.MetricsHandler(reg))
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "rotor_connections_open ") || strings.HasPrefix(l, `rotor_rotations_total{reason="age"}`) {
			fmt.Println(l)
		}
	}
	// Output:
	// rotor_connections_open 1
	// rotor_rotations_total{reason="age"} 1
}
