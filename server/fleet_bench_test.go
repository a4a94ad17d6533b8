package server_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/internal/cputime"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// BenchmarkFairShareExchange measures what fair share's exchange costs one
// pod in a fleet of n: n rotor servers with the default FairShare (but for
// a Tolerance that keeps the fleet's uneven connections in place) on
// loopback addresses (127.k.x.y, one port), talking real gRPC, their peers
// found through a DNS server (over TCP, as CoreDNS answers large sets) that
// each pod polls as WithPeerDNS does by default. Pod i holds i mod 4 idle client
// connections, 1.5 on average. Per pod it reports the CPU the whole process
// spent over the measured window divided by n (cpu%/pod, of one core: the
// exchange, asking and answering, the DNS polls and the DNS server, since
// nothing else runs), the bytes the load queries carried, both directions
// (B/s/pod), and how far its estimate of the fleet's mean connections was
// from 1.5 (est-err%, the mean over pods).
//
// A fleet of 1,000 needs more than the lab machine's two cores to run in
// real time, so it runs at a quarter of the pace (Interval 2 s, DNS polls
// four times as far apart, the stretch per peer included) and reports its
// CPU and bytes four times over: a round costs what it costs whatever its
// pace. pods=200/pace=1_4 checks the scaling against pods=200 in the same
// run.
// Under -short only pods=50 runs.
//
//	go test -run '^$' -bench FairShareExchange -benchtime 1x ./server/
func BenchmarkFairShareExchange(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
		pace int // the rounds' pace is 1/pace of the default
	}{
		{"pods=50", 50, 1},
		{"pods=200", 200, 1},
		{"pods=200/pace=1_4", 200, 4},
		{"pods=1000/pace=1_4", 1000, 4},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.n > 50 && testing.Short() {
				b.Skip("fleets over 50 pods take minutes; run without -short")
			}
			for range b.N {
				benchExchange(b, c.n, c.pace)
			}
		})
	}
}

func benchExchange(b *testing.B, n, pace int) {
	interval := time.Duration(pace) * 500 * time.Millisecond // FairShare's default Interval, slowed
	ips := fleetIPs(n)
	// Every pod listens on one port, bound for all of them before any
	// starts: a pod's outgoing connections take ephemeral ports on its
	// address, and could take the port a later pod needs.
	lis, port := listenAll(b, ips)
	b.Cleanup(server.SetPeerPollPerPeer(time.Duration(pace) * 50 * time.Millisecond)) // see WithPeerDNS
	dns := startDNS(b, "pods.test", ips...)
	var wire atomic.Int64
	est := make([]atomic.Uint64, n) // math.Float64bits of the last estimate
	var wg sync.WaitGroup
	b.Cleanup(wg.Wait) // after the servers' Close, which cleanups run first
	for i, ip := range ips {
		from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := from.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, n: &wire}, nil
		})
		srv, err := server.New(server.WithLogger(quietLog), server.WithShutdownDelay(server.Off), server.WithMaxConnectionAge(server.Off),
			server.WithObserver(estimateRecorder{events: newEvents(), last: &est[i]}),
			server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", time.Duration(pace)*server.DefaultPeerInterval),
			server.WithFairShare(server.FairShare{Interval: interval, Measure: server.MeasureConnections, Tolerance: 1000, DialOptions: []grpc.DialOption{dial}}))
		if err != nil {
			b.Fatal(err)
		}
		hellov1.RegisterHelloServer(srv, svc(ip))
		wg.Go(func() { _ = srv.Serve(lis[i]) })
		b.Cleanup(func() { srv.Close() })
		for range i % 4 {
			client := hellov1.NewHelloClient(testkit.Dial(b, net.JoinHostPort(ip, strconv.Itoa(port)), server.Config{}))
			if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	}

	time.Sleep(10 * interval) // every pod resolves, and its estimate settles
	window := 20 * interval
	cpu0, wire0, t0 := cputime.Process(), wire.Load(), time.Now()
	time.Sleep(window)
	cpu, bytes, took := cputime.Process()-cpu0, wire.Load()-wire0, time.Since(t0)
	var errSum float64
	for i := range est {
		errSum += math.Abs(math.Float64frombits(est[i].Load())-1.5) / 1.5
	}
	b.ReportMetric(float64(pace)*100*cpu.Seconds()/took.Seconds()/float64(n), "cpu%/pod")
	b.ReportMetric(float64(pace)*float64(bytes)/took.Seconds()/float64(n), "B/s/pod")
	b.ReportMetric(100*errSum/float64(n), "est-err%")
}

// fleetRuns counts the fleets benchmarked, for their addresses.
var fleetRuns atomic.Int64

// fleetIPs returns n loopback addresses for the pods of a new fleet,
// 127.k.x.y with k of its own: the connections of the last fleet linger in
// TIME_WAIT on theirs, on ports a listener would need.
func fleetIPs(n int) []string {
	fleet := fleetRuns.Add(1)
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.%d.%d.%d", 1+fleet%200, i/250, i%250+1)
	}
	return ips
}

// listenAll listens on one port on every address of ips, trying a few
// ports, and returns the listeners and the port.
func listenAll(b *testing.B, ips []string) ([]net.Listener, int) {
	for range 5 {
		probe, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			b.Skipf("cannot listen on %s (needs the whole 127/8 on loopback): %v", ips[0], err)
		}
		port := probe.Addr().(*net.TCPAddr).Port
		lis := []net.Listener{probe}
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lis = append(lis, l)
		}
		if len(lis) == len(ips) {
			return lis, port
		}
		for _, l := range lis {
			l.Close()
		}
	}
	b.Skip("found no port free on every address")
	return nil, 0
}

// countingConn counts the bytes a connection carries, both directions.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// estimateRecorder keeps a pod's last estimate of the fleet's mean
// connections. A round that heard no peer reports the pod's own count as
// the mean, and is left out.
type estimateRecorder struct {
	*events
	last *atomic.Uint64
}

func (e estimateRecorder) FairShareRound(peers, _ int, meanConns, _, _ float64, _ int) {
	if peers > 0 {
		e.last.Store(math.Float64bits(meanConns))
	}
}
