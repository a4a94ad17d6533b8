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

// A handler that waited tens of milliseconds for a CPU once does not make
// its connection read as several times its load; a client whose calls
// really become costlier is followed within a few rounds; a handler that
// runs for seconds counts whole.
func TestRatesCapHandlerTimeSpikes(t *testing.T) {
	const perCall = 100e-6 // CallCost's default, in seconds
	t0 := time.Unix(1000, 0)
	// round advances c by one 500 ms round in which calls calls began and
	// returned handlers returned after each ran for each, and returns the
	// connection's load (CallCost per call plus handler time, in seconds
	// per second).
	round := func(c *conn, now *time.Time, calls, returned int, each time.Duration) float64 {
		c.calls.Add(uint64(calls))
		c.handled.Add(uint64(returned))
		c.busy.Add(int64(returned) * int64(each))
		*now = now.Add(500 * time.Millisecond)
		n, b := c.rates(*now, perCall)
		return n*perCall + b
	}
	c := &conn{opened: t0}
	now := t0
	var steady float64
	for range 40 { // 20 s at 2 calls/s of 50 µs each
		steady = round(c, &now, 1, 1, 50*time.Microsecond)
	}
	spiked := round(c, &now, 1, 1, 30*time.Millisecond)
	if spiked > 1.5*steady {
		t.Errorf("one call that waited 30 ms: load %.6f, %.2f × the steady %.6f; want at most 1.5 ×", spiked, spiked/steady, steady)
	}
	// Every call now costs 2 ms: twenty times what it did.
	var costly float64
	for range 20 { // 10 s
		costly = round(c, &now, 1, 1, 2*time.Millisecond)
	}
	if want := 2 * (perCall + 2e-3); costly < 0.8*want {
		t.Errorf("after 10 s of calls that cost 2 ms each: load %.6f, want at least 0.8 × %.6f", costly, want)
	}

	// A call every 5 s whose handler runs 2 s: it begins in one round
	// and returns four rounds later.
	long := &conn{opened: t0}
	now = t0
	var busy float64
	for k := range 120 { // 60 s
		began, returned := 0, 0
		if k%10 == 0 {
			began = 1
		}
		if k%10 == 4 && k > 0 {
			returned = 1
		}
		long.calls.Add(uint64(began))
		long.handled.Add(uint64(returned))
		long.busy.Add(int64(returned) * int64(2*time.Second))
		now = now.Add(500 * time.Millisecond)
		_, busy = long.rates(now, perCall)
	}
	// 2 s of handler time every 5 s: 0.4 s a second, give or take where
	// in the 5 s the smoothing is read.
	if busy < 0.25 || busy > 0.6 {
		t.Errorf("a 2 s handler every 5 s: handler time %.3f s a second, want about 0.4", busy)
	}
}
