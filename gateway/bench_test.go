package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/cputime"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// BenchmarkGateway measures one REST→gRPC call (POST /v1/hi over a keep-alive
// loopback connection, to a rotor server on loopback) through a bare
// grpc-gateway ServeMux and through the kit's Gateway, with the same backend
// and client options in the same run. cpu-ns/op is the CPU time of the whole
// process (client, gateway and gRPC server) per call, steadier than ns/op on
// a busy machine. The package documentation records the ratio.
func BenchmarkGateway(b *testing.B) {
	be := startBackend(b, "pod-bench")
	bare := func(b *testing.B) string {
		mux := runtime.NewServeMux()
		opts := append(server.DefaultConfig().DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		if err := hellov1.RegisterHelloHandlerFromEndpoint(ctx, mux, be.addr, opts); err != nil {
			b.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: mux}
		go func() { _ = hs.Serve(lis) }()
		b.Cleanup(func() { _ = hs.Close() })
		return "http://" + lis.Addr().String()
	}
	rotor := func(b *testing.B) string {
		_, base := startGateway(b, be, gateway.Config{})
		return base
	}
	for _, bc := range []struct {
		name  string
		start func(*testing.B) string
	}{{"bare", bare}, {"rotor", rotor}} {
		b.Run(bc.name, func(b *testing.B) {
			url := bc.start(b) + "/v1/hi"
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			const body = `{"to_who":"bench","message":"hi"}`
			b.ReportAllocs()
			cpu := cputime.Process()
			for b.Loop() {
				resp, err := c.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			if cpu > 0 {
				// Client, gateway and gRPC server together, per call.
				b.ReportMetric(float64(cputime.Process()-cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
