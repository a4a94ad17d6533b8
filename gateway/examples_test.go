package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/gateway"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The classic article's server, on rotor: the gRPC server and the REST
// gateway in one process, each stopping gracefully on SIGTERM.
func Example() {
	srv, err := server.New()
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, &hello.Service{Name: hello.Identity()})

	go func() {
		err := gateway.RegisterGRPCGateway(&gateway.Config{
			Fn:       hellov1.RegisterHelloHandlerFromEndpoint,
			GrpcPort: ":50051",
		})
		if err != nil {
			log.Fatal(err)
		}
	}()
	if err := srv.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Joining the gateway to the gRPC server's drain: when the server's Shutdown
// reaches its drain step (after ShutdownDelay, with /readyz already 503), it
// shuts the gateway down in step.
func ExampleGateway_Shutdown() {
	srv, err := server.New(server.WithShutdownDelay(0), server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, &hello.Service{Name: "pod-1"})
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(grpcLis)

	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn:           hellov1.RegisterHelloHandlerFromEndpoint,
		GRPCEndpoint: grpcLis.Addr().String(),
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	gwStopped := make(chan struct{})
	srv.RegisterOnDrain(func(ctx context.Context) {
		defer close(gwStopped)
		_ = gw.Shutdown(ctx) // ctx ends at the drain deadline
	})
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go gw.Serve(httpLis)

	resp, err := http.Post("http://"+httpLis.Addr().String()+"/v1/hi", "application/json",
		strings.NewReader(`{"to_who":"you","message":"hello"}`))
	if err != nil {
		log.Fatal(err)
	}
	var hi struct{ FromWho, Message string }
	_ = json.NewDecoder(resp.Body).Decode(&hi)
	resp.Body.Close()
	fmt.Println(resp.Status, hi.FromWho, hi.Message)

	// In a real server, srv.Run calls Shutdown on SIGTERM.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	<-gwStopped
	_, err = http.Get("http://" + httpLis.Addr().String() + "/healthz")
	fmt.Println("gateway stopped:", err != nil)
	// Output:
	// 200 OK pod-1 hi you, you said "hello"
	// gateway stopped: true
}

// A gateway that runs as its own Deployment: it dials every pod of the gRPC
// server's headless Service and round-robins over them, and its own
// connections rotate so that REST clients spread over the gateway's pods.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := gateway.Run(ctx, gateway.Config{
		Fn:           hellov1.RegisterHelloHandlerFromEndpoint,
		GRPCEndpoint: "dns:///hello-headless.default.svc.cluster.local:50051",
		HTTPAddr:     ":8080",
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Serving the gateway from an http.Server of your own: set ConnContext for
// connection rotation, and the timeouts yourself.
func ExampleGateway_Handler() {
	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn:       hellov1.RegisterHelloHandlerFromEndpoint,
		GrpcPort: ":50051",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()
	hs := &http.Server{
		Addr:              ":8080",
		Handler:           gw.Handler(),
		ConnContext:       gw.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	log.Fatal(hs.ListenAndServe())
}
