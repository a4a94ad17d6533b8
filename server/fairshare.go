package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// FairShare configures fair-share balancing (WithFairShare). Its zero value
// is the defaults given per field.
//
// Every Interval each pod asks a random sample of its peers (the addresses
// the peer watcher resolves, and those that announced themselves) for their
// load over rotor's LoadService, on the same gRPC port, and estimates the
// fleet's mean load per pod from their answers: their own loads and their
// own estimates. A pod that holds more than its share sends GOAWAY to just
// enough of its connections to bring it back, and its clients reconnect
// through the ClusterIP, where kube-proxy picks a pod at random (see
// decideShed for the policy). The measure is the time the pod's unary
// handlers ran (MeasureLoad), which sees skewed clients and uneven call
// costs, or the number of client connections (MeasureConnections).
//
// Why it converges: the excess the pods above their share shed lands on
// every pod alike, so the pods above it keep a part a < 1 of it each round
// and the excess shrinks geometrically; pods within their share shed
// nothing. A balanced fleet moves no connection.
//
// Churn bound: a pod sheds at most once per Cooldown and only its excess.
//
// Cost: each pod sends at most Sample small calls per Interval and answers
// about as many, whatever the size of the fleet; README.md gives the
// measured cost. The estimate of the mean is exact when a pod asks every
// peer (fleets of up to Sample + 1 pods); in larger fleets it averages the
// sample's loads and estimates, smoothed over rounds, and Hysteresis keeps
// its error from moving connections.
//
// Discovery: a pod announces itself to the peers it asks (GetLoadRequest),
// and their answers pass news of recent announcements on, so that a new pod
// is known across the fleet within a few rounds of its start, not at the
// next DNS poll (the peer watcher's interval, and the DNS cache's TTL).
//
// Pods that reach no peer shed nothing and rely on age rotation; they say
// so once in the log and in FairShareObserver.
//
// Fair share is for ClusterIP Services, where a shed client's reconnect is
// a fresh random pick. A headless Service's round_robin clients reconnect
// to the pod that shed them; a pod notices when three sheds in a row did not
// lower its load and from then on doubles its cooldown each time (up to a
// minute). For headless clients, weigh by load on the client side instead
// (WithORCA, WeightedRoundRobin).
type FairShare struct {
	// Measure is what fair share balances: MeasureLoad (the default), the
	// time the pod's unary handlers run, or MeasureConnections.
	Measure Measure
	// Interval between two rounds. Default 500 ms. Allowed: 100 ms to 1 min.
	Interval time.Duration
	// Sample is how many peers a pod asks per round. Default 8: a fleet of
	// up to 9 pods is asked in full. Allowed: 1 to 1000.
	Sample int
	// Hysteresis is, with MeasureLoad, how far above the fleet mean, as a
	// fraction of it, a pod's load may be before it sheds. Default 0.1.
	// Allowed: 0.01 to 1.
	Hysteresis float64
	// Tolerance is, with MeasureConnections, how many connections above
	// ceil(fleet mean) a pod keeps before it sheds. Default 0. Allowed: 0 to
	// 1000.
	Tolerance int
	// Cooldown is the least time between two sheds of one pod, long enough
	// for the moved clients to reconnect and the next round to see it.
	// Default Interval. Allowed: Interval to 10 min.
	Cooldown time.Duration
	// Spread is the window over which one shed sends its GOAWAYs. Default
	// Interval/2. Allowed: Off (at once), or up to Cooldown.
	Spread time.Duration
	// MinAge leaves connections younger than this alone. Default
	// DefaultRotateMinAge. Allowed: Off (any age), or up to 1 min.
	MinAge time.Duration
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

// Measure is what fair share balances.
type Measure int

const (
	// MeasureLoad balances the time each pod's unary handlers run, per
	// second, smoothed over a few seconds: it sees clients that call more
	// than others and calls that cost more than others.
	MeasureLoad Measure = iota
	// MeasureConnections balances the number of client connections.
	MeasureConnections
)

func (m Measure) String() string {
	if m == MeasureConnections {
		return "connections"
	}
	return "load"
}

// loadWindow is the time constant of a connection's smoothed load.
const loadWindow = 5 * time.Second

// recentPeerTTL is how long a pod passes on news of an announced peer, and
// announcedTTL how long it keeps an announced peer it has not heard from
// (DNS keeps the peers it lists).
const (
	recentPeerTTL = 10 * time.Second
	announcedTTL  = 30 * time.Second
)

func (f FairShare) withDefaults() FairShare {
	f.Interval = cmp.Or(f.Interval, 500*time.Millisecond)
	f.Sample = cmp.Or(f.Sample, 8)
	f.Hysteresis = cmp.Or(f.Hysteresis, 0.1)
	f.Cooldown = cmp.Or(f.Cooldown, f.Interval)
	if f.Spread == 0 {
		f.Spread = min(f.Interval/2, f.Cooldown)
	}
	f.MinAge = cmp.Or(f.MinAge, DefaultRotateMinAge)
	return f
}

func (f FairShare) validate(p *problems) {
	field := func(name string) string { return "server.FairShare." + name }
	if f.Measure != MeasureLoad && f.Measure != MeasureConnections {
		p.add(field("Measure"), int(f.Measure), "server.MeasureLoad (the default) or server.MeasureConnections")
	}
	if f.Interval < 100*time.Millisecond || f.Interval > time.Minute {
		p.add(field("Interval"), f.Interval, "between 100ms and 1m, or 0 for the default 500ms")
	}
	if f.Sample < 1 || f.Sample > 1000 {
		p.add(field("Sample"), f.Sample, "between 1 and 1000 peers, or 0 for the default 8")
	}
	if f.Hysteresis < 0.01 || f.Hysteresis > 1 || math.IsNaN(f.Hysteresis) {
		p.add(field("Hysteresis"), f.Hysteresis, "between 0.01 and 1, or 0 for the default 0.1")
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
	if f.MinAge != Off && (f.MinAge < 0 || f.MinAge > time.Minute) {
		p.add(field("MinAge"), f.MinAge, "at most 1m, 0 for the default 1s, or server.Off for any age")
	}
	if f.Port < 0 || f.Port > 65535 {
		p.add(field("Port"), f.Port, "1 to 65535, or 0 for this server's port")
	}
}

// WithFairShare turns on fair-share balancing for ClusterIP Services: pods
// that hold more than their share of the load shed the excess until every
// pod holds its share. It needs WithPeerDNS (the headless Service of the
// same pods) to find the peers. See FairShare for the algorithm.
func WithFairShare(f FairShare) Option {
	return func(s *settings) {
		f := f.withDefaults()
		s.fairShare = &f
	}
}

// A FairShareObserver is an Observer that also wants each fair-share round:
// how many peers answered (itself excluded), its own client connections and
// load (seconds of handler time per second), the fleet means of both as it
// estimates them, and how many connections it shed.
type FairShareObserver interface {
	FairShareRound(peers, ownConns int, meanConns, ownLoad, meanLoad float64, shed int)
}

// fairShare runs the exchange and the shedding.
type fairShare struct {
	s     *Server
	cfg   FairShare
	id    string // this server's identity in load answers
	peers *peerConns
	rng   *mrand.Rand // the round goroutine's

	mu         sync.Mutex
	shed       shedState
	alone      bool // no peer answered in the last round
	lastRate   float64
	ownLoad    float64
	ownConns   int
	meanLoad   float64 // estimates, 0 before the first round
	meanConns  float64
	announced  map[string]time.Time // peer IP → when it last announced itself
	firstHeard map[string]time.Time // announced peer IP → when first heard
	startedAt  time.Time            // the first round
}

func newFairShare(s *Server, cfg FairShare) *fairShare {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &fairShare{
		s: s, cfg: cfg, id: hex.EncodeToString(b),
		peers:      newPeerConns(cfg.DialOptions, func() int { return cmp.Or(cfg.Port, s.listenPort()) }),
		rng:        mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		shed:       shedState{cooldown: cfg.Cooldown},
		announced:  map[string]time.Time{},
		firstHeard: map[string]time.Time{},
	}
}

// run plays a round at once, which announces this pod to its peers, then
// one every Interval until ctx ends.
func (f *fairShare) run(ctx context.Context) {
	f.mu.Lock()
	f.startedAt = time.Now()
	f.mu.Unlock()
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	defer f.peers.keep(nil)
	lastCalls, last := f.s.calls.Load(), time.Now()
	for {
		f.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		calls, now := f.s.calls.Load(), time.Now()
		f.mu.Lock()
		f.lastRate = float64(calls-lastCalls) / now.Sub(last).Seconds()
		f.mu.Unlock()
		lastCalls, last = calls, now
	}
}

// measureConns updates each client connection's smoothed load and returns
// the candidates to shed, the pod's load and its client connections.
func (f *fairShare) measureConns(now time.Time) (cands []connLoad, byID map[int]*conn, load float64, n int) {
	byID = map[int]*conn{}
	for _, c := range f.s.snapshot() {
		if c.internal.Load() || c.isDraining() {
			continue
		}
		n++
		l := c.smoothLoad(now)
		load += l
		if f.cfg.MinAge == Off || now.Sub(c.opened) >= f.cfg.MinAge {
			id := len(byID)
			byID[id] = c
			cands = append(cands, connLoad{id: id, load: l, opened: c.opened})
		}
	}
	return cands, byID, load, n
}

// smoothLoad folds the busy time since the last round into the
// connection's load (seconds of handler time per second, a moving average
// over about loadWindow) and returns it. Only the fair-share goroutine
// calls it.
func (c *conn) smoothLoad(now time.Time) float64 {
	busy := c.busy.Load()
	if c.loadAt.IsZero() {
		c.loadAt, c.loadBusy = c.opened, 0
	}
	dt := now.Sub(c.loadAt)
	if dt <= 0 {
		return c.load
	}
	rate := time.Duration(busy-c.loadBusy).Seconds() / dt.Seconds()
	w := 1 - math.Exp(-dt.Seconds()/loadWindow.Seconds())
	if c.loadAt.Equal(c.opened) {
		w = 1 // a new connection: its rate so far is all there is
	}
	c.load += w * (rate - c.load)
	c.loadAt, c.loadBusy = now, busy
	return c.load
}

// round exchanges loads once and sheds the excess, if any.
func (f *fairShare) round(ctx context.Context) {
	now := time.Now()
	cands, byID, ownLoad, ownConns := f.measureConns(now)
	peers := f.peerSet(now)
	f.peers.keep(peers)
	sample := peers
	if len(sample) > f.cfg.Sample {
		sample = slices.Clone(sample)
		f.rng.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
		sample = sample[:f.cfg.Sample]
	}
	qctx, cancel := context.WithTimeout(ctx, f.cfg.Interval)
	answers := f.peers.query(qctx, sample, &fairsharev1.GetLoadRequest{Instance: f.id, Port: uint32(f.peers.port())}, f.id)
	cancel()
	for _, a := range answers {
		f.learn(a.GetRecentPeers(), now)
	}

	meanLoad, meanConns := estimate(ownLoad, ownConns, answers, len(sample) == len(peers))
	f.mu.Lock()
	f.ownLoad, f.ownConns = ownLoad, ownConns
	wasAlone := f.alone
	f.alone = len(answers) == 0
	if len(answers) > 0 {
		if len(sample) < len(peers) && f.meanLoad > 0 {
			// A sample's mean: smooth it over rounds.
			meanLoad = (f.meanLoad + meanLoad) / 2
			meanConns = (f.meanConns + meanConns) / 2
		}
		f.meanLoad, f.meanConns = meanLoad, meanConns
	}
	f.mu.Unlock()
	obs, _ := f.s.obs.(FairShareObserver)
	if len(answers) == 0 {
		if !wasAlone {
			f.s.log.Warn("fair share: no peer answered; relying on age rotation", "peers_known", len(peers))
		}
		if obs != nil {
			obs.FairShareRound(0, ownConns, float64(ownConns), ownLoad, ownLoad, 0)
		}
		return
	}
	if wasAlone {
		f.s.log.Info("fair share: peers answer again", "peers", len(answers))
	}

	in := shedInput{now: now, own: ownLoad, mean: meanLoad, conns: cands}
	if f.cfg.Measure == MeasureConnections {
		in.own, in.mean = float64(ownConns), meanConns
	}
	f.mu.Lock()
	d := decideShed(in, f.cfg, f.shed)
	f.shed = d.next
	f.mu.Unlock()
	if d.backOff {
		f.s.log.Warn("fair share: shedding did not lower this pod's load (clients return to the same pod, as headless round_robin clients do); backing off",
			"own", in.own, "mean", in.mean, "measure", f.cfg.Measure.String(), "next_try_in", d.next.cooldown)
	}
	if obs != nil {
		obs.FairShareRound(len(answers), ownConns, meanConns, ownLoad, meanLoad, len(d.shed))
	}
	if len(d.shed) == 0 {
		return
	}
	conns := make([]*conn, 0, len(d.shed))
	for _, id := range d.shed {
		conns = append(conns, byID[id])
	}
	go func() {
		f.s.log.Info("fair share: shedding", "conns", len(conns), "own", in.own, "mean", in.mean, "measure", f.cfg.Measure.String())
		if ro, ok := f.s.obs.(RotationObserver); ok {
			ro.Rotated(string(ReasonFairShare), len(conns))
		}
		f.s.goAwayEach(context.WithoutCancel(ctx), conns, on(f.cfg.Spread), ReasonFairShare)
	}()
}

// estimate returns the fleet's mean load and connections per pod: exact
// when every peer was asked (own load with theirs), otherwise the mean of
// the sample's loads and of their own estimates, each an average over a
// sample of its own, which a second hand makes about Sample times larger.
func estimate(ownLoad float64, ownConns int, answers []*fairsharev1.GetLoadResponse, everyone bool) (load, conns float64) {
	load, conns = ownLoad, float64(ownConns)
	n := 1.0
	for _, a := range answers {
		load += a.GetLoad()
		conns += float64(a.GetConnections())
		n++
		if !everyone && a.GetMeanLoad() > 0 {
			load += a.GetMeanLoad()
			conns += a.GetMeanConnections()
			n++
		}
	}
	return load / n, conns / n
}

// peerSet returns the peers to sample: the peer watcher's, and those that
// announced themselves within announcedTTL, this server excluded.
func (f *fairShare) peerSet(now time.Time) []string {
	set := map[string]bool{}
	for _, ip := range f.s.Peers() {
		set[ip] = true
	}
	f.mu.Lock()
	for ip, at := range f.announced {
		if now.Sub(at) > announcedTTL {
			delete(f.announced, ip)
			delete(f.firstHeard, ip)
			continue
		}
		set[ip] = true
	}
	f.mu.Unlock()
	out := make([]string, 0, len(set))
	for ip := range set {
		if !f.s.isLocalAddr(ip) {
			out = append(out, ip)
		}
	}
	slices.Sort(out)
	return out
}

// learn records peers that announced themselves, or that a peer passed on
// ("ip:port", or an IP); a peer new to this pod counts as the peer set
// growing.
func (f *fairShare) learn(peers []string, now time.Time) {
	var added []string
	known := f.s.Peers()
	f.mu.Lock()
	for _, p := range peers {
		ip := p
		if host, _, err := net.SplitHostPort(p); err == nil {
			ip = host
		}
		if net.ParseIP(ip) == nil {
			continue
		}
		if f.s.isLocalAddr(ip) {
			continue
		}
		if _, ok := f.announced[ip]; !ok && !slices.Contains(known, ip) {
			added = append(added, ip)
			f.firstHeard[ip] = now
			f.growLocked(now)
		}
		f.announced[ip] = now
	}
	f.mu.Unlock()
	if len(added) > 0 {
		f.s.log.Info("fair share: peers announced themselves", "added", added)
	}
}

// grew tells fair share that the peer watcher saw the peer set grow.
func (f *fairShare) grew(now time.Time) {
	f.mu.Lock()
	f.growLocked(now)
	f.mu.Unlock()
}

// growLocked records that the peer set grew, for the futile-shed judgement
// (see growthGrace). The peers a pod learns in its own first growthGrace
// are the fleet it joined, not new pods: in a fleet that starts together
// every pod learns every other one then. f.mu held.
func (f *fairShare) growLocked(now time.Time) {
	if !f.startedAt.IsZero() && now.Sub(f.startedAt) > growthGrace {
		f.shed.grewAt = now
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

func (l loadServer) GetLoad(ctx context.Context, req *fairsharev1.GetLoadRequest) (*fairsharev1.GetLoadResponse, error) {
	f := l.f
	now := time.Now()
	if p, ok := peer.FromContext(ctx); ok && req.GetPort() != 0 && req.GetInstance() != f.id {
		if ta, ok := p.Addr.(*net.TCPAddr); ok {
			f.learn([]string{ta.IP.String()}, now)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &fairsharev1.GetLoadResponse{
		Connections: uint32(f.ownConns), CallsPerSecond: f.lastRate, Instance: f.id,
		Load: f.ownLoad, MeanLoad: f.meanLoad, MeanConnections: f.meanConns,
	}
	port := strconv.Itoa(f.peers.port())
	for ip, at := range f.firstHeard {
		if now.Sub(at) <= recentPeerTTL && len(resp.RecentPeers) < 16 {
			resp.RecentPeers = append(resp.RecentPeers, net.JoinHostPort(ip, port))
		}
	}
	return resp, nil
}
