package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rotorkit/rotor/gateway"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// greeter is the service of the examples.
type greeter struct {
	hellov1.UnimplementedHelloServer
}

func (greeter) Hi(_ context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	return &hellov1.HiResponse{FromWho: "pod-1", Message: fmt.Sprintf("hi %s, you said %q", req.GetToWho(), req.GetMessage())}, nil
}

// serveLocal serves on a free loopback port, for the examples that run,
// and returns the address.
func serveLocal(serve func(net.Listener) error) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go serve(lis)
	return lis.Addr().String()
}

// The classic article's server, on rotor: the gRPC server and the REST
// gateway in one process, each stopping gracefully on SIGTERM.
func Example() {
	srv, err := server.New()
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, greeter{})

	go func() {
		err := gateway.RegisterGRPCGateway(&gateway.Config{
			Fn:       hellov1.RegisterHelloHandlerFromEndpoint,
			GrpcPort: ":50051",
		})
		if err != nil {
			log.Fatal(err)
		}
	}()
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// The gateway beside the gRPC server in one process, stopping in step: the
// server's Shutdown starts the gateway's, and both follow the same rule
// (not ready at once, serve on for ShutdownDelay, then drain).
func ExampleGateway_Shutdown() {
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.New(server.WithShutdownDelay(server.Off), server.WithLogger(quiet))
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, greeter{})
	grpcAddr := serveLocal(srv.Serve)

	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn:            hellov1.RegisterHelloHandlerFromEndpoint,
		Endpoint:      grpcAddr,
		ShutdownDelay: server.Off,
		Logger:        quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.RegisterOnShutdown(func(ctx context.Context) { _ = gw.Shutdown(ctx) })
	httpAddr := serveLocal(gw.Serve)

	resp, err := http.Post("http://"+httpAddr+"/v1/hi", "application/json",
		strings.NewReader(`{"to_who":"you","message":"hello"}`))
	if err != nil {
		log.Fatal(err)
	}
	var hi struct{ FromWho, Message string }
	_ = json.NewDecoder(resp.Body).Decode(&hi)
	resp.Body.Close()
	fmt.Println(resp.Status, hi.FromWho, hi.Message)

	// In a real server, Run calls Shutdown when its context ends (SIGTERM);
	// Shutdown returns after the gateway's has.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	_, err = http.Get("http://" + httpAddr + "/healthz")
	fmt.Println("gateway stopped:", err != nil)
	// Output:
	// 200 OK pod-1 hi you, you said "hello"
	// gateway stopped: true
}

// A gateway that runs as its own Deployment: it dials every pod of the gRPC
// server's headless Service and round-robins over them, and its own
// connections rotate so that REST clients spread over the gateway's pods.
func ExampleGateway_Run() {
	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn:       hellov1.RegisterHelloHandlerFromEndpoint,
		Endpoint: "dns:///hello-headless.default.svc.cluster.local:50051",
		HTTPAddr: ":8080",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	if err := gw.Run(ctx); err != nil {
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

// Invalid settings are reported at once, each naming the field and what it
// may be.
func ExampleConfig_Validate() {
	err := gateway.Config{Fn: hellov1.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051", ReadTimeout: time.Millisecond}.Validate()
	fmt.Println(err)
	// Output: rotor: gateway.Config.ReadTimeout = 1ms is invalid: want at least 1s, 0 for the default 30s, or server.Off for no limit
}
