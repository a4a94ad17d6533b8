package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
	"github.com/rotorkit/rotor/server"
)

// Three pods on 127.0.0.1-3 share a port, like pods behind a Service. All 12
// clients start on the first pod (as after a scale-up from one pod); each
// reconnect then lands on a random pod, as kube-proxy does. Fair share must
// bring every pod to exactly its share of 4 without losing a call, and then
// stop moving connections.
func TestFairShareBalancesAClusterIPFleet(t *testing.T) {
	ev := newEvents()
	f := startFleet(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, ev,
		server.FairShare{Interval: 200 * time.Millisecond, Cooldown: 600 * time.Millisecond, Spread: 100 * time.Millisecond})
	pods := f.pods
	// The "ClusterIP": the first 12 dials reach pod 0, later ones a random pod.
	var dials atomic.Int64
	clients := f.clients(t, 12, func() int {
		if dials.Add(1) > 12 {
			return rand.IntN(len(f.ips))
		}
		return 0
	})
	l := startLoad(clients)

	shares := func() string {
		var b strings.Builder
		for _, p := range pods {
			fmt.Fprintf(&b, "%d ", p.Stats().Clients)
		}
		return strings.TrimSpace(b.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for shares() != "4 4 4" {
		if time.Now().After(deadline) {
			t.Fatalf("client connections per pod = %s after 30 s, want 4 4 4", shares())
		}
		time.Sleep(50 * time.Millisecond)
	}
	shed := ev.drained("fairshare")
	// Balanced: nobody sheds any more.
	time.Sleep(2 * time.Second)
	if again := ev.drained("fairshare"); again != shed {
		t.Errorf("a balanced fleet still moved %d connections in 2 s", again-shed)
	}
	if s := shares(); s != "4 4 4" {
		t.Errorf("balance did not hold: %s", s)
	}
	l.stop(t)
	t.Logf("balanced after moving %d connections", shed)
}

// fleet runs one server per address of ips, all on one port, as the pods of a
// Service, with fair share on and their headless name served by a test DNS.
type fleet struct {
	ips  []string
	port int
	pods []*server.Server
}

func startFleet(t *testing.T, ips []string, obs server.Observer, fs server.FairShare) *fleet {
	t.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{ips: ips, port: probe.Addr().(*net.TCPAddr).Port}
	probe.Close()
	dns := startDNS(t, "pods.test", ips...)
	for i, ip := range ips {
		srv, err := server.New(server.WithConfig(noAge()), server.WithShutdownDelay(server.Off), server.WithObserver(obs), server.WithLogger(quietLog),
			server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", 100*time.Millisecond), server.WithFairShare(fs))
		if err != nil {
			t.Fatal(err)
		}
		hellov1.RegisterHelloServer(srv, svc(fmt.Sprint("pod", i)))
		lis, err := net.Listen("tcp", f.addr(i))
		if err != nil {
			t.Skipf("cannot listen on %s (needs the whole 127/8 on loopback): %v", ip, err)
		}
		go srv.Serve(lis)
		t.Cleanup(func() { srv.Close() })
		f.pods = append(f.pods, srv)
	}
	return f
}

func (f *fleet) addr(i int) string { return net.JoinHostPort(f.ips[i], fmt.Sprint(f.port)) }

// clients opens n client connections whose every dial goes where pick says,
// as kube-proxy would send them.
func (f *fleet) clients(t *testing.T, n int, pick func() int) []hellov1.HelloClient {
	t.Helper()
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", f.addr(pick()))
	}
	var out []hellov1.HelloClient
	for range n {
		opts := append(noAge().DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer))
		cc, err := grpc.NewClient("passthrough:///hello", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		out = append(out, hellov1.NewHelloClient(cc))
	}
	return out
}

func TestFairShareNeedsPeers(t *testing.T) {
	_, err := server.New(server.WithFairShare(server.FairShare{}))
	if err == nil || !strings.Contains(err.Error(), "WithPeerDNS") {
		t.Fatalf("New(WithFairShare) without WithPeerDNS = %v; want an error naming WithPeerDNS", err)
	}
	_, err = server.New(server.WithPeerDNS("pods", 0), server.WithFairShare(server.FairShare{Interval: time.Second, Cooldown: time.Millisecond}))
	if err == nil || !strings.Contains(err.Error(), "FairShare.Cooldown") {
		t.Fatalf("Cooldown below Interval: %v; want an error naming FairShare.Cooldown", err)
	}
}

// A client cannot exempt its connection from rotation by asking for load.
func TestLoadQueryDoesNotExemptAClient(t *testing.T) {
	dns := startDNS(t, "pods.test", "127.0.0.1")
	cfg := noAge()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg),
		server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", time.Second), server.WithFairShare(server.FairShare{}))
	cc := clientConn(t, addr, cfg)
	if _, err := hellov1.NewHelloClient(cc).Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fairsharev1.NewLoadServiceClient(cc).GetLoad(context.Background(), &fairsharev1.GetLoadRequest{}); err != nil {
		t.Fatal(err)
	}
	if res, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off}); res.Rotated != 1 || err != nil {
		t.Fatalf("Rotate() = %+v, %v; want the client's connection rotated although it asked for load", res, err)
	}
}

// Clients that come straight back to the pod that shed them (round_robin
// clients of a headless Service) do not make fair share churn: after futile
// sheds the pod waits longer and longer.
func TestFairShareBacksOffWhenClientsComeBack(t *testing.T) {
	sheds := &shedTimes{events: newEvents()}
	f := startFleet(t, []string{"127.0.0.1", "127.0.0.2"}, sheds,
		server.FairShare{Interval: 200 * time.Millisecond, Cooldown: 400 * time.Millisecond, Spread: 0})
	// Every client always reconnects to pod 0.
	clients := f.clients(t, 6, func() int { return 0 })
	l := startLoad(clients)
	time.Sleep(9 * time.Second)
	l.stop(t)
	// Without the back-off pod 0 sheds every time its connections are 1 s
	// old and the 0.4 s cooldown has passed; with it, after three futile
	// sheds, the waits double: 0.8, 1.6, 3.2 s.
	gaps := sheds.gaps()
	if len(gaps) < 4 {
		t.Fatalf("only %d sheds in 9 s (gaps %v); want at least 4", len(gaps)+1, gaps)
	}
	if last := gaps[len(gaps)-1]; last < 1500*time.Millisecond {
		t.Errorf("gaps between sheds %v: the last is %v, want the back-off to have grown it past 1.5 s", gaps, last)
	}
}

// shedTimes records when fair share sheds (one shed is one or more GOAWAYs
// within 0.5 s: the GOAWAYs of one shed are spread over 0.4 s).
type shedTimes struct {
	*events
	mu    sync.Mutex
	times []time.Time
}

func (s *shedTimes) ConnDraining(reason string) {
	s.events.ConnDraining(reason)
	if reason != "fairshare" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if n := len(s.times); n == 0 || now.Sub(s.times[n-1]) > 500*time.Millisecond {
		s.times = append(s.times, now)
	}
}

func (s *shedTimes) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(s.times); i++ {
		g = append(g, s.times[i].Sub(s.times[i-1]))
	}
	return g
}
