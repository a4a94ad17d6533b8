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
// the peer watcher resolves, and those that announced themselves; with the
// pod itself, the fleet) for their load over rotor's LoadService, on the
// same gRPC port, and estimates the fleet's mean load per pod from their
// answers: their own loads and their own estimates. A pod that holds more
// than its share sends GOAWAY to just enough of its connections to bring
// it back, and its clients reconnect through the ClusterIP, where
// kube-proxy picks a pod at random (see decideShed for the policy). The
// measure is load (MeasureLoad): what each connection's calls cost the
// pod, its calls per second times CallCost plus its unary handlers' time,
// which sees skewed clients and uneven call costs; or the number of client
// connections (MeasureConnections).
//
// Admission: a shed client lands on a random pod, in a large fleet mostly on
// an old one already at its share. So for 30 s after the peer set grows (on
// a new pod, for 30 s after it joined a fleet that held clients: it takes
// the walking clients too; only admission, not its sheds) a pod that would
// be above its share with a new client connection sends it on as it accepts
// it, before its first call, while peers have room (pods tell each other the
// room they know of, LoadReport.room); the client dials again. A pod sends
// on no more than that room per round and at most 4 connections per client
// address per max(2 s, 2 × Interval), and while there is room an over-share
// pod sheds (by load) down to within Hysteresis of the mean (at once only
// down to the mean count: see growthShed), not only what a random landing
// would help, with connections up to (1 + Hysteresis) times the fleet's mean
// load per connection, the unit room is counted in; a heavier one c moves
// only while c ≤ (own − mean) × (1 + Hysteresis) (see admission.go and
// heaviest; AdmissionOff turns it off).
//
// Why it converges: the excess the pods above their share shed lands on
// every pod alike, so the pods above it keep a part a < 1 of it each round
// and the excess shrinks geometrically; pods within their share shed
// nothing. A fleet balanced within Hysteresis moves few connections: the
// noise of the measure and of the estimate still moves some (README.md has
// the figures). In fleets whose mean is estimated (more than Sample + 1
// pods), more than 30 s after the peer set last grew, a landing at random
// helps little. There, and past growth in fleets whose mean is exact, a
// pod whose load its count of connections explains (within Hysteresis) is
// judged by that count: it sheds only while the count is
// more than (1 + Hysteresis)·(pods − 1)/pods connections above the mean,
// the mean's error included; so, in a fleet of tens of pods with the
// default Hysteresis, never from ceil(mean) + 1 for a whole mean, where its
// connection would most likely land on a pod at the mean and only move the
// excess there (see countExplains and countHelps). That is against the
// mean as the pod estimates it: after an age wave, which re-picks every
// connection at random and spreads the pods from 0 to 8 connections for a
// mean of 4, some pods' samples put it at 3.2–3.6, beyond meanErr, and
// pods at 5 shed by count (10 and 13 times in two lab runs of 100 → 110
// pods; README.md's known limits; two of meanErr in place of one was tried
// and not kept: example/balance/fair-share-runs.md). Any other shed past
// growth is made, unless its excess is clear of the noise by load and by
// count, only once every round has wanted it for a while, so that a moment
// of the host's CPU read as load does not move a connection (see
// steadyWant, loadOnlyWant, waited and clearExcess): for 5 s, the load's
// time constant, when it would help by count in every one of those rounds
// (a pod at 6 for a mean of 4.5); for 15 s when only the pod's load
// reading explains it (a pod at 4 or 5 for a mean of 4 whose connections
// read costlier: a heavy client, a slower node, or the host's CPU), which
// in the emulated lab moved a connection of a fleet left alone now and
// then with 5 s (6 times in two 600 s runs), and once in five runs with
// 15 s (a pod at 4 reading 1.41 times the fleet's load per connection; see
// loadOnlyWant). So a heavy client's neighbours, past growth, move 15 s
// after its load began, and one whose client lands back on the pod (at
// random: admission is off past growth) once its rate is known (a second
// after its first call), without a new wait (see keptBack). In fleets whose
// mean is exact (up to Sample + 1 pods), past growth, a shed that helps by
// count (a pod at 5 for a mean of 4 in a fleet of 5) is made at once, and
// one only the load reading explains (a pod at 4 whose connections read
// costlier) after 15 s; a pod whose count explains its load is judged by
// that count there too (see waitsSteady). A pod that joined the fleet counts
// as past growth from its first round for its sheds (its admission sends
// on for 30 s: joiningLocked).
// Within 30 s of growth, in a fleet whose mean is estimated, a shed by
// load goes at once down to the fleet's mean count of connections rounded
// down, and below it, where only the load reading explains it, after 5 s
// (see growthShed); in one whose mean is exact, at once.
//
// A handler's time includes its waits for a CPU, which spike on a busy
// host or in a pod at its CPU limit, so a round counts a connection's
// handler time up to 4 times its average per handler, or CallCost if that
// is more, per handler that returned. A call that is costly and rare among
// cheap ones on its connection looks the same and counts in part only
// (example/balance/fair-share-runs.md has the figures).
//
// Logs: each shed is one Info line, "fair share: shedding", with how
// many connections it sheds (conns), the measure (measure), the pod's load
// and the fleet mean in the measure's unit (own, mean; with MeasureLoad
// also mean_err, the estimate's margin), the pod's client connections that
// have called (connections) and, with MeasureLoad, how many of them are
// too young for their load to count in own (young), and in seconds per
// second the loads of the connections it sheds (shed_loads) and the
// fleet's mean load per connection (per_conn; 0 when not known): enough
// to tell a shed the fleet needed from one the noise of the measure set
// off. By load, own / (connections − young) is the pod's load per
// connection. A shed that waits (see waitsSteady and growthShed: past
// growth one only the load reading explains waits 15 s, loadOnlyWant; one
// that helps by count and one below the mean count within growth, 5 s)
// and that a round no longer wants before its wait ends is one Debug
// line, "fair share: a shed that waited is no longer wanted", with waited,
// the time from the first round that wanted it to this one, which did not
// (so one round more than it was wanted), left, how long the shed still
// had to wait at the last round that wanted it (the 15 s or the 5 s
// less what it had waited), and this round's figures as above: how close
// the fleet's noise comes to moving a connection. A round no peer
// answered starts a wait again without this line.
//
// Churn bound: a pod sheds at most once per Cooldown and only its excess;
// within 30 s of growth (a new pod: of joining) it also sends on at most
// the room it heard of per round.
//
// Cost: each pod sends at most Sample small calls per Interval and answers
// about as many, whatever the size of the fleet: BenchmarkFairShareExchange
// measured 0.29–0.30 % of one core and 2.0–2.2 KB/s per pod in a fleet
// of 1,000 pods (two runs; real gRPC on loopback; README.md has the table
// for 50, 200 and 1,000). The exchange is rotor's own gRPC service rather
// than a gossip library such as memberlist, because it then needs no port,
// protocol or firewall rule beyond the one the pods already serve (and its
// TLS), and a sample of 4 already makes the per-pod cost flat. The
// estimate of the mean is exact when a pod asks every peer (fleets of up
// to Sample + 1 pods); in larger fleets it averages the sample's loads and
// estimates, smoothed over rounds (9–13 % from the true mean at 50 to 1,000
// pods in the benchmark); Hysteresis, and for sheds that count on a random
// landing a margin of about one standard error of the estimate (see
// heaviest), keep much of that error from moving connections.
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
// to the pod that shed them; a pod notices when three sheds in a row did
// not lower its connections, against the rest of the fleet's, while their
// clients' addresses came back, and from then on doubles its cooldown
// each time (up to a minute; two rounds within its share, with none of
// its shed clients back and not called yet, end it; the log says when a
// back-off begins and ends). For
// 30 s after the peer set grows (a pod it did not know announces itself,
// is passed on by a peer, or the peer watcher finds it, from 5 s after
// this pod's first round on) no shed is judged futile, nor later one
// that began before the peer set grew: until the new pods are ready, shed
// clients land on the old ones. A back-off that began before runs its
// course. For headless clients, weigh by load on the
// client side instead (WithORCA, WeightedRoundRobin).
type FairShare struct {
	// Measure is what fair share balances: MeasureLoad (the default), the
	// time the pod's unary handlers run, or MeasureConnections.
	Measure Measure
	// Interval between two rounds. Default 500 ms. Allowed: 100 ms to 1 min.
	Interval time.Duration
	// Sample is how many peers a pod asks per round. Default 4: a fleet of
	// up to 5 pods is asked in full; in a larger one a pod also hears from
	// about as many peers that ask it, and their estimates second hand.
	// Each peer asked is a connection kept open, so a pod keeps its sample
	// and swaps one peer every 10 rounds; peers that join (a scale-up)
	// enter it at once, about as often as in a fresh sample. Allowed: 1 to
	// 1000.
	Sample int
	// CallCost is, with MeasureLoad, what one call costs a pod beyond its
	// unary handler's time: grpc-go's work (transport, protobuf) and the
	// interceptors'. Default 100 µs, between what grpc-go spends on a unary
	// call over loopback on the lab machine back to back (55 µs, client
	// and server together) and with calls 1 to 10 ms apart (260 to 530 µs:
	// the runtime wakes for each). It is also the least time per handler
	// a round counts before it caps the handler time it reads as a
	// spike (see FairShare). Off: only handler time counts, and the cap
	// has no floor. Allowed: Off, or 1 µs to 1 s.
	CallCost time.Duration
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
	// MinAge leaves connections younger than this alone when shedding
	// (admission acts on a connection as it is accepted). Default
	// DefaultRotateMinAge. Allowed: Off (any age), or up to 1 min.
	MinAge time.Duration
	// Port is the peers' gRPC port. Default: the port this server listens
	// on. Allowed: 1 to 65535.
	Port int
	// AdmissionOff turns admission off: every new client connection stays
	// where kube-proxy sent it, and only sheds move connections. Default
	// false: for 30 s after the peer set grows (on a new pod, after it
	// joined a fleet that held clients), a pod at its share sends a new
	// client connection on as it accepts it, while pods have room (see
	// admission.go). In the emulated lab (example/balance
	// -scenario fleet -modes fair-share,fair-share-sheds) it filled the
	// new pods of 50 → 60 and 100 → 110 two to four times as fast; and
	// since the first rates and the margin of the mean's standard error
	// (see heaviest) removed much of the noise that moved connections, 50
	// → 60 without it did not fill within the run's 90 s (one run): a pod
	// at 5 connections for a mean of 4 moves its fifth only into room, and
	// fewer sheds now do by chance. example/balance/fair-share-runs.md has
	// the runs.
	AdmissionOff bool
	// DialOptions for the load queries. Default: plaintext. When the server
	// serves TLS, set transport credentials here (ClientTLS: the CA of the
	// pods' certificates and, for mutual TLS, the pod's own certificate) and
	// grpc.WithAuthority with a name the certificates carry: the queries go
	// to pod IPs, which certificates rarely list. New refuses TLS without
	// them.
	DialOptions []grpc.DialOption
}

// fairShareMinAge is the MaxConnectionAge below which New warns that age
// rotation works against fair share: on the real control plane, 20 clients
// scaled from 2 to 5 pods with age 30 s took 46 age and 87 fair-share
// GOAWAYs in the 80 s after the scale-up (39 fair-share ones with age 5 min).
const fairShareMinAge = time.Minute

// Measure is what fair share balances.
type Measure int

const (
	// MeasureLoad balances what each pod's calls cost it, in seconds per
	// second, smoothed over a few seconds: CallCost for every call, plus
	// the time unary handlers run.
	// It sees clients that call more than others and calls that cost more
	// than others, but counts a call that is costly and rare among cheap
	// ones on its connection in part only (see FairShare).
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

// loadWindow is the time constant of the smoothed rates a load is made of.
const loadWindow = 5 * time.Second

// rateMinAge is how long after its first call a connection's load counts,
// with MeasureLoad: a connection's first rate is its calls since its first
// call (see rates), and over a few milliseconds a few calls read as dozens
// a second. When rates counted from the dial, a kubelet gRPC probe (one
// Check on a connection of its own, every period) read as 50 calls/s 20 ms
// after its dial, and a client just moved by a shed as 4× its rate: the pod
// it landed on then looked over its share and shed again. On the real
// control plane, 20 clients at 5 calls/s on 5 pods, fair share sent 34–89
// GOAWAYs in the 80 s after a scale-up it had balanced in 9 s, and one run
// ended at 1.32. A second holds 5 of those calls.
//
// A connection that has made rateMinCalls calls counts sooner: a busy
// client's rate is known long before a second (at 50 calls/s, in 0.2 s),
// and the pod it lands on after a shed should not wait a second to see it.
// Ten calls (nine gaps between them) read the rate of a client that calls
// at random within about ±30 %, which the moving average (rates) then
// corrects over loadWindow; a
// probe's one call never gets there. The calls must also span
// rateMinCallsAge: ten calls in a burst on a fresh connection (a fan-out,
// calls queued while the client reconnected) must not read as hundreds a
// second.
const (
	rateMinAge      = time.Second
	rateMinCalls    = 10
	rateMinCallsAge = 200 * time.Millisecond
)

// rateKnown reports whether the connection's rate can be read yet, with
// MeasureLoad: rateMinAge after its first call, or rateMinCallsAge after
// it once it has made rateMinCalls calls. Not before its first call.
func (c *conn) rateKnown(now time.Time) bool {
	first, ok := c.firstCallAt()
	if !ok {
		return false
	}
	age := now.Sub(first)
	return age >= rateMinAge || age >= rateMinCallsAge && c.calls.Load() >= rateMinCalls
}

// recentPeerTTL is how long a pod passes on news of an announced peer, and
// announcedTTL how long it keeps an announced peer it has not heard from
// (DNS keeps the peers it lists).
const (
	recentPeerTTL = 10 * time.Second
	announcedTTL  = 30 * time.Second
)

func (f FairShare) withDefaults() FairShare {
	f.Interval = cmp.Or(f.Interval, 500*time.Millisecond)
	f.Sample = cmp.Or(f.Sample, 4)
	f.CallCost = cmp.Or(f.CallCost, 100*time.Microsecond)
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
		p.add(field("Sample"), f.Sample, "between 1 and 1000 peers, or 0 for the default 4")
	}
	if f.CallCost != Off && (f.CallCost < time.Microsecond || f.CallCost > time.Second) {
		p.add(field("CallCost"), f.CallCost, "between 1µs and 1s, 0 for the default 100µs, or server.Off for handler time only")
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
// load (seconds of CPU and handler time per second, see MeasureLoad), the
// fleet means of both as it estimates them, and how many connections it
// shed.
type FairShareObserver interface {
	FairShareRound(peers, ownConns int, meanConns, ownLoad, meanLoad float64, shed int)
}

// fairShare runs the exchange and the shedding.
type fairShare struct {
	s      *Server
	cfg    FairShare
	id     string // this server's identity in load answers
	peers  *peerConns
	rng    *mrand.Rand // the round goroutine's
	sample []string    // the peers asked last round; the round goroutine's
	known  []string    // the peer set last round, sorted; the round goroutine's
	rounds int         // rounds played; the round goroutine's
	// shedFrom holds the client addresses of the last shed's connections;
	// the round goroutine's.
	shedFrom map[string]bool
	// shedNoAddr counts the last shed's connections without a TCP
	// address; the round goroutine's.
	shedNoAddr int
	// sinceFrom holds the client addresses of every shed since the pod
	// was last at its share (shedState.shedN 0), since when, and how many
	// connections with an address those sheds sent GOAWAY to; the round
	// goroutine's. See cameBackAll.
	sinceFrom map[string]bool
	since     time.Time
	sinceN    int

	mu         sync.Mutex
	shed       shedState
	alone      bool // no peer answered in the last round
	lastRate   float64
	ownLoad    float64
	ownConns   int
	meanLoad   float64 // estimates; estimated is false before the first answers
	meanConns  float64
	estimated  bool
	heard      map[string]*fairsharev1.LoadReport // asker's instance → its report, since the last round
	announced  map[string]time.Time               // peer IP → when it last announced itself
	firstHeard map[string]time.Time               // announced peer IP → when first heard
	startedAt  time.Time                          // the first round
	joinedAt   time.Time                          // the first answered round, if its peers held client connections (joiningLocked)
	young      int                                // client connections whose rate is not known yet (MeasureLoad), last round
	room       int                                // connections the last round heard peers could take (roomIn), less those sent since
	reportRoom int                                // the room this pod tells its peers: its own and first hand
	// admitted is the client connections admit let in that ownConns
	// leaves out: those let in since the last measure read admitted, less
	// those the measure found had called, and those let in before that
	// read that had made no call at it (see settleAdmittedLocked).
	admitted          int
	admittedAtMeasure int // admitted when measureConns ran
	// letIns counts the connections admit ever let in, and numbers them
	// (conn.letIn): measureConns tells by the number whether one was let
	// in before or after it read admitted.
	letIns uint64
	sentOn map[string]sentOnFrom // client IP → its connections admit sent on
}

func newFairShare(s *Server, cfg FairShare) *fairShare {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &fairShare{
		s: s, cfg: cfg, id: hex.EncodeToString(b),
		peers:      newPeerConns(cfg.DialOptions, func() int { return cmp.Or(cfg.Port, s.listenPort()) }),
		rng:        mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		shed:       shedState{cooldown: cfg.Cooldown},
		heard:      map[string]*fairsharev1.LoadReport{},
		announced:  map[string]time.Time{},
		firstHeard: map[string]time.Time{},
		sentOn:     map[string]sentOnFrom{},
	}
}

// run plays a round at once, which announces this pod to its peers, then
// one every Interval until ctx ends.
func (f *fairShare) run(ctx context.Context) {
	if ctx.Err() != nil {
		return // stopped before it began
	}
	f.mu.Lock()
	f.startedAt = time.Now()
	f.mu.Unlock()
	// A ticker rather than lifecycle.Every: the rounds keep to the
	// schedule the first one began, as every lab run measured them.
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
			// Both may be ready; select picks at random.
			if ctx.Err() != nil {
				return
			}
		}
		calls, now := f.s.calls.Load(), time.Now()
		f.mu.Lock()
		f.lastRate = float64(calls-lastCalls) / now.Sub(last).Seconds()
		f.mu.Unlock()
		lastCalls, last = calls, now
	}
}

// connsMeasure is what a round measures of the pod's client connections
// (measureConns).
type connsMeasure struct {
	cands     []connLoad // the connections old enough to shed (MinAge) and, with MeasureLoad, whose rate is known
	candConns []*conn    // cands' connections: a candidate's id is its index in both
	load      float64    // the pod's load, seconds per second: its connections' (with MeasureLoad, whose rate is known)
	conns     int        // client connections that have called
	young     int        // of conns, those whose rate is not known yet (MeasureLoad)
	// returning counts the young connections that are clients of the
	// last shed come back (see shedInput.returning).
	returning int
	// letInWaiting counts the connections admission let in before the
	// measure read admitted (numbered up to letIns then) that have made
	// no call at it: in neither conns nor load. letInCalled counts those
	// let in after that read that have called by the time the measure
	// reached them: in conns, and in admitted since the read (see
	// settleAdmittedLocked).
	letInWaiting int
	letInCalled  int
}

// measureConns updates each client connection's smoothed rates and returns
// what the round measured of them (connsMeasure): the candidates to shed,
// the pod's load and its client connections, of them the young ones and
// the clients of the last shed come back, and the connections admission
// let in that have not called yet.
//
// A connection's load is what its calls cost the pod, in seconds per
// second: its calls per second times CallCost, plus the time its unary
// handlers run. A cheap call weighs what grpc-go spends on it (in grpc-go,
// tens to hundreds of µs against a handler's few), a costly one its
// handler's time. The pod's own CPU is no measure of this: at the call
// rates of most pods it is mostly the runtime's wake-ups and background
// work, which differ from pod to pod and no shed can move.
func (f *fairShare) measureConns(now time.Time) connsMeasure {
	perCall := on(f.cfg.CallCost).Seconds()
	var m connsMeasure
	f.mu.Lock()
	lastShed := f.shed.lastShed
	f.admittedAtMeasure = f.admitted
	letInsAtMeasure := f.letIns
	f.mu.Unlock()
	for _, c := range f.s.snapshot() {
		// A peer's connection, one draining (sent on, shed, rotated) and
		// one from the pod itself (its REST gateway, a sidecar: it can go
		// nowhere else) never count, nor count as let in (admit lets in
		// none from the pod itself).
		if c.internal.Load() || c.isDraining() || c.fromSelf() {
			continue
		}
		// A connection counts from its first client call: until then it
		// may be a peer's, which its first load query marks (a client
		// calls as soon as it has a call to make; one that redialled
		// after a GOAWAY, up to a call interval later). One admission
		// let in (at accept) before admitted was read above counts as
		// admitted until its first call; one let in after it, numbered
		// above letInsAtMeasure, is in admitted since, whenever it was
		// opened, and if it has called already, in conns too. calls is
		// read first: admit stored the number before the accept returned
		// the connection to grpc-go, so a connection seen to have called
		// shows its number; read the other way round, one let in between
		// the two reads would show 0 and a call, and count twice.
		called := c.calls.Load() != 0
		n := c.letIn.Load()
		if !called {
			if n != 0 && n <= letInsAtMeasure {
				m.letInWaiting++
			}
			continue
		}
		if n > letInsAtMeasure {
			m.letInCalled++
		}
		m.conns++
		if f.cfg.Measure == MeasureLoad && !c.rateKnown(now) {
			// Its rate is not known yet (see rateKnown).
			m.young++
			if f.cameBack(c, lastShed) {
				m.returning++
			}
			continue
		}
		calls, busy := c.rates(now, perCall)
		l := calls*perCall + busy
		m.load += l
		if f.cfg.MinAge == Off || now.Sub(c.opened) >= f.cfg.MinAge {
			m.cands = append(m.cands, connLoad{id: len(m.cands), load: l, opened: c.opened, back: f.cameBack(c, lastShed)})
			m.candConns = append(m.candConns, c)
		}
	}
	return m
}

// cameBack reports whether c is a client of the last shed (at lastShed)
// that came straight back: opened from an address that shed sent GOAWAY to,
// after the shed's round began and no later than Interval (its load
// queries, which its GOAWAYs follow, take up to that), its GOAWAYs' Spread
// and rateMinAge after it, counted from its dial (rateKnown counts from
// its first call, which comes later for a client that reconnects before it
// has a call to make, as round_robin does). A connection whose address is
// not TCP (a pipe, a Unix socket) has no address to tell, and never counts.
func (f *fairShare) cameBack(c *conn, lastShed time.Time) bool {
	ip := remoteIP(c)
	return ip != "" && f.shedFrom[ip] && c.opened.After(lastShed) && c.opened.Sub(lastShed) <= cameBackWindow(f.cfg)
}

// noteShed remembers the addresses of a shed's connections, begun at now:
// the last shed's (shedFrom, shedNoAddr), and every shed's since the pod
// was last at its share (sinceFrom, since, sinceN).
func (f *fairShare) noteShed(now time.Time, conns []*conn) {
	f.shedFrom, f.shedNoAddr = map[string]bool{}, 0
	if f.sinceFrom == nil {
		f.sinceFrom, f.since, f.sinceN = map[string]bool{}, now, 0
	}
	for _, c := range conns {
		if ip := remoteIP(c); ip != "" {
			f.shedFrom[ip], f.sinceFrom[ip] = true, true
			f.sinceN++
		} else {
			f.shedNoAddr++
		}
	}
}

// forgetSheds forgets the sheds' addresses once no shed pends: nobody can
// come back from them.
func (f *fairShare) forgetSheds() {
	f.shedFrom, f.shedNoAddr, f.sinceFrom, f.sinceN = nil, 0, nil, 0
}

// waitFor is how long a client connection back from a shed counts as
// waiting without a call (see cameBackAll): long enough for a round_robin
// client of 60 pods at 2 calls/s to reach this pod again, short enough
// that an idle connection does not keep a pod's sheds pending for good.
const waitFor = 30 * time.Second

// cameBackAll counts the client connections opened, at any age and
// whether they have called yet or not, from an address the last shed sent
// GOAWAY to since that shed began: the evidence that its clients came back
// (see shedInput.cameBack). One that has not called yet may in principle
// be a peer's from an address a client shares with it. The shed's
// connections that had no TCP address count as come back, since nothing
// can tell: so a pod whose clients dial over a Unix socket or a pipe backs
// off on its connections alone, as before the rule. 0 when no shed pends.
//
// waiting counts the client connections that have not called yet, opened
// in the last waitFor from an address that any shed since the pod was last
// at its share sent GOAWAY to, since the first of them, and at most as
// many as those sheds sent GOAWAY to: they are in neither the pod's
// connections nor its load (see measureConns). A headless Service's
// round_robin client reconnects at once and calls this pod only when its
// turn comes, seconds later for a slow one spread over many pods; left
// out, a pod whose shed clients came back read as within its share after
// each shed and forgot it, or read a shed as one that worked, and never
// backed off. Every shed since, not only the last: a pod still above its
// share sheds again before the clients of its last shed have called.
func (f *fairShare) cameBackAll(now time.Time) (all, waiting int) {
	all = f.shedNoAddr
	if len(f.sinceFrom) == 0 {
		return all, 0
	}
	f.mu.Lock()
	lastShed := f.shed.lastShed
	f.mu.Unlock()
	for _, c := range f.s.snapshot() {
		if c.internal.Load() || c.isDraining() || c.fromSelf() {
			continue
		}
		ip := remoteIP(c)
		if f.shedFrom[ip] && c.opened.After(lastShed) {
			all++
		}
		if f.sinceFrom[ip] && c.opened.After(f.since) && now.Sub(c.opened) <= waitFor && c.calls.Load() == 0 {
			waiting++
		}
	}
	return all, min(waiting, f.sinceN)
}

// remoteIP is the address a connection comes from, without its port, or ""
// when it has none (not TCP).
func remoteIP(c *conn) string {
	if a, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// fromSelf reports whether the connection comes from the address it
// arrived on: from the pod itself, as its REST gateway's does.
func (c *conn) fromSelf() bool {
	r, ok1 := c.raw.RemoteAddr().(*net.TCPAddr)
	l, ok2 := c.raw.LocalAddr().(*net.TCPAddr)
	return ok1 && ok2 && r.IP.Equal(l.IP)
}

// rates folds the calls and handler time since the last round into the
// connection's smoothed rates (per second, a moving average over about
// loadWindow) and returns them. Only the fair-share goroutine calls it.
//
// A connection's first round takes its rates so far, from its first call
// on and less that call (in calls, and in handler time and handlers by an
// average one's share). A client dials when it has a call to make, and
// counting that call too read a client at a steady 2 calls/s, first read
// 1 to 1.5 s after its first call, at up to 1.5 times its rate (1.5 at
// once a second, about 1.2 on average); the moving average kept a third of
// that error 5 s on. In the emulated lab of 50 → 60 pods, past the
// scale-up, the connection a shed client opened read 1.2 to 1.8 times the
// others, its pod looked above its share and shed another of its clients:
// one connection too many wandered from pod to pod. Now a client that
// calls at random, read at a set time, is read without bias, and one at a
// steady pace at 0.67 to 1 times its rate (about 0.8): low rather than
// high, so the pod a client lands on does not shed for it. The average
// corrects either over loadWindow. A first call that was a stream, or a
// unary one still running, added no handler time, and the first round
// takes an average handler's share off all the same.
//
// A round counts a connection's handler time up to spikeFactor times the
// handlers that returned in it times the larger of the connection's
// average time per handler and CallCost (perCall, in seconds): a
// handler's wall time also holds the time its goroutine waited for a CPU,
// and on a host short of CPU, or in a pod throttled at its CPU limit, a
// call now and then waits tens of milliseconds. At 2 calls/s one such
// wait made its connection read as twenty times its load for seconds
// (TestRatesCapHandlerTimeSpikes), and its pod shed a connection for
// nothing. The average is taken from each round's handler time bounded
// at refFactor (8) times the cap, not at the cap: so clipping does not
// lower the cap and a cost that stays lifts it (a step to 40 times the
// handler time is read at 0.8 of it within 10 s, to a thousand times
// within 15 s), while one wait does not lift it enough to let the next
// through (a second, a second later, reads as 2 times the load).
// Handlers that return are what it counts, not calls begun: a handler's
// time arrives when it returns. A connection's first round, which takes
// its rates so far, is not capped: it has no average yet.
//
// The cost: a round cannot tell such a wait from a call that is costly
// and rare. A costly call counts whole only when it fits under the cap:
// when its round holds enough other handlers, or such calls come often
// enough (about once in every spikeFactor rounds) to lift the average;
// otherwise it counts in part, whatever the call rate (in the test: one
// call in ten at 20 ms among calls of 50 µs at 2 calls/s, 0.3 of it; one
// in a hundred at 20 calls/s, 0.6; a 2 s handler every 5 s among 2 cheap
// calls a second, about half).
func (c *conn) rates(now time.Time, perCall float64) (calls, busy float64) {
	n, b, h := c.calls.Load(), c.busy.Load(), c.handled.Load()
	first := c.ratesAt.IsZero()
	since := c.ratesAt
	if first {
		// n, read before, may still miss the first call.
		var called bool
		if since, called = c.firstCallAt(); !called || n == 0 {
			return c.callRate, c.busyRate
		}
	}
	dt := now.Sub(since).Seconds()
	if dt <= 0 {
		return c.callRate, c.busyRate
	}
	dn, db, dh := float64(n-c.lastCalls), time.Duration(b-c.lastBusy).Seconds(), float64(h-c.lastHandled)
	if first {
		// Less the first call, in calls and in the handler time and
		// handlers of an average one.
		k := (dn - 1) / dn
		dn, db, dh = dn-1, db*k, dh*k
	}
	if db > 0 {
		// addBusy adds the time before the count: a handler's time
		// may be read a round before the handler is.
		dh = max(dh, 1)
	}
	capped, ref := db, db
	if !first && c.handledRate > 0 {
		perHandler := max(c.refBusyRate/c.handledRate, perCall)
		capped = min(db, dh*spikeFactor*perHandler)
		ref = min(db, dh*refFactor*spikeFactor*perHandler)
	}
	w := 1.0
	if !first {
		w = 1 - math.Exp(-dt/loadWindow.Seconds())
	}
	c.callRate += w * (dn/dt - c.callRate)
	c.busyRate += w * (capped/dt - c.busyRate)
	c.refBusyRate += w * (ref/dt - c.refBusyRate)
	c.handledRate += w * (dh/dt - c.handledRate)
	c.ratesAt, c.lastCalls, c.lastBusy, c.lastHandled = now, n, b, h
	return c.callRate, c.busyRate
}

// spikeFactor bounds a round's handler time per handler that returned, as
// a multiple of the larger of the connection's average and CallCost (see
// rates).
const spikeFactor = 4

// refFactor bounds the handler time a round adds to the average the cap is
// taken from, as a multiple of the cap (see rates): high enough that a
// cost that stays lifts the cap within seconds, low enough that one wait
// does not lift it past the next.
const refFactor = 8

// settleAdmittedLocked counts, at the end of a round, the connections
// admit let in that ownConns (m.conns) leaves out: those let in since the
// measure read admitted, less those of them the measure found had called
// (m.letInCalled), and those let in before it that had made no call at it
// (m.letInWaiting); f.mu held.
func (f *fairShare) settleAdmittedLocked(m connsMeasure) {
	f.admitted = f.admitted - f.admittedAtMeasure - m.letInCalled + m.letInWaiting
}

// round exchanges loads once and sheds the excess, if any.
func (f *fairShare) round(ctx context.Context) {
	now := time.Now()
	m := f.measureConns(now)
	cands, ownLoad, ownConns, young := m.cands, m.load, m.conns, m.young
	peers := f.peerSet(now)
	sample := f.nextSample(peers)
	everyone := len(sample) == len(peers)
	f.peers.keep(sample)
	qctx, cancel := context.WithTimeout(ctx, f.cfg.Interval)
	f.mu.Lock()
	req := &fairsharev1.GetLoadRequest{Instance: f.id, Port: uint32(f.peers.port()), Caller: &fairsharev1.LoadReport{
		Connections: uint32(ownConns), Load: ownLoad, MeanLoad: f.meanLoad, MeanConnections: f.meanConns, Estimated: f.estimated,
		Room: uint32(f.reportRoom),
	}}
	f.mu.Unlock()
	byIP := f.peers.query(qctx, sample, req, f.id)
	cancel()
	if ctx.Err() != nil {
		// Stopped (Shutdown or Close) while asking: the answers are
		// cut short, and the pod sheds nothing more.
		return
	}
	// A peer that did not answer (gone, while DNS still lists it) leaves
	// the sample; nextSample draws another.
	f.sample = slices.DeleteFunc(f.sample, func(ip string) bool { return byIP[ip] == nil })
	answers := make([]*fairsharev1.GetLoadResponse, 0, len(byIP))
	for _, a := range byIP {
		answers = append(answers, a)
		f.learn(a.GetRecentPeers(), now)
	}

	f.mu.Lock()
	heard := f.heard
	f.heard = map[string]*fairsharev1.LoadReport{}
	f.mu.Unlock()
	reps := reports(answers, heard, everyone)
	meanLoad, meanConns := estimate(ownLoad, ownConns, reps, everyone)
	f.mu.Lock()
	// admitted keeps what ownConns leaves out of the connections
	// admission let in (settleAdmittedLocked).
	f.ownLoad, f.ownConns, f.young = ownLoad, ownConns, young
	f.settleAdmittedLocked(m)
	for ip, from := range f.sentOn {
		if now.Sub(from.since) >= admitAgain(f.cfg) {
			delete(f.sentOn, ip)
		}
	}
	wasAlone := f.alone
	f.alone = len(answers) == 0
	if len(answers) > 0 {
		if !everyone && f.estimated {
			// A sample's mean: smooth it over rounds.
			meanLoad = (f.meanLoad + meanLoad) / 2
			meanConns = (f.meanConns + meanConns) / 2
		}
		if !f.estimated && slices.ContainsFunc(reps, func(r *fairsharev1.LoadReport) bool { return r.GetConnections() > 0 }) {
			f.joinedAt = now // see joiningLocked
		}
		f.meanLoad, f.meanConns, f.estimated = meanLoad, meanConns, true
	}
	if !f.cfg.AdmissionOff {
		var firstHand int
		firstHand, f.room = roomIn(reps, f.cfg, f.meanLoad, f.meanConns)
		f.reportRoom = firstHand + roomOf(uint32(ownConns), ownLoad, f.cfg, f.meanLoad, f.meanConns)
	}
	f.mu.Unlock()
	obs, _ := f.s.obs.(FairShareObserver)
	if len(answers) == 0 {
		f.mu.Lock()
		// No decision: a shed waits from the start again.
		f.shed.wantSince, f.shed.helpsSince = time.Time{}, time.Time{}
		f.mu.Unlock()
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

	cameBack, waiting := f.cameBackAll(now)
	in := shedInput{now: now, pods: len(peers) + 1, conns: cands, returning: m.returning + waiting, waiting: waiting, cameBack: cameBack}
	in = in.measured(f.cfg, ownLoad, ownConns, meanLoad, meanConns, loadsOf(reps), everyone, len(peers))
	in.restConns = restConns(reps, everyone)
	if !f.cfg.AdmissionOff {
		// Room counts, as in admission, while new pods wait to be filled.
		f.mu.Lock()
		if f.growingLocked(now) {
			in.room = f.room
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	waitFrom, left := f.shed.wantSince, f.shed.waitLeft
	d := decideShed(in, f.cfg, f.shed)
	f.shed = d.next
	f.mu.Unlock()
	if !waitFrom.IsZero() && !d.wants {
		f.s.log.Debug("fair share: a shed that waited is no longer wanted", "waited", now.Sub(waitFrom), "left", left, "own", in.own, "mean", in.mean,
			"mean_err", in.meanErr, "measure", f.cfg.Measure.String(), "connections", ownConns, "young", young, "per_conn", in.perConn)
	}
	if d.next.shedN == 0 {
		f.forgetSheds()
	}
	if d.backOff {
		f.s.log.Warn("fair share: the clients of this pod's sheds came back (its connections did not drop against the rest of the fleet's, as with headless round_robin clients); backing off",
			"own", in.own, "mean", in.mean, "measure", f.cfg.Measure.String(), "connections", in.judgedConns(), "of_them_not_called_yet", waiting,
			"rest_connections", in.restConns, "next_try_in", d.next.cooldown)
	}
	if d.ended {
		f.s.log.Info("fair share: back-off ended; this pod's sheds work again or it is within its share (past growth, by its count of connections where that explains its load)",
			"own", in.own, "mean", in.mean, "measure", f.cfg.Measure.String(), "connections", in.ownConns, "per_conn", in.perConn)
	}
	if obs != nil {
		obs.FairShareRound(len(answers), ownConns, meanConns, ownLoad, meanLoad, len(d.shed))
	}
	if len(d.shed) == 0 {
		return
	}
	if in.room > 0 {
		f.mu.Lock()
		f.room = max(0, f.room-len(d.shed)) // the shed fills that room
		f.mu.Unlock()
	}
	conns := make([]*conn, 0, len(d.shed))
	shedLoads := make([]float64, 0, len(d.shed)) // for the log line (see FairShare: Logs)
	for _, id := range d.shed {
		conns = append(conns, m.candConns[id]) // an id is its index in candConns and cands
		shedLoads = append(shedLoads, cands[id].load)
	}
	f.noteShed(now, conns)
	// In the background work: Shutdown and Close stop the spread (the
	// drain, or Close, ends every connection anyway) and wait for it.
	f.s.bg.Go(func() {
		if ctx.Err() != nil {
			return // stopped since the decision
		}
		f.s.log.Info("fair share: shedding", "conns", len(conns), "own", in.own, "mean", in.mean, "mean_err", in.meanErr, "measure", f.cfg.Measure.String(),
			"connections", ownConns, "young", young, "shed_loads", shedLoads, "per_conn", in.perConn)
		if ro, ok := f.s.obs.(RotationObserver); ok {
			ro.Rotated(string(ReasonFairShare), len(conns))
		}
		f.s.goAwayEach(ctx, conns, on(f.cfg.Spread), ReasonFairShare)
	})
}

// sampleSwapRounds is how many rounds a sample is kept before one member is
// swapped: every new member is a connection to dial and accept, which costs
// more than a few load queries over it.
const sampleSwapRounds = 10

// nextSample returns the peers to ask this round: all of them in a fleet of
// up to Sample + 1 pods; otherwise last round's sample, less the peers
// gone, with one member swapped for a random other peer every
// sampleSwapRounds rounds, filled up to Sample at random. A sample that
// changes slowly keeps the connections to peers (at most Sample, each way)
// instead of dialling new ones every round; the askers a pod hears from,
// and their estimates, reach the rest of the fleet.
//
// Peers that joined since the last round take each member's place with
// the chance of their share of the peer set, so that the sample holds them
// about as often as a fresh one would: a sample kept from before a
// scale-up holds none of the new pods, which hold none of the load yet,
// and the mean it estimates would stay high for as long as the swaps take
// to reach them, while the old pods wait for it to drop before they shed
// (example/balance/fair-share-runs.md has the lab's figures).
func (f *fairShare) nextSample(peers []string) []string {
	joined := newPeers(f.known, peers)
	f.known = peers
	if len(peers) <= f.cfg.Sample {
		f.sample = slices.Clone(peers)
		return f.sample
	}
	sample := slices.DeleteFunc(f.sample, func(ip string) bool {
		_, found := slices.BinarySearch(peers, ip)
		return !found
	})
	if len(joined) > 0 {
		share := float64(len(joined)) / float64(len(peers))
		for i := range sample {
			if ip := joined[f.rng.IntN(len(joined))]; f.rng.Float64() < share && !slices.Contains(sample, ip) {
				sample[i] = ip
			}
		}
	}
	f.rounds++
	if len(sample) == f.cfg.Sample && f.rounds%sampleSwapRounds == 0 {
		i := f.rng.IntN(len(sample))
		sample = slices.Delete(sample, i, i+1)
	}
	for len(sample) < f.cfg.Sample {
		ip := peers[f.rng.IntN(len(peers))]
		if !slices.Contains(sample, ip) {
			sample = append(sample, ip)
		}
	}
	f.sample = sample
	return sample
}

// newPeers returns the peers of now that were not in before (both sorted);
// none when before is empty: a pod's first peers are the fleet it joined.
func newPeers(before, now []string) []string {
	if len(before) == 0 {
		return nil
	}
	var out []string
	for _, ip := range now {
		if _, found := slices.BinarySearch(before, ip); !found {
			out = append(out, ip)
		}
	}
	return out
}

// reports returns what this round learnt of the fleet: the answers, and
// unless every peer was asked (the answers are then the whole fleet), the
// reports of the peers that asked this pod since the last round and were
// not among the answers. Hearing from the askers makes one call inform both
// sides, so a pod that asks Sample peers a round hears from about twice as
// many.
func reports(answers []*fairsharev1.GetLoadResponse, heard map[string]*fairsharev1.LoadReport, everyone bool) []*fairsharev1.LoadReport {
	out := make([]*fairsharev1.LoadReport, 0, len(answers)+len(heard))
	for _, a := range answers {
		out = append(out, &fairsharev1.LoadReport{
			Connections: a.GetConnections(), Load: a.GetLoad(),
			MeanLoad: a.GetMeanLoad(), MeanConnections: a.GetMeanConnections(), Estimated: a.GetEstimated(), Room: a.GetRoom(),
		})
		delete(heard, a.GetInstance())
	}
	if everyone {
		return out
	}
	for _, r := range heard {
		out = append(out, r)
	}
	return out
}

// estimate returns the fleet's mean load and connections per pod: exact
// when every peer reported (own load with theirs), otherwise the mean of
// the reports' loads and of their own estimates, each an average over
// reports of its own, which a second hand makes many times larger.
func estimate(ownLoad float64, ownConns int, reports []*fairsharev1.LoadReport, everyone bool) (load, conns float64) {
	load, conns = ownLoad, float64(ownConns)
	n := 1.0
	for _, r := range reports {
		load += r.GetLoad()
		conns += float64(r.GetConnections())
		n++
		if !everyone && r.GetEstimated() {
			load += r.GetMeanLoad()
			conns += r.GetMeanConnections()
			n++
		}
	}
	return load / n, conns / n
}

// restConns returns the mean of the peers' client connections when every
// peer reported (fleets of up to Sample + 1 pods), and 0 otherwise: a
// sample's estimate is about a tenth off (9–13 % in
// BenchmarkFairShareExchange), as much as a shed of one connection moves
// in a pod of five, and would alone decide whether a shed was futile (see
// futileShed).
func restConns(reports []*fairsharev1.LoadReport, everyone bool) float64 {
	if !everyone || len(reports) == 0 {
		return 0
	}
	var sum float64
	for _, r := range reports {
		sum += float64(r.GetConnections())
	}
	return sum / float64(len(reports))
}

// loadsOf returns the loads the reports give, in their order.
func loadsOf(reports []*fairsharev1.LoadReport) []float64 {
	out := make([]float64, len(reports))
	for i, r := range reports {
		out[i] = r.GetLoad()
	}
	return out
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

// growLocked records that the peer set grew: for growthGrace no shed is
// judged futile, nor later one that began before it grew (until the new
// pods are ready, shed clients land on the old ones). The peers a pod learns within joinWindow of its first round
// are the fleet it joined, not new pods. A peer learned later counts as
// growth even when it started with this pod (a rollout that starts its
// pods further apart): that only delays a back-off. f.mu held.
func (f *fairShare) growLocked(now time.Time) {
	if !f.startedAt.IsZero() && now.Sub(f.startedAt) >= joinWindow {
		f.shed.grewAt = now
	}
}

// joinWindow is how long after its first round a pod takes the peers it
// learns for the fleet it joined (see growLocked). Until 2026-12-01 it was
// growthGrace, 30 s: a fleet scaled up less than 30 s after fair share came
// on (TestRealCluster turns it on by a rollout and scales 2 → 5 about 20 s
// later) then judged the sheds that landed on the old pods while the new
// ones were not yet ready as futile and backed off, for up to a minute, and
// once ended at an imbalance of 1.50.
const joinWindow = 5 * time.Second

// maxHeard bounds the askers' reports a pod keeps between two rounds: on
// average it hears from Sample peers a round, and a pod that many more ask
// (a new pod, every peer's first pick) gains little from the rest.
const maxHeard = 64

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
	if c := req.GetCaller(); c != nil && req.GetInstance() != "" && req.GetInstance() != f.id && len(f.heard) < maxHeard {
		f.heard[req.GetInstance()] = c
	}
	resp := &fairsharev1.GetLoadResponse{
		Connections: uint32(f.ownConns), CallsPerSecond: f.lastRate, Instance: f.id,
		Load: f.ownLoad, MeanLoad: f.meanLoad, MeanConnections: f.meanConns, Estimated: f.estimated, Room: uint32(f.reportRoom),
	}
	port := strconv.Itoa(f.peers.port())
	for ip, at := range f.firstHeard {
		if now.Sub(at) <= recentPeerTTL && len(resp.RecentPeers) < 16 {
			resp.RecentPeers = append(resp.RecentPeers, net.JoinHostPort(ip, port))
		}
	}
	return resp, nil
}
