// Command echo is the pod server of kubelab's tests: it says which pod
// answered, over HTTP/1.1 (the body is the pod's name) and over gRPC (the
// standard health service, with the pod's name in the "pod-name" response
// header), so tests can see where kube-proxy, DNS or nginx sent them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	grpcPort := flag.Int("grpc", 0, "serve gRPC health on this port (0: no gRPC)")
	httpPort := flag.Int("http", 0, "serve HTTP/1.1 on this port (0: no HTTP)")
	termDelay := flag.Duration("term-delay", 0, "keep serving this long after SIGTERM, like a preStop sleep")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM, so only SIGKILL ends the process")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	name := os.Getenv("POD_NAME")

	// Subscribe before listening, so a SIGTERM right after readiness is seen.
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)

	var grpcServer *grpc.Server
	if *grpcPort != 0 {
		lis, err := net.Listen("tcp", fmt.Sprintf(":%d", *grpcPort))
		if err != nil {
			log.Fatal(err)
		}
		grpcServer = grpc.NewServer(grpc.UnaryInterceptor(
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				_ = grpc.SetHeader(ctx, metadata.Pairs("pod-name", name))
				return handler(ctx, req)
			}))
		healthpb.RegisterHealthServer(grpcServer, health.NewServer())
		go func() { _ = grpcServer.Serve(lis) }()
		log.Printf("%s: gRPC on %s", name, lis.Addr())
	}
	var httpServer *http.Server
	if *httpPort != 0 {
		lis, err := net.Listen("tcp", fmt.Sprintf(":%d", *httpPort))
		if err != nil {
			log.Fatal(err)
		}
		httpServer = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, name)
		})}
		go func() {
			if err := httpServer.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				log.Fatal(err)
			}
		}()
		log.Printf("%s: HTTP on %s", name, lis.Addr())
	}

	for {
		<-terms
		// The wall clock is shared with the test, which compares it with
		// the times it dialled.
		log.Printf("sigterm-at=%d", time.Now().UnixNano())
		if !*ignoreTerm {
			break
		}
	}
	time.Sleep(*termDelay)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if httpServer != nil {
		_ = httpServer.Shutdown(ctx)
	}
	if grpcServer != nil {
		stopped := make(chan struct{})
		go func() { grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			grpcServer.Stop()
		}
	}
	log.Printf("%s: exiting", name)
}
