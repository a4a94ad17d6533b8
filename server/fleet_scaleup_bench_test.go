package server_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/internal/cputime"
	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/internal/tofair"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// BenchmarkFairShareScaleUp runs issue 16's scale-up in one process, where
// the emulated lab (example/balance -scenario fleet), a process and a
// network namespace per pod, cannot hold 200 pods on the lab machine's two
// cores: pods rotor servers with the fair share the example server's
// -fair-share gives (FairShare's defaults, MaxConnectionAge 5 min, peers
// polled through DNS every second, as the lab's pods), on loopback
// addresses (127.k.x.y, one port), talking real gRPC; 4 client connections
// per pod of the scaled fleet, calling at 2 calls/s each from one address,
// as the lab's load generator; and a "ClusterIP" that sends every dial to a
// Ready pod picked at random, as kube-proxy does. After scaleAt, add pods
// start and are Ready: in the endpoints and the headless Service's DNS
// answer at once. The run ends 90 s later.
//
// It reports, as the lab's fleet rows do (example/balance README, Fleet):
//   - s-to-fair: seconds after the new pods are Ready until their share of
//     the calls over the trailing 5 s reaches 0.8 of their fair share and
//     stays there to the end (s-to-fair-1s: over 1 s); -1 when it never
//     does (internal/tofair, which the lab's reports use too);
//   - imbalance: the busiest pod's calls over the mean pod's, in the last
//     30 s;
//   - conns-max and conns-mean: client connections per pod at the end
//     (Stats.Clients);
//   - moved-past-growth: connections dialled from the end of the fleet's
//     growth (the 30 s growth grace from the DNS poll that lists the new
//     pods, and 2 s) to the end of the run, in all: what a balanced fleet
//     still moves; -1 when the run ends first, as under -short;
//   - failed: calls that failed; missed%: call slots skipped because the
//     caller was more than 1 s late, and p99-ms: the calls' 99th
//     percentile, which together say whether the host kept up;
//   - cores: the CPU the whole process used over the run.
//
// One process is not the lab: no kube-proxy, no namespaces, one Go runtime
// and heap for every pod. The pods start spread over 500 ms, so that their
// fair-share rounds do not run in step. Its 50 → 60 and 100 → 110 are there
// to compare with the lab's figures in the README.
// Under -short only pods=8+4 runs, in 24 s. Every pod has an observer
// (podRounds) that counts its fair-share GOAWAYs and sheds and keeps its
// last estimate of the mean; under -v the benchmark also logs them, with
// the fill, second by second (see logScaleUp).
//
//	go test -run '^$' -bench FairShareScaleUp -benchtime 1x -timeout 30m ./server/
func BenchmarkFairShareScaleUp(b *testing.B) {
	for _, c := range []struct {
		pods, add int
		short     bool
	}{
		{8, 4, true},
		{50, 10, false},
		{100, 10, false},
		{200, 20, false},
	} {
		b.Run(fmt.Sprintf("pods=%d+%d", c.pods, c.add), func(b *testing.B) {
			scaleAt, after := 30*time.Second, 90*time.Second
			switch {
			case testing.Short() && !c.short:
				b.Skip("fleets of 50 pods and more take minutes; run without -short")
			case testing.Short():
				scaleAt, after = 12*time.Second, 12*time.Second
			}
			for range b.N {
				benchScaleUp(b, c.pods, c.add, scaleAt, after)
			}
		})
	}
}

// scaleUp's settings, the lab's fleet scenario's (example/balance/fleet.go).
const (
	scaleUpConnsPerPod = 4                      // per pod of the scaled fleet: its fair share
	scaleUpRate        = 2.0                    // calls per second per client connection
	scaleUpFairAt      = 0.8                    // of their fair share, the new pods' share counts as fair
	scaleUpLate        = time.Second            // a caller this late skips the slots it missed
	scaleUpTimeout     = 5 * time.Second        // per call
	scaleUpInterval    = 500 * time.Millisecond // FairShare's default Interval
	scaleUpPeerPoll    = time.Second            // the pods' DNS poll, the lab's -peer-interval
)

func benchScaleUp(b *testing.B, pods, add int, scaleAt, after time.Duration) {
	n := pods + add
	ips := fleetIPs(n)
	lis, port := listenAll(b, ips)
	b.Cleanup(func() { // the new pods' too, should the run end before they start
		for _, l := range lis {
			l.Close()
		}
	})
	dns := startDNS(b, "pods.test", ips[:pods]...)
	calls := make([]atomic.Int64, n)
	srvs := make([]*server.Server, n)
	// What each pod's rounds did, for the table under -v.
	rounds := make([]podRounds, n)
	for i := range rounds {
		rounds[i].events = newEvents()
	}
	var serving sync.WaitGroup
	b.Cleanup(serving.Wait) // after the servers' Close, which cleanups run first
	startPod := func(i int) {
		srv, err := server.New(server.WithLogger(quietLog), server.WithShutdownDelay(server.Off),
			server.WithObserver(&rounds[i]),
			server.WithMaxConnectionAge(5*time.Minute),
			server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", scaleUpPeerPoll),
			server.WithFairShare(server.FairShare{DialOptions: []grpc.DialOption{dialFrom(ips[i])}}))
		if err != nil {
			b.Fatal(err)
		}
		hellov1.RegisterHelloServer(srv, &countedHello{Hello: testkit.Hello{Name: ips[i]}, calls: &calls[i]})
		srvs[i] = srv
		serving.Go(func() { _ = srv.Serve(lis[i]) })
		b.Cleanup(func() { srv.Close() })
	}
	// The pods start spread over a round's Interval, so that their rounds
	// are too: pods on their own nodes do not play them in step, and in one
	// process rounds in step would stall every pod and call at once.
	startPods := func(from, to int) {
		for i := from; i < to; i++ {
			startPod(i)
			time.Sleep(scaleUpInterval / time.Duration(to-from))
		}
	}
	startPods(0, pods)

	// The ClusterIP: each dial goes to a Ready pod picked at random.
	var ready atomic.Pointer[[]string]
	setReady := func(k int) {
		addrs := make([]string, k)
		for i := range addrs {
			addrs[i] = net.JoinHostPort(ips[i], strconv.Itoa(port))
		}
		ready.Store(&addrs)
	}
	setReady(pods)
	var dials atomic.Int64
	client := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 9, 1)}}
	clusterIP := func(ctx context.Context, _ string) (net.Conn, error) {
		addrs := *ready.Load()
		c, err := client.DialContext(ctx, "tcp", addrs[rand.IntN(len(addrs))])
		if err == nil {
			dials.Add(1)
		}
		return c, err
	}
	conns := scaleUpConnsPerPod * n
	hellos := make([]hellov1.HelloClient, conns)
	for i := range hellos {
		cc, err := grpc.NewClient("passthrough:///hello", append(server.Config{}.DialOptions(),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(clusterIP))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		cc.Connect()
		hellos[i] = hellov1.NewHelloClient(cc)
	}

	// The load: every connection calls once a slot, at a random point of
	// its first half, the connections' slots spread over the interval.
	origin := time.Now().Add(200 * time.Millisecond)
	end := origin.Add(scaleAt + after)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	var callers sync.WaitGroup
	defer func() { // also when the run fails: no caller outlives it
		cancel()
		callers.Wait()
	}()
	var failed, missed atomic.Int64
	var errs errorsSeen
	lat := newLatencies()
	interval := time.Duration(float64(time.Second) / scaleUpRate)
	for i, hello := range hellos {
		start := origin.Add(time.Duration(float64(i) / float64(conns) * float64(interval)))
		jitter := rand.New(rand.NewPCG(uint64(n), uint64(i)))
		callers.Go(func() {
			req := &hellov1.HiRequest{ToWho: "scale-up"}
			for k := 0; ; k++ {
				at := start.Add(time.Duration(k)*interval + time.Duration(jitter.Float64()*float64(interval)/2))
				if !at.Before(end) || !time.Now().Before(end) {
					return
				}
				if late := time.Since(at); late > scaleUpLate {
					skip := max(int(late/interval), 1)
					missed.Add(int64(skip))
					k += skip - 1
					continue
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				if !time.Now().Before(end) {
					return // the wait ran past the end
				}
				// Not ctx's child: a call begun before the end runs its
				// course, and fails only on its own deadline.
				callCtx, done := context.WithTimeout(context.Background(), scaleUpTimeout)
				t0 := time.Now()
				_, err := hello.Hi(callCtx, req)
				done()
				if err != nil {
					failed.Add(1)
					errs.add(err)
					continue
				}
				lat.add(time.Since(t0))
			}
		})
	}

	// Every second: the calls each pod has answered, and the dials.
	secs := int((scaleAt + after) / time.Second)
	perPod := make([][]int64, secs+1)
	dialed := make([]int64, secs+1)
	var rows []scaleUpRow // from the second before the event, under -v
	cpu0 := cputime.Process()
	var event float64 // seconds after origin at which the new pods were Ready
	for k := 0; k <= secs; k++ {
		time.Sleep(time.Until(origin.Add(time.Duration(k) * time.Second)))
		row := make([]int64, n)
		for i := range row {
			row[i] = calls[i].Load()
		}
		perPod[k], dialed[k] = row, dials.Load()
		if testing.Verbose() && k >= int(scaleAt/time.Second) {
			rows = append(rows, scaleUpNow(k, srvs, rounds, pods))
		}
		if k == int(scaleAt/time.Second) {
			startPods(pods, n)
			setReady(n)
			dns.set(ips...)
			event = time.Since(origin).Seconds()
		}
	}
	cores := (cputime.Process() - cpu0).Seconds() / time.Since(origin).Seconds()
	cancel()
	callers.Wait()

	// The figures.
	newShare := make([]float64, secs) // of second k's calls, the new pods'
	all := make([]float64, secs)
	for k := range secs {
		for i := range n {
			c := float64(perPod[k+1][i] - perPod[k][i])
			all[k] += c
			if i >= pods {
				newShare[k] += c
			}
		}
	}
	fair := scaleUpFairAt * float64(add) / float64(n)
	conn := make([]float64, n)
	for i, srv := range srvs {
		conn[i] = float64(srv.Stats().Clients)
	}
	tail := max(secs-30, int(math.Ceil(event)))
	load := make([]float64, n)
	for i := range n {
		load[i] = float64(perPod[secs][i] - perPod[tail][i])
	}
	// Past growth, as example/balance's pastGrowth counts it: the growth
	// grace (30 s) from the DNS poll that lists the new pods (the peer
	// watcher's interval, stretched by 50 ms a peer), and 2 s.
	grown := int(math.Ceil(event + (30*time.Second + max(scaleUpPeerPoll, 50*time.Millisecond*time.Duration(pods)) + 2*time.Second).Seconds()))
	moved := int64(-1) // the run ends before
	if grown < secs {
		moved = dialed[secs] - dialed[grown]
	}
	if testing.Verbose() {
		logScaleUp(b, rows, newShare, all, dialed, event, add, n)
	}
	b.ReportMetric(toFair(newShare, all, event, fair, 5), "s-to-fair")
	b.ReportMetric(toFair(newShare, all, event, fair, 1), "s-to-fair-1s")
	b.ReportMetric(maxOverMean(load), "imbalance")
	b.ReportMetric(slices.Max(conn), "conns-max")
	b.ReportMetric(mean(conn), "conns-mean")
	b.ReportMetric(float64(moved), "moved-past-growth")
	b.ReportMetric(float64(failed.Load()), "failed")
	errs.log(b)
	slots := float64(lat.count()) + float64(failed.Load()) + float64(missed.Load())
	b.ReportMetric(100*float64(missed.Load())/max(slots, 1), "missed%")
	b.ReportMetric(lat.quantile(0.99).Seconds()*1000, "p99-ms")
	b.ReportMetric(cores, "cores")
}

// podRounds observes one pod of a scale-up: its connections' events, and
// what its fair-share rounds did.
type podRounds struct {
	*events
	mean   atomic.Uint64 // the last estimate of the fleet's mean connections, as float64 bits; 0 before a round with answers
	sheds  atomic.Int64  // connections its rounds shed
	atFair atomic.Int64  // of them, those shed at the fleet's fair share or less (scaleUpConnsPerPod connections that have called)
}

func (p *podRounds) FairShareRound(peers, ownConns int, meanConns, _, _ float64, shed int) {
	if peers > 0 {
		p.mean.Store(math.Float64bits(meanConns))
	}
	p.sheds.Add(int64(shed))
	if ownConns <= scaleUpConnsPerPod {
		p.atFair.Add(int64(shed))
	}
}

// scaleUpRow is the fleet at one second of a scale-up, for the table
// under -v: readings at that second, by the old pods and by the new.
type scaleUpRow struct {
	sec                int
	newConns, newEmpty int // the new pods' client connections (Stats.Clients), and the new pods with none
	// Fair-share GOAWAYs so far (sheds and admission's send-ons), and the
	// connections shed so far, in all and at the fair share or less.
	goAway, sheds, atFair [2]int
	// The mean of the pods' last estimates of the fleet's mean
	// connections, over the pods that have made one (means of them).
	mean  [2]float64
	means [2]int
}

// scaleUpNow reads the fleet at second sec: index 0 of a row's pairs is
// the old pods' (the first pods of srvs), 1 the new pods'.
func scaleUpNow(sec int, srvs []*server.Server, rounds []podRounds, pods int) scaleUpRow {
	r := scaleUpRow{sec: sec}
	for i := range srvs {
		g := 0
		if i >= pods {
			g = 1
		}
		r.goAway[g] += rounds[i].drained(string(server.ReasonFairShare))
		r.sheds[g] += int(rounds[i].sheds.Load())
		r.atFair[g] += int(rounds[i].atFair.Load())
		if m := math.Float64frombits(rounds[i].mean.Load()); m > 0 {
			r.mean[g] += m
			r.means[g]++
		}
		if g == 0 {
			continue
		}
		if srvs[i] == nil { // not started yet
			r.newEmpty++
		} else if c := srvs[i].Stats().Clients; c > 0 {
			r.newConns += c
		} else {
			r.newEmpty++
		}
	}
	for g := range r.mean {
		if r.means[g] > 0 {
			r.mean[g] /= float64(r.means[g])
		}
	}
	return r
}

// logScaleUp logs, for the 30 s from the second before the new pods are
// Ready, what decides the time to fair. Per second k: the new pods'
// connections and how many hold none; the new pods' share of the calls of
// second k (from k to k+1); the ClusterIP's dials so far; the fair-share
// GOAWAYs and sheds so far of the old pods and of the new (a shed counts
// when its round decides it and its GOAWAYs follow over FairShare.Spread,
// so GOAWAYs less sheds is admission's send-ons only approximately; a shed
// at the fair share or less is by a pod holding scaleUpConnsPerPod
// connections or fewer); and the pods' estimates of the fleet's mean
// connections ("-" before any). Example runs:
// example/balance/testdata/runs-2026-12-04/fleet-one-process-fill.txt.
func logScaleUp(b *testing.B, rows []scaleUpRow, newShare, all []float64, dialed []int64, event float64, add, n int) {
	fair := float64(add) / float64(n)
	out := fmt.Sprintf("new pods Ready at %.1f s; fair: %d connections, a share of the calls of %.3f; s-to-fair counts from a 5 s share of %.3f (%.1f of fair)\n",
		event, scaleUpConnsPerPod*add, fair, scaleUpFairAt*fair, scaleUpFairAt)
	out += "                                       old pods               new pods               mean estimate\n"
	out += "   s  new-conns  empty  share  dials   goaway  sheds  at-fair  goaway  sheds  at-fair  old    new\n"
	est := func(r scaleUpRow, g int) string {
		if r.means[g] == 0 {
			return "   -"
		}
		return fmt.Sprintf("%.2f", r.mean[g])
	}
	for _, r := range rows {
		if r.sec >= len(all) || r.sec > int(event)+30 {
			break
		}
		share := 0.0
		if all[r.sec] > 0 {
			share = newShare[r.sec] / all[r.sec]
		}
		out += fmt.Sprintf("%4d  %9d  %5d  %.3f  %5d   %6d  %5d  %7d  %6d  %5d  %7d  %s   %s\n",
			r.sec, r.newConns, r.newEmpty, share, dialed[r.sec], r.goAway[0], r.sheds[0], r.atFair[0], r.goAway[1], r.sheds[1], r.atFair[1], est(r, 0), est(r, 1))
	}
	b.Log(out)
}

// countedHello is a Hello that counts the calls it answers.
type countedHello struct {
	testkit.Hello
	calls *atomic.Int64
}

func (c *countedHello) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	c.calls.Add(1)
	return c.Hello.Hi(ctx, req)
}

// toFair is tofair.Seconds, the lab's time to fair, or -1 when the share
// did not get there for good.
func toFair(part, all []float64, event, share float64, width int) float64 {
	if t, ok := tofair.Seconds(part, all, event, share, width); ok {
		return t
	}
	return -1
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// latencies is a histogram of call times in 100 µs steps up to 10 s.
type latencies struct {
	mu      sync.Mutex
	buckets [100_001]int
	n       int
}

func newLatencies() *latencies { return &latencies{} }

func (l *latencies) add(d time.Duration) {
	k := min(int(d/(100*time.Microsecond)), len(l.buckets)-1)
	l.mu.Lock()
	l.buckets[k]++
	l.n++
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// quantile returns the upper edge of the bucket that holds quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := int(math.Ceil(q * float64(l.n)))
	seen := 0
	for k, c := range l.buckets {
		seen += c
		if seen >= want && seen > 0 {
			return time.Duration(k+1) * 100 * time.Microsecond
		}
	}
	return 0
}

// errorsSeen counts the calls' errors by their text.
type errorsSeen struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *errorsSeen) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[err.Error()]++
}

// log logs each error seen with its count.
func (e *errorsSeen) log(b *testing.B) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, msg := range slices.Sorted(maps.Keys(e.n)) {
		b.Logf("%d calls failed: %s", e.n[msg], msg)
	}
}
