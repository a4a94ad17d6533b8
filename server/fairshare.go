package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// FairShare configures fair-share balancing (WithFairShare). Zero fields take
// the defaults given.
//
// # The algorithm
//
// Every Interval each pod asks every peer (the addresses of the peer
// watcher's headless Service) for its load over rotor's LoadService, on the
// same gRPC port: the client connections it holds that are not draining. It
// computes the fleet mean m (itself included) and, when it holds more than
// ceil(m) + Tolerance connections and has not shed for Cooldown, it sends
// GOAWAY to exactly the excess, oldest first, spread over Spread.
//
// # Why it converges
//
// A shed client reconnects through the ClusterIP, where kube-proxy sends it
// to a uniformly random pod. In a round the pods above the target shed their
// whole excess E; of the E reconnects, a pod above the target gets back 1/n
// each, so the excess left is E·a/n, with a < n the number of pods that were
// above it: the excess shrinks every round, and pods at or below the target
// shed nothing. The tail is the last connection a short pod lacks: each shed
// connection lands there with probability 1/n, which is why rounds are short
// (500 ms by default; the lab measured 5.9–6.9 s to fair share after a 2→5
// scale-up, and 7.9–13.9 s with 1 s rounds). Once every pod holds at most
// ceil(m) + Tolerance nobody sheds: a balanced fleet moves no connection
// (the lab saw none after balance in any run), and Cooldown keeps a pod from
// acting on counts that do not yet show its last shed.
//
// # Churn bound
//
// A pod sheds at most once per Cooldown, and only its excess over the
// target, so a pod moves at most excess × (60 s / Cooldown) connections a
// minute while unbalanced and none while balanced. A scale-up from k to n
// pods moves about C·(n-k)/n connections (C in all) in the first round, then
// a geometrically smaller number.
//
// # Cost
//
// Each pod asks n-1 peers every Interval and answers as many questions, over
// one connection per peer: at the default 500 ms, the client half of 2(n-1)
// tiny calls a second and the server half of as many, the CPU of 2(n-1)
// whole calls. A tiny call costs about 40 µs of CPU, client and server
// together, on the 2-core VM of rotor's benchmarks (plain grpc-go's "CPU
// µs/call" in example/balance's overhead table: 36 to 39 µs in the
// committed runs), so the estimate is 0.4 % of a core per pod at 50 pods
// and 0.8 % at 100. The lab measured only up to 5 pods, where it was lost
// in the noise. For fleets of hundreds, raise Interval: the cost falls with
// it, and only the time to fair share grows.
//
// Pods that reach no peer (DNS or queries failing) do nothing and rely on age
// rotation; they say so once in the log and in FairShareObserver.
//
// Fair share is for ClusterIP Services, where a shed client's reconnect is a
// fresh random pick. Clients of a headless Service with round_robin are
// balanced per call already, and reconnect to the very pod that shed them;
// a pod notices when three sheds in a row did not lower its load and from
// then on doubles its cooldown each time (up to a minute), so such clients
// cost a few futile GOAWAYs, not a stream of them.
type FairShare struct {
	// Interval between two load exchanges. Default 500 ms: the last
	// connection a short pod lacks arrives by a random pick, one chance in n
	// per round, so rounds are kept short. Allowed: 100 ms to 1 min. Each pod
	// sends one small call to every peer per interval.
	Interval time.Duration
	// Tolerance is how many connections above ceil(fleet mean) a pod keeps
	// before it sheds. Default 0. Allowed: 0 to 1000.
	Tolerance int
	// Cooldown is the least time between two sheds of one pod, long enough
	// for the moved clients to reconnect and the next exchange to see it.
	// Default Interval: a shed's GOAWAYs are all sent within Spread, less
	// than an Interval, and reconnects take milliseconds. Allowed: at least
	// Interval.
	Cooldown time.Duration
	// Spread is the window over which one shed sends its GOAWAYs. Default
	// Interval/2. Allowed: 0 to Cooldown.
	Spread time.Duration
	// Port is the peers' gRPC port. Default: the port this server listens on.
	Port int
	// DialOptions for the load queries. Default: plaintext. When the server
	// uses TLS, set transport credentials here (ClientTLS: the CA of the
	// pods' certificates and, for mutual TLS, the pod's own certificate) and
	// grpc.WithAuthority with a name the certificates carry: the queries go
	// to pod IPs, which certificates rarely list. The example server's
	// -peer-tls-ca and -peer-tls-server-name flags do exactly this.
	DialOptions []grpc.DialOption
}

func (f FairShare) withDefaults() FairShare {
	if f.Interval == 0 {
		f.Interval = 500 * time.Millisecond
	}
	if f.Cooldown == 0 {
		f.Cooldown = f.Interval
	}
	if f.Spread == 0 {
		f.Spread = min(f.Interval/2, f.Cooldown)
	}
	return f
}

func (f FairShare) validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &ConfigError{Field: "FairShare." + field, Value: fmtValue(v), Want: want})
	}
	if f.Interval < 100*time.Millisecond || f.Interval > time.Minute {
		bad("Interval", f.Interval, "between 100ms and 1m")
	}
	if f.Tolerance < 0 || f.Tolerance > 1000 {
		bad("Tolerance", f.Tolerance, "between 0 and 1000 connections")
	}
	if f.Cooldown < f.Interval {
		bad("Cooldown", f.Cooldown, fmt.Sprintf("at least Interval (%s), so a pod sees its last shed before the next", f.Interval))
	}
	if f.Spread < 0 || f.Spread > f.Cooldown {
		bad("Spread", f.Spread, fmt.Sprintf("between 0 and Cooldown (%s)", f.Cooldown))
	}
	if f.Port < 0 || f.Port > 65535 {
		bad("Port", f.Port, "0 (this server's port) or 1 to 65535")
	}
	return errors.Join(errs...)
}

// WithFairShare turns on fair-share balancing for ClusterIP Services: pods
// that hold more than their share of connections shed the excess until every
// pod holds its share. It needs WithPeerDNS (the headless Service of the same
// pods) to find the peers. See FairShare for the algorithm.
func WithFairShare(f FairShare) Option {
	return func(s *settings) {
		f := f.withDefaults()
		s.fairShare = &f
	}
}

// A FairShareObserver is an Observer that also wants each fair-share round:
// how many peers answered (itself excluded), its own load, the fleet mean,
// and how many connections it shed.
type FairShareObserver interface {
	FairShareRound(peers int, own int, mean float64, shed int)
}

// maxFairShareCooldown bounds the back-off after futile sheds, and
// futileSheds is how many in a row start it.
const (
	maxFairShareCooldown = time.Minute
	futileSheds          = 3
)

// ReasonFairShare: fair-share balancing shed the connection.
const ReasonFairShare Reason = "fairshare"

const loadMethod = "/rotor.fairshare.v1.LoadService/GetLoad"

// fairShare runs the exchange and the shedding.
type fairShare struct {
	s   *Server
	cfg FairShare
	id  string // this server's identity in load answers

	mu       sync.Mutex
	clients  map[string]*grpc.ClientConn
	lastShed time.Time
	shedOwn  int           // own load when the last shed began; 0 when none pends
	cooldown time.Duration // current cooldown: cfg.Cooldown, doubled after futile sheds
	futile   int           // sheds in a row that did not lower the load
	alone    bool          // no peer answered in the last round
	lastRate float64
}

func newFairShare(s *Server, cfg FairShare) *fairShare {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &fairShare{s: s, cfg: cfg, id: hex.EncodeToString(b), clients: map[string]*grpc.ClientConn{}, cooldown: cfg.Cooldown}
}

// loadServer answers peers' load queries.
type loadServer struct {
	fairsharev1.UnimplementedLoadServiceServer
	f *fairShare
}

func (l loadServer) GetLoad(context.Context, *fairsharev1.GetLoadRequest) (*fairsharev1.GetLoadResponse, error) {
	l.f.mu.Lock()
	rate := l.f.lastRate
	l.f.mu.Unlock()
	return &fairsharev1.GetLoadResponse{Connections: uint32(l.f.s.clientConns()), CallsPerSecond: rate, Instance: l.f.id}, nil
}

// clientConns counts the connections that carry clients' calls: open, not
// draining, and not a peer's load queries.
func (s *Server) clientConns() int {
	n := 0
	for _, c := range s.snapshot() {
		if !c.isDraining() && !c.internal.Load() {
			n++
		}
	}
	return n
}

func (f *fairShare) run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	defer f.closeClients(nil)
	lastCalls := f.s.calls.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		calls := f.s.calls.Load()
		f.mu.Lock()
		f.lastRate = float64(calls-lastCalls) / f.cfg.Interval.Seconds()
		f.mu.Unlock()
		lastCalls = calls
		f.round(ctx)
	}
}

// round exchanges loads once and sheds the excess, if any.
func (f *fairShare) round(ctx context.Context) {
	peers := f.s.Peers()
	f.closeClients(peers)
	own := f.s.clientConns()
	total, answered := own, 0
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Interval)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ip := range peers {
		cc := f.client(ip)
		if cc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := fairsharev1.NewLoadServiceClient(cc).GetLoad(ctx, &fairsharev1.GetLoadRequest{})
			if err != nil || resp.GetInstance() == f.id {
				return
			}
			mu.Lock()
			total += int(resp.GetConnections())
			answered++
			mu.Unlock()
		}()
	}
	wg.Wait()

	f.mu.Lock()
	wasAlone := f.alone
	f.alone = answered == 0
	f.mu.Unlock()
	obs, _ := f.s.obs.(FairShareObserver)
	if answered == 0 {
		if !wasAlone {
			f.s.log.Warn("rotor: fair share: no peer answered; relying on age rotation", "peers_resolved", len(peers))
		}
		if obs != nil {
			obs.FairShareRound(0, own, float64(own), 0)
		}
		return
	}
	if wasAlone {
		f.s.log.Info("rotor: fair share: peers answer again", "peers", answered)
	}
	mean := float64(total) / float64(answered+1)
	target := int(math.Ceil(mean-1e-9)) + f.cfg.Tolerance
	shed := 0
	f.mu.Lock()
	futile := false
	switch {
	case own <= target:
		f.shedOwn, f.futile, f.cooldown = 0, 0, f.cfg.Cooldown
	case time.Since(f.lastShed) < f.cooldown:
	default:
		if f.shedOwn > 0 {
			if own >= f.shedOwn {
				f.futile++
			} else {
				f.futile, f.cooldown = 0, f.cfg.Cooldown
			}
			// Sheds that never lower this pod's load mean its clients
			// come straight back, as round_robin clients of a headless
			// Service do (they reconnect to the address they lost). One
			// such shed happens by chance on a ClusterIP, when other
			// pods' sheds land here; several in a row do not. Keep trying,
			// but wait twice as long each time.
			if f.futile >= futileSheds {
				f.cooldown = min(2*f.cooldown, maxFairShareCooldown)
				futile = true
			}
		}
		shed = own - target
		f.lastShed, f.shedOwn = time.Now(), own
	}
	cooldown := f.cooldown
	f.mu.Unlock()
	if futile {
		f.s.log.Warn("rotor: fair share: shedding did not lower this pod's load (clients return to the same pod, as headless round_robin clients do); backing off",
			"own", own, "mean", mean, "next_try_in", cooldown)
	}
	if obs != nil {
		obs.FairShareRound(answered, own, mean, shed)
	}
	if shed > 0 {
		go func() {
			n, _ := f.s.Rotate(context.WithoutCancel(ctx), RotateOptions{Count: shed, Spread: f.cfg.Spread, Reason: ReasonFairShare})
			if n == 0 {
				// Nothing old enough to move yet: not a futile shed.
				f.mu.Lock()
				f.shedOwn = 0
				f.mu.Unlock()
			}
		}()
	}
}

// client returns a cached connection to the peer at ip.
func (f *fairShare) client(ip string) *grpc.ClientConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cc, ok := f.clients[ip]; ok {
		return cc
	}
	port := f.cfg.Port
	if port == 0 {
		port = f.s.listenPort()
	}
	if port == 0 {
		return nil
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, f.cfg.DialOptions...)
	cc, err := grpc.NewClient(net.JoinHostPort(ip, strconv.Itoa(port)), opts...)
	if err != nil {
		return nil
	}
	f.clients[ip] = cc
	return cc
}

// closeClients closes the connections to peers not in keep (all if nil).
func (f *fairShare) closeClients(keep []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := map[string]bool{}
	for _, ip := range keep {
		live[ip] = true
	}
	for ip, cc := range f.clients {
		if !live[ip] {
			cc.Close()
			delete(f.clients, ip)
		}
	}
}
