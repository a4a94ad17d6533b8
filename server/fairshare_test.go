package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/internal/lifecycle"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
	"github.com/rotorkit/rotor/server"
)

// Three pods on 127.0.0.1-3 share a port, like pods behind a Service. All 12
// clients start on the first pod (as after a scale-up from one pod); each
// reconnect then lands on a random pod, as kube-proxy does. Fair share by
// connections must bring every pod to exactly its share of 4 without losing
// a call, and then stop moving connections.
//
// Balanced is what a user reads (Stats: 4 4 4) and what fair share counts:
// every pod's last round heard both peers, counted 4 of a mean of 4 and
// shed nothing. Stats can read 4 4 4 before fair share does: a peer's new
// connection counts in Clients until its first load query (see Stats), and
// the counts a pod hears are its peers' last rounds'. A CI run that took
// Stats' 4 4 4 alone for balanced saw 2 connections move after it.
func TestFairShareBalancesAClusterIPFleet(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	ev := newEvents()
	rounds := make([]*lastRound, len(ips))
	for i := range rounds {
		rounds[i] = &lastRound{events: ev}
	}
	fs := server.FairShare{Measure: server.MeasureConnections, Interval: 200 * time.Millisecond, Cooldown: 600 * time.Millisecond, Spread: 100 * time.Millisecond}
	f := startFleetWith(t, ips, func(i int) server.Observer { return rounds[i] }, fs, quietLog)
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
	// What each pod's last round counted.
	saw := func() string {
		var b strings.Builder
		for _, r := range rounds {
			b.WriteString(r.String() + "; ")
		}
		return strings.TrimSuffix(b.String(), "; ")
	}
	const balanced = "4/4 from 2 peers, shed 0"
	want := strings.Repeat(balanced+"; ", len(ips)-1) + balanced
	deadline := time.Now().Add(30 * time.Second)
	for {
		byStats, byRounds := shares(), saw()
		if byStats == "4 4 4" && byRounds == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: client connections per pod = %s, want 4 4 4; pods' last rounds (own/mean) = %s, want %s each", byStats, byRounds, balanced)
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

// A pod's connections from its own address (its REST gateway dials its gRPC
// port) can go nowhere else: fair share neither counts nor sheds them. Pod
// 0 holds 6 busy ones, pod 1 none; nothing moves.
func TestFairShareLeavesThePodsOwnConnectionsAlone(t *testing.T) {
	for _, m := range []server.Measure{server.MeasureConnections, server.MeasureLoad} {
		t.Run(m.String(), func(t *testing.T) {
			ev := newEvents()
			f := startFleet(t, []string{"127.0.0.1", "127.0.0.2"}, ev,
				server.FairShare{Measure: m, Interval: 100 * time.Millisecond, MinAge: server.Off})
			var clients []hellov1.HelloClient
			for range 6 {
				// From 127.0.0.1, pod 0's own address.
				clients = append(clients, hellov1.NewHelloClient(testkit.Dial(t, f.addr(0), noAge())))
			}
			l := startLoad(clients)
			time.Sleep(2 * time.Second)
			l.stop(t)
			if n := ev.drained("fairshare"); n != 0 {
				t.Errorf("fair share sent GOAWAY to %d of the pod's own connections", n)
			}
		})
	}
}

// fleet runs one server per address of ips, all on one port, as the pods of a
// Service, with fair share on and their headless name served by a test DNS.
type fleet struct {
	ips  []string
	port int
	dns  *testDNS
	pods []*server.Server
	// cost, when set, is how long each call's handler takes (a sleep, so
	// that a call's load is exact and costs no CPU).
	cost time.Duration
	log  *slog.Logger // the pods'; quietLog unless started with another
}

// service is the Hello a pod of the fleet serves.
func (f *fleet) service(name string) hellov1.HelloServer {
	if f.cost > 0 {
		return &slow{testkit.Hello{Name: name}, f.cost}
	}
	return svc(name)
}

// slow is a Hello whose calls take cost.
type slow struct {
	testkit.Hello
	cost time.Duration
}

func (s *slow) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	time.Sleep(s.cost)
	return s.Hello.Hi(ctx, req)
}

func startFleet(t *testing.T, ips []string, obs server.Observer, fs server.FairShare, cost ...time.Duration) *fleet {
	t.Helper()
	return startFleetLogging(t, ips, obs, fs, quietLog, cost...)
}

// startFleetLogging is startFleet with the pods logging to log.
func startFleetLogging(t *testing.T, ips []string, obs server.Observer, fs server.FairShare, log *slog.Logger, cost ...time.Duration) *fleet {
	t.Helper()
	return startFleetWith(t, ips, func(int) server.Observer { return obs }, fs, log, cost...)
}

// startFleetWith is startFleetLogging with pod i observed by obs(i).
func startFleetWith(t *testing.T, ips []string, obs func(i int) server.Observer, fs server.FairShare, log *slog.Logger, cost ...time.Duration) *fleet {
	t.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{ips: ips, port: probe.Addr().(*net.TCPAddr).Port, log: log}
	if len(cost) > 0 {
		f.cost = cost[0]
	}
	probe.Close()
	f.dns = startDNS(t, "pods.test", ips...)
	for i := range ips {
		f.start(t, i, obs(i), fs)
	}
	return f
}

// lastRound observes one pod of a fleet: the fleet's events, and what the
// pod's last fair-share round counted.
type lastRound struct {
	*events
	roundMu sync.Mutex
	peers   int     // the peers that answered
	own     int     // the pod's client connections that have called
	mean    float64 // the fleet's mean of them
	shed    int     // the connections the round shed
	rounds  int     // the rounds seen; 0: none yet
}

func (r *lastRound) FairShareRound(peers, own int, mean, _, _ float64, shed int) {
	r.roundMu.Lock()
	defer r.roundMu.Unlock()
	r.peers, r.own, r.mean, r.shed = peers, own, mean, shed
	r.rounds++
}

// String gives the last round as "own/mean from peers peers, shed n", or
// "no round yet".
func (r *lastRound) String() string {
	r.roundMu.Lock()
	defer r.roundMu.Unlock()
	if r.rounds == 0 {
		return "no round yet"
	}
	return fmt.Sprintf("%d/%g from %d peers, shed %d", r.own, r.mean, r.peers, r.shed)
}

// start starts pod i of f.ips, which the fleet's DNS may or may not list.
// Its load queries leave from its own address, as a pod's do, so that the
// peers it asks learn of it from them.
func (f *fleet) start(t *testing.T, i int, obs server.Observer, fs server.FairShare) {
	t.Helper()
	fs.DialOptions = append(fs.DialOptions, dialFrom(f.ips[i]))
	srv, err := server.New(server.WithConfig(noAge()), server.WithShutdownDelay(server.Off), server.WithObserver(obs), server.WithLogger(f.log),
		server.WithPeerDNS("dns://"+f.dns.addr()+"/pods.test", 100*time.Millisecond), server.WithFairShare(fs))
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, f.service(fmt.Sprint("pod", i)))
	lis, err := net.Listen("tcp", f.addr(i))
	if err != nil {
		t.Skipf("cannot listen on %s (needs the whole 127/8 on loopback): %v", f.ips[i], err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	f.pods = append(f.pods, srv)
}

func (f *fleet) addr(i int) string { return net.JoinHostPort(f.ips[i], fmt.Sprint(f.port)) }

// clients opens n client connections whose every dial goes where pick says,
// as kube-proxy would send them. They come from an address of their own
// (127.0.9.1), as from another pod: a pod takes connections from its own
// address for its own (a REST gateway), which fair share leaves alone.
func (f *fleet) clients(t *testing.T, n int, pick func() int) []hellov1.HelloClient {
	t.Helper()
	var out []hellov1.HelloClient
	for range n {
		_, c := f.client(t, pick)
		out = append(out, c)
	}
	return out
}

// client opens one client connection as clients does, and returns it too.
// opts add to the dial options.
func (f *fleet) client(t *testing.T, pick func() int, opts ...grpc.DialOption) (*grpc.ClientConn, hellov1.HelloClient) {
	t.Helper()
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 9, 1)}}
		return d.DialContext(ctx, "tcp", f.addr(pick()))
	}
	opts = append(append(noAge().DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer)), opts...)
	cc, err := grpc.NewClient("passthrough:///hello", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, hellov1.NewHelloClient(cc)
}

// Fair share by load (the default) balances what the pods do, not how many
// connections they hold: 12 clients call at fixed rates, one three times as
// often as the others, every call takes 10 ms; all start on the first pod.
// The pods' loads must come within the hysteresis of the mean, no call may
// fail, and a balanced fleet must stop moving connections.
func TestFairShareBalancesLoad(t *testing.T) {
	ev := newEvents()
	f := startFleet(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, ev,
		server.FairShare{Interval: 200 * time.Millisecond, Cooldown: 600 * time.Millisecond, Spread: 100 * time.Millisecond}, 10*time.Millisecond)
	var dials atomic.Int64
	clients := f.clients(t, 12, func() int {
		if dials.Add(1) > 12 {
			return rand.IntN(len(f.ips))
		}
		return 0
	})
	rates := make([]time.Duration, len(clients))
	for i := range rates {
		rates[i] = 50 * time.Millisecond // 20 calls/s: a load of 0.2
	}
	rates[0] = 50 * time.Millisecond / 3 // 60 calls/s: 0.6
	l := startPaced(clients, rates)
	// The fleet's load is 2.8, 0.93 per pod. Once it has moved nothing for
	// 25 s, every pod's load must be within the 10 % hysteresis of the mean
	// (a little more for what a second's count varies), and it must go on
	// moving nothing. 25 s: a shed that only the load explains, by a pod at
	// the mean count, waits for loadOnlyWant (15 s), and a round within the
	// share starts that wait again, so two such sheds can come 15.5 s apart
	// or more (a client of one that came straight back goes again at once:
	// see keptBack): 25 s leaves room for a few such rounds. With -race a
	// handler's time swings and pods at the mean count shed by load after
	// that wait: in eight runs here (2 cores) the test took 32-128 s, its
	// fleet moving 13-23 connections, which left 3 min under a minute of
	// room; hence 5 min.
	quiet := ev.quietFor(t, "fairshare", 25*time.Second, 5*time.Minute)
	loads := l.podLoads(2*time.Second, 10*time.Millisecond)
	bound := 1.15
	if testkit.Race {
		// Calls run several times slower and a handler's time swings with
		// the detector's work: balance, yes, but not to the 10 % band.
		bound = 1.3
	}
	if r := maxOverMean(loads); r > bound {
		t.Errorf("pod loads %.2f once the fleet stopped moving: max/mean %.2f, want at most %.2f", loads, r, bound)
	}
	time.Sleep(2 * time.Second)
	if again := ev.drained("fairshare"); again != quiet && !testkit.Race {
		t.Errorf("a balanced fleet still moved %d connections in 2 s", again-quiet)
	}
	l.stopPaced(t)
	t.Logf("balanced (pod loads %.2f) after moving %d connections", loads, quiet)
}

func maxOverMean(xs []float64) float64 {
	sum, hi := 0.0, 0.0
	for _, x := range xs {
		sum += x
		hi = max(hi, x)
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return hi / (sum / float64(len(xs)))
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

// New warns when age rotation would keep undoing fair share's work, and
// names the setting to change.
func TestFairShareWarnsOfAShortAge(t *testing.T) {
	for _, c := range []struct {
		age  time.Duration
		warn bool
	}{
		{0, true}, // the default, 30 s
		{5 * time.Minute, false},
		{server.Off, false},
	} {
		var logged strings.Builder
		srv, err := server.New(server.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))),
			server.WithMaxConnectionAge(c.age), server.WithPeerDNS("pods", 0), server.WithFairShare(server.FairShare{}))
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got := strings.Contains(logged.String(), "set MaxConnectionAge to minutes"); got != c.warn {
			t.Errorf("MaxConnectionAge %v: warned %v, want %v; log:\n%s", c.age, got, c.warn, logged.String())
		}
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
	for _, tc := range []struct {
		measure server.Measure
		cost    time.Duration // a handler's time, for paced calls; 0: calls back to back
	}{
		{server.MeasureConnections, 0},
		{server.MeasureLoad, 2 * time.Millisecond},
	} {
		t.Run(tc.measure.String(), func(t *testing.T) {
			sheds := &shedTimes{events: newEvents()}
			f := startFleet(t, []string{"127.0.0.1", "127.0.0.2"}, sheds,
				server.FairShare{Measure: tc.measure, Interval: 200 * time.Millisecond, Cooldown: 400 * time.Millisecond}, tc.cost)
			// Six clients always reconnect to pod 0. One more stays on
			// pod 1, whose connections a shed is judged against (see
			// futileShed).
			clients := append(f.clients(t, 6, func() int { return 0 }), f.clients(t, 1, func() int { return 1 })...)
			if tc.cost == 0 {
				l := startLoad(clients)
				time.Sleep(9 * time.Second)
				l.stop(t)
			} else {
				every := make([]time.Duration, len(clients))
				for i := range every {
					every[i] = 10 * time.Millisecond
				}
				l := startPaced(clients, every)
				time.Sleep(9 * time.Second)
				l.stopPaced(t)
			}
			// Without the back-off pod 0 sheds every time its connections
			// are 1 s old and the 0.4 s cooldown has passed; with it, after
			// three futile sheds, the waits double: 0.8, 1.6, 3.2 s.
			gaps := sheds.gaps()
			if len(gaps) < 4 {
				t.Fatalf("only %d sheds in 9 s (gaps %v); want at least 5", len(gaps)+1, gaps)
			}
			if last := gaps[len(gaps)-1]; last < 1500*time.Millisecond {
				t.Errorf("gaps between sheds %v: the last is %v, want the back-off to have grown it past 1.5 s", gaps, last)
			}
		})
	}
}

// Slow round_robin clients that come straight back to the pod that shed
// them, and call it only seconds later, make it back off too: counted only
// from their first call, they left the pod looking within its share after
// each shed, and it forgot the shed before they called again.
func TestFairShareBacksOffWhenSlowClientsComeBack(t *testing.T) {
	for _, tc := range []struct {
		measure server.Measure
		cost    time.Duration // a handler's time
	}{
		{server.MeasureConnections, 0},
		{server.MeasureLoad, 2 * time.Millisecond},
	} {
		t.Run(tc.measure.String(), func(t *testing.T) {
			var logged testkit.Buffer
			backOff := &recordsOf{Handler: slog.NewTextHandler(&logged, nil), msg: "backing off", records: make(chan map[string]slog.Value, 1)}
			f := startFleetLogging(t, []string{"127.0.0.1", "127.0.0.2"}, nil,
				server.FairShare{Measure: tc.measure, Interval: 200 * time.Millisecond, Cooldown: 400 * time.Millisecond}, slog.New(backOff), tc.cost)
			// round_robin, as over a headless Service: a client whose
			// connection gets a GOAWAY reconnects at once, before it has
			// a call to make.
			rr := grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`)
			var clients []hellov1.HelloClient
			for i := range 7 {
				pod := 0 // six on pod 0, where they always come back
				if i == 6 {
					pod = 1 // one on pod 1, whose connections the sheds are judged against
				}
				_, c := f.client(t, func() int { return pod }, rr)
				if _, err := c.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			every := make([]time.Duration, len(clients))
			for i := range every {
				every[i] = 2 * time.Second // a client of 6 pods at 3 calls/s
			}
			l := startPaced(clients, every)
			defer l.stopPaced(t)
			// A shed at about 1 s, and then one per cooldown while the
			// pod is above its share, each judged futile: the fourth
			// begins the back-off (3 s into the test by connections, 4
			// to 6 s by load, in 5 runs). Without counting the clients
			// back but not called yet, the pod read each shed as one that
			// worked, or forgot it within its share: none in 15 s.
			select {
			case <-backOff.records:
			case <-time.After(15 * time.Second):
				t.Fatalf("no back-off in 15 s; log:\n%s", logged.String())
			}
		})
	}
}

// A shed's log line says what it moved and why: the pod's client
// connections and, in seconds per second, the loads of the connections it
// shed and the fleet's mean load per connection. Four clients, each at 20
// calls/s of 2 ms (and CallCost's 0.1 ms), all on pod 0 of 2: each
// connection's load is about 0.042, and so is the fleet's mean per
// connection (its mean per pod is twice that).
func TestFairShareLogsWhatItSheds(t *testing.T) {
	var logged testkit.Buffer
	shed := &recordsOf{Handler: slog.NewTextHandler(&logged, nil), msg: "fair share: shedding", records: make(chan map[string]slog.Value, 16)}
	f := startFleetLogging(t, []string{"127.0.0.1", "127.0.0.2"}, nil,
		server.FairShare{Interval: 200 * time.Millisecond, Cooldown: 400 * time.Millisecond}, slog.New(shed), 2*time.Millisecond)
	var dials atomic.Int64
	clients := f.clients(t, 4, func() int {
		if dials.Add(1) > 4 {
			return rand.IntN(len(f.ips))
		}
		return 0
	})
	every := make([]time.Duration, len(clients))
	for i := range every {
		every[i] = 50 * time.Millisecond
	}
	l := startPaced(clients, every)
	defer l.stopPaced(t)
	var rec map[string]slog.Value
	select {
	case rec = <-shed.records:
	case <-time.After(15 * time.Second):
		t.Fatalf("no shed in 15 s; log:\n%s", logged.String())
	}
	attr := func(key string, kind slog.Kind) slog.Value {
		t.Helper()
		v, ok := rec[key]
		if !ok || v.Kind() != kind {
			t.Fatalf("shed line %v: want %s of kind %s; log:\n%s", rec, key, kind, logged.String())
		}
		return v
	}
	if got := attr("connections", slog.KindInt64).Int64(); got != 4 {
		t.Errorf("connections = %d, want 4 (every client on the pod that shed)", got)
	}
	if got := attr("young", slog.KindInt64).Int64(); got != 0 {
		t.Errorf("young = %d, want 0 (no client had moved yet)", got)
	}
	loads, _ := attr("shed_loads", slog.KindAny).Any().([]float64)
	if n := attr("conns", slog.KindInt64).Int64(); n < 1 || int64(len(loads)) != n {
		t.Fatalf("shed_loads = %v for conns = %d; want one load per connection shed", rec["shed_loads"], n)
	}
	// A sleep overshoots, more so on a busy host (0.076 beside two busy
	// loops, under the race detector), and a steady client's first rate
	// reads low (see rates): the bounds catch another unit; the mean per
	// pod, twice per_conn, fails the check of the shed loads against it.
	perConn := attr("per_conn", slog.KindFloat64).Float64()
	if perConn < 0.02 || perConn > 0.2 {
		t.Errorf("per_conn = %.4f s/s, want about 0.042 (20 calls/s of 2.1 ms)", perConn)
	}
	for _, load := range loads {
		if load < 0.6*perConn || load > 1.6*perConn {
			t.Errorf("shed_loads %v: %.4f is not within 0.6 to 1.6 times per_conn %.4f, though every client calls alike", loads, load, perConn)
		}
	}
}

// A shed that waits and is no longer wanted says so at Debug, with how long
// it was wanted: how close a fleet comes to moving a connection. Pods 0 and
// 1 hold two clients each; one of pod 0's calls 10 times a second, the
// others twice: by load pod 0 is above its share, but by count it is not,
// so its shed waits loadOnlyWant (15 s). Four seconds in, the heavy client
// closes its connection, and the next round wants no shed.
func TestFairShareLogsAWaitThatEnded(t *testing.T) {
	var logged testkit.Buffer
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	ended := &recordsOf{Handler: slog.NewTextHandler(&logged, debug), msg: "fair share: a shed that waited is no longer wanted", records: make(chan map[string]slog.Value, 16)}
	f := startFleetLogging(t, []string{"127.0.0.1", "127.0.0.2"}, nil,
		server.FairShare{Interval: 200 * time.Millisecond, Cooldown: 400 * time.Millisecond}, slog.New(ended), 2*time.Millisecond)
	on := func(pod int) func() int { return func() int { return pod } }
	heavyConn, heavy := f.client(t, on(0))
	light := []hellov1.HelloClient{f.clients(t, 1, on(0))[0], f.clients(t, 1, on(1))[0], f.clients(t, 1, on(1))[0]}
	lights := startPaced(light, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond})
	defer lights.stopPaced(t)
	heavyLoad := startPaced([]hellov1.HelloClient{heavy}, []time.Duration{100 * time.Millisecond})
	time.Sleep(4 * time.Second)
	heavyLoad.stopPaced(t)
	heavyConn.Close()
	closed := time.Now()

	var rec map[string]slog.Value
	select {
	case rec = <-ended.records:
	case <-time.After(5 * time.Second):
		t.Fatalf("no line for the ended wait 5 s after the heavy client left; log:\n%s", logged.String())
	}
	if strings.Contains(logged.String(), "fair share: shedding") {
		t.Errorf("pod 0 shed, though by count it is at its share and its wait is 15 s; log:\n%s", logged.String())
	}
	v, ok := rec["waited"]
	if !ok || v.Kind() != slog.KindDuration {
		t.Fatalf("the line %v has no duration waited; log:\n%s", rec, logged.String())
	}
	// The wait begins once the clients' rates are known (about a second
	// after their first calls) and ends at the first round after the close.
	if w := v.Duration(); w < time.Second || w > 4*time.Second+time.Since(closed) {
		t.Errorf("waited = %v; want from 1 s up to the 4 s of the heavy client's calls; log:\n%s", w, logged.String())
	}
	// Its wait was loadOnlyWant's 15 s, less what it had waited by the
	// last round that wanted it, a round (200 ms) or so before this one.
	if l, ok := rec["left"]; !ok || l.Kind() != slog.KindDuration || l.Duration() < 15*time.Second-v.Duration() || l.Duration() > 16*time.Second-v.Duration() {
		t.Errorf("left = %v with waited %v; want 15 s less waited, up to a second more", rec["left"], v.Duration())
	}
	if c, ok := rec["connections"]; !ok || c.Kind() != slog.KindInt64 || c.Int64() != 1 {
		t.Errorf("connections = %v, want 1 (pod 0's light client, the heavy one gone)", rec["connections"])
	}
}

// recordsOf is a slog.Handler that also sends the attributes of each
// record whose message holds msg on records, while it has room.
type recordsOf struct {
	slog.Handler
	msg     string
	records chan map[string]slog.Value
}

func (h *recordsOf) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value
			return true
		})
		select {
		case h.records <- attrs:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *recordsOf) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(attrs)
	return &c
}

func (h *recordsOf) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}

// shedTimes records when fair share sheds (one shed is one or more GOAWAYs
// within 0.5 s: the GOAWAYs of one shed are spread over Spread, by default
// half the Interval: 0.1 s in the tests that use it).
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

// paced calls Hi on each client at its own fixed interval and counts the
// calls each pod answered, second by second.
type paced struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed atomic.Int64
	mu     sync.Mutex
	served []map[string]int // per second since the start
	start  time.Time
	first  error
}

func startPaced(clients []hellov1.HelloClient, every []time.Duration) *paced {
	ctx, cancel := context.WithCancel(context.Background())
	p := &paced{cancel: cancel, start: time.Now()}
	for i, c := range clients {
		p.wg.Go(func() {
			lifecycle.Every(ctx, every[i], func() {
				go func() {
					resp, err := c.Hi(context.Background(), &hellov1.HiRequest{})
					p.mu.Lock()
					defer p.mu.Unlock()
					if err != nil {
						p.failed.Add(1)
						if p.first == nil {
							p.first = err
						}
						return
					}
					sec := int(time.Since(p.start) / time.Second)
					for len(p.served) <= sec {
						p.served = append(p.served, map[string]int{})
					}
					p.served[sec][resp.GetFromWho()]++
				}()
			})
		})
	}
	return p
}

// podLoads waits for window and returns each pod's load over the whole
// seconds of it: calls answered per second × cost per call.
func (p *paced) podLoads(window time.Duration, cost time.Duration) []float64 {
	time.Sleep(window)
	p.mu.Lock()
	defer p.mu.Unlock()
	last := int(time.Since(p.start)/time.Second) - 1
	secs := int(window / time.Second)
	if last < secs || last >= len(p.served) {
		return nil
	}
	var loads []float64
	for _, pod := range []string{"pod0", "pod1", "pod2"} {
		n := 0
		for sec := last - secs + 1; sec <= last; sec++ {
			n += p.served[sec][pod]
		}
		loads = append(loads, float64(n)/float64(secs)*cost.Seconds())
	}
	return loads
}

func (p *paced) stopPaced(t *testing.T) {
	t.Helper()
	p.cancel()
	p.wg.Wait()
	time.Sleep(200 * time.Millisecond) // the calls in flight
	if n := p.failed.Load(); n != 0 {
		t.Errorf("%d calls failed; first: %v", n, p.first)
	}
}

// peersSeen records the peers that answered each fair-share round.
type peersSeen struct {
	*events
	last atomic.Int64
}

func (p *peersSeen) FairShareRound(peers, _ int, _, _, _ float64, _ int) { p.last.Store(int64(peers)) }

// A pod that starts announces itself to the peers it asks, and they pass
// the news on: the old pods, whose DNS (an hour between polls here) still
// lists only themselves, count the new pod within a few rounds.
func TestNewPodAnnouncesItself(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	oldDNS := startDNS(t, "pods.test", ips[:3]...)
	allDNS := startDNS(t, "pods.test", ips...)
	start := func(ip string, dns *testDNS, seen *peersSeen) {
		// A pod's queries leave from its own address, as pod IPs do.
		dial := dialFrom(ip)
		srv, err := server.New(server.WithConfig(noAge()), server.WithShutdownDelay(server.Off), server.WithLogger(quietLog), server.WithObserver(seen),
			server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", time.Hour),
			server.WithFairShare(server.FairShare{Interval: 200 * time.Millisecond, Sample: 1, DialOptions: []grpc.DialOption{dial}}))
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Skipf("cannot listen on %s (needs the whole 127/8 on loopback): %v", ip, err)
		}
		go srv.Serve(lis)
		t.Cleanup(func() { srv.Close() })
	}
	var old []*peersSeen
	for _, ip := range ips[:3] {
		seen := &peersSeen{events: newEvents()}
		old = append(old, seen)
		start(ip, oldDNS, seen)
	}
	// The old pods ask one peer a round: they find each other.
	testkit.Eventually(t, 5*time.Second, "the old pods answering each other", func() bool {
		return old[0].last.Load() == 1 && old[1].last.Load() == 1 && old[2].last.Load() == 1
	})
	begin := time.Now()
	start(ips[3], allDNS, &peersSeen{events: newEvents()})
	// Asking one peer a round, each old pod samples among 3 peers once it
	// knows the new one; what it knows shows in how it samples, so look at
	// the peer sets through the load service itself.
	testkit.Eventually(t, 5*time.Second, "every old pod knowing the new pod", func() bool {
		for _, ip := range ips[:3] {
			if !knowsPeer(t, net.JoinHostPort(ip, strconv.Itoa(port)), ips[3]) {
				return false
			}
		}
		return true
	})
	t.Logf("every old pod knew the new pod %v after it started", time.Since(begin).Round(time.Millisecond))
}

// knowsPeer asks the pod at addr for its load and reports whether it passes
// on news of ip (a peer it learnt of by announcement).
func knowsPeer(t *testing.T, addr, ip string) bool {
	t.Helper()
	cc := testkit.Dial(t, addr, server.Config{})
	resp, err := fairsharev1.NewLoadServiceClient(cc).GetLoad(context.Background(), &fairsharev1.GetLoadRequest{})
	if err != nil {
		return false
	}
	for _, p := range resp.GetRecentPeers() {
		if host, _, _ := net.SplitHostPort(p); host == ip {
			return true
		}
	}
	return false
}

// roundsAfter counts the fair-share rounds reported once stopped is set.
// Once block is set, the next report signals blocked and waits for
// release: an Observer that blocks (which Observer's doc rules out) stands
// for a round that is still running.
type roundsAfter struct {
	*events
	stopped atomic.Bool
	after   atomic.Int64
	block   atomic.Bool
	blocked chan struct{}
	release chan struct{}
	freed   sync.Once
}

// free lets a blocked report return and blocks no more; once or more.
func (r *roundsAfter) free() {
	r.freed.Do(func() {
		r.block.Store(false)
		close(r.release)
	})
}

func newRoundsAfter() *roundsAfter {
	return &roundsAfter{events: newEvents(), blocked: make(chan struct{}), release: make(chan struct{})}
}

func (r *roundsAfter) FairShareRound(_, _ int, _, _, _ float64, _ int) {
	if r.stopped.Load() {
		r.after.Add(1)
	}
	if r.block.CompareAndSwap(true, false) {
		close(r.blocked)
		<-r.release
	}
}

// blockingLoad is a peer whose load query signals entered and answers only
// when the asker gives up; timedOut records whether a query's deadline
// (the round's interval) came before the asker cancelled it.
type blockingLoad struct {
	fairsharev1.UnimplementedLoadServiceServer
	entered  chan struct{}
	timedOut atomic.Bool
}

func (b *blockingLoad) GetLoad(ctx context.Context, _ *fairsharev1.GetLoadRequest) (*fairsharev1.GetLoadResponse, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	if ctx.Err() == context.DeadlineExceeded {
		b.timedOut.Store(true)
	}
	return nil, ctx.Err()
}

// startFairSharePod starts a pod on lis with fair share every interval,
// whose peers are the addresses dns lists, and obs as its observer.
func startFairSharePod(t *testing.T, lis net.Listener, dns *testDNS, interval time.Duration, obs server.Observer) *server.Server {
	t.Helper()
	srv, err := server.New(server.WithConfig(noAge()), server.WithShutdownDelay(server.Off), server.WithLogger(quietLog), server.WithObserver(obs),
		server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", 100*time.Millisecond),
		server.WithFairShare(server.FairShare{Interval: interval}))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// Shutdown stops fair share at once: a round that is asking its peers
// when Shutdown begins uses no answer (it reports nothing to the Observer,
// and sheds nothing), and no round begins after. The pod's one peer holds every load
// query until the asker gives up, a round's interval later.
func TestShutdownStopsFairShareRounds(t *testing.T) {
	const interval = 2 * time.Second // the time the test has to call Shutdown
	lis, addr := loopbackListener(t)
	_, port, _ := net.SplitHostPort(addr)
	peerLis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2 (needs the whole 127/8 on loopback): %v", err)
	}
	peer := grpc.NewServer()
	load := &blockingLoad{entered: make(chan struct{}, 1)}
	fairsharev1.RegisterLoadServiceServer(peer, load)
	go peer.Serve(peerLis)
	t.Cleanup(peer.Stop)
	obs := newRoundsAfter()
	srv := startFairSharePod(t, lis, startDNS(t, "pods.test", "127.0.0.1", "127.0.0.2"), interval, obs)

	select {
	case <-load.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the pod did not ask its peer within 10 s")
	}
	obs.stopped.Store(true)
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Shutdown waits for the rounds: whatever they report, they have.
	if n := obs.after.Load(); n != 0 {
		if load.timedOut.Load() {
			// The host stalled for a round's interval: the round was
			// over, and reported, before Shutdown stopped it.
			t.Skip("the round's query timed out before Shutdown: nothing in flight to check")
		}
		t.Errorf("%d fair-share rounds reported after Shutdown began, want none", n)
	}
}

// Shutdown and Close return only once fair share's rounds have: no round
// runs on, or reports, after they return.
func TestStopWaitsForFairShare(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*server.Server) error
	}{
		{"Shutdown", func(s *server.Server) error { return s.Shutdown(context.Background()) }},
		{"Close", (*server.Server).Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lis, _ := loopbackListener(t)
			obs := newRoundsAfter()
			obs.block.Store(true)
			srv := startFairSharePod(t, lis, startDNS(t, "pods.test", "127.0.0.1"), 100*time.Millisecond, obs)
			t.Cleanup(obs.free) // before the pod's Close, which waits for the report
			select {
			case <-obs.blocked:
			case <-time.After(10 * time.Second):
				t.Fatal("no fair-share round within 10 s")
			}
			stopped := make(chan error, 1)
			go func() { stopped <- tc.stop(srv) }()
			select {
			case err := <-stopped:
				obs.free()
				t.Fatalf("%s returned (%v) while a fair-share round was still running", tc.name, err)
			case <-time.After(300 * time.Millisecond):
			}
			obs.free()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s did not return within 10 s of the round's end", tc.name)
			}
		})
	}
}

// Past the drain (the listener closed), Shutdown waits for the hooks and
// for the background work only while its context lasts: ending the context
// while it waits for a round that an Observer holds, or while a hook runs,
// makes it return the context's error as soon as the hooks have returned;
// also with no background work left, as a hook may have been cut short.
func TestShutdownStopsWaitingWhenItsContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name           string
		blockedRound   bool // an Observer holds a fair-share round
		cancelFromHook bool
	}{
		{"while it waits for a held round", true, false},
		{"in a hook, with a round held", true, true},
		{"in a hook, with no background work", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loopbackListener(t)
			lis := newNotifyCloseListener(l)
			var srv *server.Server
			if tc.blockedRound {
				obs := newRoundsAfter()
				obs.block.Store(true)
				srv = startFairSharePod(t, lis, startDNS(t, "pods.test", "127.0.0.1"), 100*time.Millisecond, obs)
				t.Cleanup(obs.free) // before the pod's Close, which waits for the report
				select {
				case <-obs.blocked:
				case <-time.After(10 * time.Second):
					t.Fatal("no fair-share round within 10 s")
				}
			} else {
				var err error
				srv, err = server.New(server.WithShutdownDelay(server.Off), server.WithLogger(quietLog))
				if err != nil {
					t.Fatal(err)
				}
				go srv.Serve(lis)
				t.Cleanup(func() { srv.Close() })
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var hookReturned atomic.Bool
			if tc.cancelFromHook {
				srv.RegisterOnShutdown(func(context.Context) {
					<-lis.closed
					if !tc.blockedRound {
						// Give the background work's wait, with nothing
						// to wait for, time to see that.
						time.Sleep(100 * time.Millisecond)
					}
					cancel()
					hookReturned.Store(true)
				})
			}
			stopped := make(chan error, 1)
			go func() { stopped <- srv.Shutdown(ctx) }()
			// No client is connected, so the drain ends at once and the
			// listener closes.
			select {
			case <-lis.closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the listener is still open 10 s into a Shutdown with no client")
			}
			if !tc.cancelFromHook {
				select {
				case err := <-stopped:
					t.Fatalf("Shutdown returned (%v) while a fair-share round was still running", err)
				case <-time.After(300 * time.Millisecond):
				}
				cancel()
			}
			select {
			case err := <-stopped:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Shutdown returned %v once its context ended before it was done; want context.Canceled", err)
				}
				if tc.cancelFromHook && !hookReturned.Load() {
					t.Fatal("Shutdown returned before its hook did")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown still waits 5 s after its context ended")
			}
		})
	}
}
