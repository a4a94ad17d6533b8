package server

import (
	"math"
	"time"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// Admission is fair share's second half. A shed client reconnects through
// the ClusterIP to a pod kube-proxy picks at random, so after a scale-up
// of 50 → 60 pods a shed connection lands on a new pod one time in six,
// and on an old pod, already at its share, the other five: sheds alone
// filled the new pods in 35–65 s in the lab's runs (example/balance
// -scenario fleet; example/balance/fair-share-runs.md has the tables).
// With admission, a pod that would be above its share with a new client
// connection, while the peers it heard from in the last round have room,
// sends the connection on as it accepts it: its GOAWAY follows the
// server's SETTINGS (under TLS, the handshake), before the client's first
// call. The client picks again at once: gRPC clients dial a new
// connection for the calls a GOAWAY'd one did not carry (grpc-go's
// round_robin, which Config.DialOptions selects, on the spot; pick_first at
// its next call, which waits for it), until it lands where there is room.
// So a hop of the walk costs a dial, not a call interval: in
// BenchmarkFairShareScaleUp (200 → 220 pods, 2 calls/s per connection)
// judging at accept rather than after the first call took the time to
// fair from a median 10 s (6 runs) to 6.5–7.5 s (3 runs), at the price of
// a higher p99 call while clients walk (example/balance/testdata/
// runs-2026-12-04/fleet-one-process-accept.txt). A call
// the client made before it read the GOAWAY is served as on any draining
// connection; a stream that is such a connection's first call is not cut
// at MaxConnectionAgeGrace (spareStream), though it sees Draining.
//
// Bounds, so that a client is not sent round for long and a balanced fleet
// moves nothing:
//   - only within growthGrace (30 s) of the peer set growing (see
//     FairShare), when new pods wait to be filled, or, on a new pod, of
//     its joining a fleet that holds clients (joiningLocked): it takes
//     the old pods' sent-on clients as they walk. New pods that let in
//     every one held up to 8 on the way in one lab run of 50 → 60 and
//     left 11 pods off 4 at growth's end; in earlier runs pods at 6 at
//     growth's end shed past growth (example/balance/testdata/
//     runs-2026-12-06/fleet-lab-new-pod-admission.txt). In a fleet that is
//     already fair, the pods below their share are one or two of tens,
//     so a connection sent on would try tens of pods to find one: in the
//     lab (50 → 60 pods) admission at all times moved 8.9 connections per
//     pod per minute after the fleet was fair, against 2.1 without it;
//   - only while the last round's reports showed room: peers that hold a
//     connection or more and could take one more without going above
//     their share (by connections and, with MeasureLoad, by load), and no
//     more connections a round than that room, per pod;
//   - a pod sends at most admitBurst connections from one address on
//     within admitAgain, and lets the next ones in, so that many clients
//     behind one address (a client pod with many channels, a node's SNAT,
//     the lab's load generator) still move. A client that comes straight
//     back (session affinity, a sidecar that dials for every client) can
//     so be sent on up to admitBurst times per admitAgain for the 30 s,
//     a dial each time: a cost, not a failure. A pod cannot tell it from
//     another client behind the same address;
//   - never while the pod backs off from futile sheds, while it shuts
//     down, when MaxConnectionAgeGrace is Off, for the pod's own
//     connections (its REST gateway), for connections from a peer's
//     address (fair share's load queries: the peer set, and the pods that
//     announced themselves) or for connections without a TCP address.
//
// A pod cannot tell a client from other connections at accept, so within
// growth (or a new pod's joining) a pod above its share also sends on, and
// spends room on, a kubelet's gRPC probe (it dials the pod itself: sent on
// up to admitBurst times, then let in, a few dials more, answered all the
// same), a TCP health check, and a new pod's first load query before the pod
// knows of it (retried on the next dial, within the round). A unary call the
// client sent before it read the GOAWAY is cut, as on any draining
// connection, if it runs past MaxConnectionAgeGrace; a stream opened on the
// connection after its first call is cut then too. A connection sent on
// counts as a fair-share GOAWAY (ReasonFairShare).

// growingLocked reports whether the peer set grew within growthGrace; f.mu
// held.
func (f *fairShare) growingLocked(now time.Time) bool {
	return !f.shed.grewAt.IsZero() && now.Sub(f.shed.grewAt) < growthGrace
}

// joiningLocked reports whether the pod joined a fleet that held client
// connections within growthGrace: its first answered round found peers
// with clients (fairShare.joinedAt). It learns those peers at that round,
// which is no growth to it (growLocked), though it is to its peers, whose
// sent-on clients it takes. The pod decides once, at that round, from
// what its peers counted at their last rounds: a fleet whose load starts
// after its pods' first rounds (the lab's) does not count as joining; a
// pod whose first answered round comes after its peers counted clients
// (a fleet started while its clients wait, a pod long alone) does, and
// sends on for 30 s, a dial per hop; one whose sampled peers held none
// yet (new pods of a large scale-up) does not, and lets in as before.
// The 30 s start at that round, which can come before the pod is Ready;
// f.mu held.
func (f *fairShare) joiningLocked(now time.Time) bool {
	return !f.joinedAt.IsZero() && now.Sub(f.joinedAt) < growthGrace
}

// admittingLocked reports whether admission may send a connection on:
// within growth, or while the pod joins (joiningLocked); f.mu held.
func (f *fairShare) admittingLocked(now time.Time) bool {
	return f.growingLocked(now) || f.joiningLocked(now)
}

// admitAgain and admitBurst bound the connections a pod sends on from one
// address (see above). The window is long enough for a client that comes
// straight back to reconnect, even one that redials only at its next call.
func admitAgain(cfg FairShare) time.Duration { return max(2*time.Second, 2*cfg.Interval) }

const admitBurst = 4

// sentOnFrom is what a pod remembers of the connections it sent on from
// one address: how many, since when.
type sentOnFrom struct {
	since time.Time
	n     int
}

// admitInput is what the admission decision knows of one new connection.
type admitInput struct {
	now       time.Time
	estimated bool // a round has estimated the fleet's mean
	alone     bool // no peer answered the last round
	backOff   bool // the pod backs off from futile sheds
	admitting bool // within growthGrace of the peer set growing or of the pod joining (admittingLocked)
	ownLoad   float64
	ownConns  int // client connections at the last round
	young     int // of them, those whose rate was not known yet (MeasureLoad)
	admitted  int // client connections let in that ownConns leaves out (fairShare.admitted)
	meanLoad  float64
	meanConns float64
	room      int // connections the peers heard of can take (roomIn)
	sentFrom  int // connections from the same address sent on within admitAgain
}

// sendOn reports whether a new client connection should be sent on: the
// pod would hold more than its share with it (FairShare.Hysteresis above
// the mean, by load, its load counted at the fleet's mean load per
// connection; FairShare.Tolerance above ceil(mean), by connections) while
// peers have room.
func sendOn(in admitInput, cfg FairShare) bool {
	if cfg.AdmissionOff || !in.admitting || !in.estimated || in.alone || in.backOff || in.room <= 0 {
		return false
	}
	if in.sentFrom >= admitBurst {
		return false
	}
	with := in.ownConns + in.admitted + 1
	if cfg.Measure == MeasureConnections {
		return float64(with) > math.Ceil(in.meanConns-1e-9)+float64(cfg.Tolerance)
	}
	if in.meanConns <= 0 || in.meanLoad <= 0 {
		return false
	}
	perConn := loadPerConn(in.meanLoad, in.meanConns)
	// The connections whose rate is not known yet are not in ownLoad.
	return in.ownLoad+float64(in.young+in.admitted+1)*perConn > in.meanLoad*(1+cfg.Hysteresis)
}

// loadPerConn is the fleet's mean load per connection, the unit room is
// counted in; 0 when the fleet's mean connections are not known.
func loadPerConn(meanLoad, meanConns float64) float64 {
	if meanConns <= 0 {
		return 0
	}
	return meanLoad / meanConns
}

// roomOf returns how many connections a pod that holds conns client
// connections and load could take without going above its share: by
// connections, up to ceil(meanConns) + Tolerance, as sendOn counts; with
// MeasureLoad, the fewer of the whole connections below meanConns and of
// the connections at the fleet's mean load per connection below meanLoad ×
// (1 + Hysteresis). The connections count because a pod's load leaves out
// its young connections (rateKnown): a new pod that was just sent four
// reads as empty for a second. A pod that holds no connection may not be
// an endpoint yet (clients sent its way would land on the old pods) and
// has no room.
func roomOf(conns uint32, load float64, cfg FairShare, meanLoad, meanConns float64) int {
	c := float64(conns)
	if c < 1 {
		return 0
	}
	if cfg.Measure == MeasureConnections {
		return max(0, int(math.Ceil(meanConns-1e-9))+cfg.Tolerance-int(c))
	}
	if meanLoad <= 0 || meanConns <= 0 {
		return 0
	}
	perConn := loadPerConn(meanLoad, meanConns)
	byLoad := math.Floor((meanLoad*(1+cfg.Hysteresis)-load)/perConn + 1e-9)
	byConns := math.Floor(meanConns - c + 1e-9)
	return max(0, int(min(byLoad, byConns)))
}

// roomIn returns the room of the pods of reports: first hand, the sum of
// their own (roomOf), and second hand, the most room one of them heard of
// first hand (LoadReport.room), since a pod's sample of peers rarely holds
// the few new ones of a large fleet.
func roomIn(reports []*fairsharev1.LoadReport, cfg FairShare, meanLoad, meanConns float64) (firstHand, room int) {
	secondHand := 0
	for _, r := range reports {
		firstHand += roomOf(r.GetConnections(), r.GetLoad(), cfg, meanLoad, meanConns)
		secondHand = max(secondHand, int(r.GetRoom()))
	}
	return firstHand, max(firstHand, secondHand)
}

// letInLocked counts c, which admit lets in, in the pod's admitted
// connections and gives it the next number (fairShare.letIns, from 1);
// f.mu held.
func (f *fairShare) letInLocked(c *conn) {
	f.admitted++
	f.letIns++
	c.letIn.Store(f.letIns)
}

// admit runs when a client connection is accepted and reports whether the
// caller should send it on at once (GOAWAY with MaxConnectionAgeGrace,
// before any call is served): see sendOn and the bounds above. A peer's
// connection (its address is in the peer set or announced itself) is
// neither sent on nor counted as admitted.
func (f *fairShare) admit(c *conn, now time.Time) bool {
	if f.s.cfg.MaxConnectionAgeGrace == Off || c.fromSelf() || f.s.isShuttingDown() {
		return false
	}
	ip := remoteIP(c)
	if ip == "" {
		return false
	}
	f.mu.Lock()
	_, announced := f.announced[ip]
	admitting := f.admittingLocked(now)
	f.mu.Unlock()
	// Only within growth, or a new pod's 30 s of joining, can a connection
	// be sent on (sendOn), and only a round's worth of admitted clients
	// counts: the peer check, a scan of the peer set, runs only then.
	if !admitting || announced || f.s.isPeer(ip) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in := admitInput{
		now: now, estimated: f.estimated, alone: f.alone, backOff: f.shed.futile >= futileSheds, admitting: f.admittingLocked(now),
		ownLoad: f.ownLoad, ownConns: f.ownConns, young: f.young, admitted: f.admitted,
		meanLoad: f.meanLoad, meanConns: f.meanConns, room: f.room,
	}
	from := f.sentOn[ip]
	if from.n > 0 && now.Sub(from.since) < admitAgain(f.cfg) {
		in.sentFrom = from.n
	} else {
		from = sentOnFrom{since: now}
	}
	if !sendOn(in, f.cfg) {
		f.letInLocked(c)
		return false
	}
	f.room--
	from.n++
	f.sentOn[ip] = from
	return true
}
