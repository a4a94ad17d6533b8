// Command client is the article's client: it calls Hello.Hi in a loop and
// prints which instance served each call, so you can watch connections
// rotate and calls move between pods.
//
//	client -target localhost:50051            # one address (a ClusterIP)
//	client -target dns:///hello-headless:50051 # every pod of a headless Service, round_robin
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/interceptors"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h: the flag package has printed the usage; exit 0, as the
		// example server does.
	case err != nil:
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "localhost:50051", `server address: host:port (ClusterIP style) or dns:///name:port (headless, round_robin)`)
	interval := fs.Duration("interval", 500*time.Millisecond, "pause between calls")
	count := fs.Int("count", 0, "calls to make; 0 runs until interrupted")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 0 || *interval < 0 || *timeout <= 0 {
		return fmt.Errorf("-count and -interval must be 0 or more, -timeout more than 0")
	}
	opts := append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(*target, opts...)
	if err != nil {
		return err
	}
	defer cc.Close()
	client := hellov1.NewHelloClient(cc)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := map[string]int{}
	failed := 0
	for i := 1; *count == 0 || i <= *count; i++ {
		callCtx, cancel := context.WithTimeout(ctx, *timeout)
		var header metadata.MD
		resp, err := client.Hi(callCtx, &hellov1.HiRequest{ToWho: "rotor", Message: fmt.Sprintf("call %d", i)}, grpc.Header(&header))
		cancel()
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			failed++
			fmt.Printf("#%d failed: %v\n", i, err)
		} else {
			served[resp.GetFromWho()]++
			fmt.Printf("#%d served by %s (%s: %v)\n", i, resp.GetFromWho(), interceptors.ServedByHeader, header.Get(interceptors.ServedByHeader))
		}
		if *interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	names := make([]string, 0, len(served))
	for n := range served {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Println("calls per instance:")
	for _, n := range names {
		fmt.Printf("  %-30s %d\n", n, served[n])
	}
	if failed > 0 {
		return fmt.Errorf("%d calls failed", failed)
	}
	return nil
}
