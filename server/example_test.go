package server_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// greeter is the service of the examples.
type greeter struct {
	hellov1.UnimplementedHelloServer
}

func (greeter) Hi(_ context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	return &hellov1.HiResponse{FromWho: "pod-1", Message: "hi " + req.GetToWho()}, nil
}

// Let the kit run the server: Run serves until its context ends, then
// shuts down the way Kubernetes needs. In a program the context comes from
// SignalContext, so that SIGTERM starts the shutdown.
func ExampleNew() {
	srv, err := server.New(
		server.WithAddr("127.0.0.1:0"),
		server.WithMaxConnectionAge(time.Minute),
		server.WithShutdownDelay(server.Off), // no endpoints to wait for here
		server.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, greeter{})

	ctx, stop := server.SignalContext(context.Background())
	time.AfterFunc(100*time.Millisecond, stop) // as if SIGTERM came
	err = srv.Run(ctx)
	fmt.Println("Run returned", err)
	// Output: Run returned <nil>
}

// Keep your own grpc.NewServer: ServerOptions validates the Config and
// returns the options that apply it; clients get the matching DialOptions.
func ExampleConfig_ServerOptions() {
	cfg := server.Config{MaxConnectionAge: 2 * time.Minute} // the rest: defaults
	opts, err := cfg.ServerOptions()
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	hellov1.RegisterHelloServer(s, greeter{})
	defer s.Stop()

	_, err = server.Config{MaxConnectionAge: 500 * time.Millisecond}.ServerOptions()
	fmt.Println(err)
	// Output: rotor: server.Config.MaxConnectionAge = 500ms is invalid: want at least 1s, or 0 for the default, or server.Off to never rotate by age
}

// Rotate sends GOAWAY to chosen connections: here every one, however young.
// The client moves to a new connection without a failed call.
func ExampleServer_Rotate() {
	srv, err := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, greeter{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Close()

	cc, err := grpc.NewClient(lis.Addr().String(), append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	client := hellov1.NewHelloClient(cc)
	if _, err := client.Hi(context.Background(), &hellov1.HiRequest{ToWho: "a"}); err != nil {
		log.Fatal(err)
	}

	res, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off, Spread: server.Off})
	fmt.Println("rotated", res.Rotated, err)
	_, err = client.Hi(context.Background(), &hellov1.HiRequest{ToWho: "b"})
	fmt.Println("next call:", err)
	// Output:
	// rotated 1 <nil>
	// next call: <nil>
}

// A long-lived stream watches Draining and ends cleanly when its connection
// is sent GOAWAY, so that its client reopens it on a new connection before
// the grace runs out.
func ExampleDraining() {
	_ = func(req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-server.Draining(stream.Context()):
				return nil // the client reopens the stream elsewhere
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-tick.C:
				if err := stream.Send(&hellov1.HiStreamResponse{FromWho: "pod-1"}); err != nil {
					return err
				}
			}
		}
	}
}

// BindFlags gives every Config field a flag (and, with ApplyEnv, an
// environment variable), with the defaults as the flags' defaults; "off"
// turns a feature off.
func ExampleConfig_BindFlags() {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"-max-connection-age=2m", "-shutdown-delay=off"}); err != nil {
		log.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.MaxConnectionAge, cfg.ShutdownDelay == server.Off, cfg.DrainTimeout)
	// Output: 2m0s true 45s
}
