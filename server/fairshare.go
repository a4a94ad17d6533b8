package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// FairShare configures fair-share balancing (WithFairShare). Its zero value
// is the defaults given per field.
//
// Every Interval each pod asks every peer (the addresses the peer watcher
// resolves) for its load over rotor's LoadService, on the same gRPC port:
// the client connections it holds that are not draining. It computes the
// fleet mean m (itself included) and, when it holds more than ceil(m) +
// Tolerance connections and has not shed for Cooldown, sends GOAWAY to
// exactly the excess, oldest first, spread over Spread (see decideShed).
//
// Why it converges: a shed client reconnects through the ClusterIP, where
// kube-proxy sends it to a uniformly random pod. Of the E connections the
// pods above the target shed in a round, a pods above it get back E·a/n, a
// < n, so the excess shrinks every round, and pods at or below the target
// shed nothing. Once every pod holds at most ceil(m) + Tolerance, nobody
// sheds: a balanced fleet moves no connection.
//
// Churn bound: a pod sheds at most once per Cooldown and only its excess,
// so at most excess × (1 min / Cooldown) connections a minute while
// unbalanced, and none while balanced.
//
// Cost: each pod sends n-1 small calls per Interval and answers as many,
// over one connection per peer. README.md gives the measured cost per pod.
//
// Pods that reach no peer (DNS or queries failing) shed nothing and rely on
// age rotation; they say so once in the log and in FairShareObserver.
//
// Fair share is for ClusterIP Services, where a shed client's reconnect is
// a fresh random pick. A headless Service's round_robin clients reconnect
// to the pod that shed them; a pod notices when three sheds in a row did
// not lower its load and from then on doubles its cooldown each time (up to
// a minute), so such clients cost a few futile GOAWAYs, not a stream of
// them.
type FairShare struct {
	// Interval between two load exchanges. Default 500 ms: the last
	// connection a short pod lacks arrives by a random pick, one chance in
	// n per round, so rounds are kept short. Allowed: 100 ms to 1 min.
	Interval time.Duration
	// Tolerance is how many connections above ceil(fleet mean) a pod keeps
	// before it sheds. Default 0. Allowed: 0 to 1000.
	Tolerance int
	// Cooldown is the least time between two sheds of one pod, long enough
	// for the moved clients to reconnect and the next exchange to see it.
	// Default Interval. Allowed: at least Interval, at most 10 min.
	Cooldown time.Duration
	// Spread is the window over which one shed sends its GOAWAYs. Default
	// Interval/2. Allowed: Off (at once), or up to Cooldown.
	Spread time.Duration
	// Port is the peers' gRPC port. Default: the port this server listens
	// on. Allowed: 1 to 65535.
	Port int
	// DialOptions for the load queries. Default: plaintext. When the server
	// serves TLS, set transport credentials here (ClientTLS: the CA of the
	// pods' certificates and, for mutual TLS, the pod's own certificate) and
	// grpc.WithAuthority with a name the certificates carry: the queries go
	// to pod IPs, which certificates rarely list. New refuses TLS without
	// them.
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

func (f FairShare) validate(p *problems) {
	field := func(name string) string { return "server.FairShare." + name }
	if f.Interval < 100*time.Millisecond || f.Interval > time.Minute {
		p.add(field("Interval"), f.Interval, "between 100ms and 1m, or 0 for the default 500ms")
	}
	if f.Tolerance < 0 || f.Tolerance > 1000 {
		p.add(field("Tolerance"), f.Tolerance, "between 0 and 1000 connections")
	}
	if f.Cooldown < f.Interval || f.Cooldown > maxShutdownStep {
		p.add(field("Cooldown"), f.Cooldown, fmt.Sprintf("between Interval (%s), so that a pod sees its last shed before the next, and 10m; 0 for Interval", f.Interval))
	}
	if f.Spread != Off && (f.Spread < 0 || f.Spread > f.Cooldown) {
		p.add(field("Spread"), f.Spread, fmt.Sprintf("at most Cooldown (%s), 0 for Interval/2, or server.Off for at once", f.Cooldown))
	}
	if f.Port < 0 || f.Port > 65535 {
		p.add(field("Port"), f.Port, "1 to 65535, or 0 for this server's port")
	}
}

// WithFairShare turns on fair-share balancing for ClusterIP Services: pods
// that hold more than their share of connections shed the excess until
// every pod holds its share. It needs WithPeerDNS (the headless Service of
// the same pods) to find the peers. See FairShare for the algorithm.
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

// fairShare runs the exchange and the shedding.
type fairShare struct {
	s     *Server
	cfg   FairShare
	id    string // this server's identity in load answers
	peers *peerConns

	mu       sync.Mutex
	shed     shedState
	alone    bool // no peer answered in the last round
	lastRate float64
}

func newFairShare(s *Server, cfg FairShare) *fairShare {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &fairShare{
		s: s, cfg: cfg, id: hex.EncodeToString(b),
		peers: newPeerConns(cfg.DialOptions, func() int { return cmp.Or(cfg.Port, s.listenPort()) }),
		shed:  shedState{cooldown: cfg.Cooldown},
	}
}

func (f *fairShare) run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	defer f.peers.keep(nil)
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
	f.peers.keep(peers)
	own := f.s.Stats().Clients
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Interval)
	defer cancel()
	loads := f.peers.query(ctx, peers, f.id)
	total := own
	for _, l := range loads {
		total += int(l.GetConnections())
	}
	answered := len(loads)

	f.mu.Lock()
	wasAlone := f.alone
	f.alone = answered == 0
	f.mu.Unlock()
	obs, _ := f.s.obs.(FairShareObserver)
	if answered == 0 {
		if !wasAlone {
			f.s.log.Warn("fair share: no peer answered; relying on age rotation", "peers_resolved", len(peers))
		}
		if obs != nil {
			obs.FairShareRound(0, own, float64(own), 0)
		}
		return
	}
	if wasAlone {
		f.s.log.Info("fair share: peers answer again", "peers", answered)
	}
	mean := float64(total) / float64(answered+1)
	f.mu.Lock()
	d := decideShed(time.Now(), own, mean, f.cfg, f.shed)
	f.shed = d.next
	f.mu.Unlock()
	if d.backOff {
		f.s.log.Warn("fair share: shedding did not lower this pod's load (clients return to the same pod, as headless round_robin clients do); backing off",
			"own", own, "mean", mean, "next_try_in", d.next.cooldown)
	}
	if obs != nil {
		obs.FairShareRound(answered, own, mean, d.shed)
	}
	if d.shed > 0 {
		go func() {
			res, _ := f.s.Rotate(context.WithoutCancel(ctx), Rotation{Count: d.shed, Spread: f.cfg.Spread, Reason: ReasonFairShare})
			if res.Rotated == 0 {
				// Nothing old enough to move yet: not a futile shed.
				f.mu.Lock()
				f.shed.shedOwn = 0
				f.mu.Unlock()
			}
		}()
	}
}

// loadMethod is the full name of the load query, which marks the
// connection that carries it as a peer's.
const loadMethod = "/rotor.fairshare.v1.LoadService/GetLoad"

// loadServer answers peers' load queries.
type loadServer struct {
	fairsharev1.UnimplementedLoadServiceServer
	f *fairShare
}

func (l loadServer) GetLoad(context.Context, *fairsharev1.GetLoadRequest) (*fairsharev1.GetLoadResponse, error) {
	l.f.mu.Lock()
	rate := l.f.lastRate
	l.f.mu.Unlock()
	return &fairsharev1.GetLoadResponse{Connections: uint32(l.f.s.Stats().Clients), CallsPerSecond: rate, Instance: l.f.id}, nil
}
