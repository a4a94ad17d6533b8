package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// BenchmarkLoadTracking measures what the kit adds to every unary call to
// know its connection's load (fair share's measure, ORCA's utilization):
// finding the call's connection, counting the call, timing the handler.
// It times the kit's interceptor around an empty handler, then, in the
// same run, a whole unary call to a plain grpc.Server over loopback
// (client and server, one call at a time), and reports (with the second) the
// first as a share of the second (tracking-%): what load tracking costs a call that
// does nothing, the worst case.
//
//	go test -run '^$' -bench LoadTracking ./server/
func BenchmarkLoadTracking(b *testing.B) {
	var tracking float64 // ns a call, from the first sub-benchmark
	b.Run("interceptor", func(b *testing.B) {
		s := &Server{}
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
		s.byAddr.Store(net.Addr(addr), &conn{srv: s})
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
		info := &grpc.UnaryServerInfo{FullMethod: "/hello.v1.Hello/Hi"}
		h := func(context.Context, any) (any, error) { return nil, nil }
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			_, _ = s.unary(ctx, nil, info, h)
		}
		tracking = float64(time.Since(start).Nanoseconds()) / float64(b.N)
	})
	b.Run("plain-call", func(b *testing.B) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		gs := grpc.NewServer()
		hellov1.RegisterHelloServer(gs, emptyHello{})
		go func() { _ = gs.Serve(lis) }()
		defer gs.Stop()
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		client := hellov1.NewHelloClient(cc)
		ctx := context.Background()
		if _, err := client.Hi(ctx, &hellov1.HiRequest{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			if _, err := client.Hi(ctx, &hellov1.HiRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		call := float64(time.Since(start).Nanoseconds()) / float64(b.N)
		b.ReportMetric(100*tracking/call, "tracking-%")
	})
}

// emptyHello answers Hi with an empty response: a call that does nothing.
type emptyHello struct {
	hellov1.UnimplementedHelloServer
}

func (emptyHello) Hi(context.Context, *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	return &hellov1.HiResponse{}, nil
}
