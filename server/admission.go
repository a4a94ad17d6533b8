package server

import (
	"math"
	"strings"
	"time"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// Admission is fair share's second half. A shed client reconnects through
// the ClusterIP to a pod kube-proxy picks at random, so after a scale-up
// of 50 → 60 pods a shed connection lands on a new pod one time in six,
// and on an old pod, already at its share, the other five: sheds alone
// fill the new pods in about a minute (example/balance -scenario fleet).
// With admission, a pod at its share that heard of peers below theirs
// sends a new client connection on at its first unary call (the call is
// served; GOAWAY follows it), and the client picks again, until it lands
// where there is room.
//
// Bounds, so that a balanced fleet moves nothing and a client is not sent
// round for long:
//   - only while the last round's reports showed room (peers that hold a
//     connection or more and at least one fewer than the mean), and no
//     more connections a round than that room;
//   - at most one connection per client address per Interval (a client
//     that came straight back, as a headless Service's round_robin
//     clients do, is let in);
//   - never while the pod backs off from futile sheds, nor for health
//     checks (grpc.health.v1: kubelet's probes), the pod's own
//     connections (its REST gateway) or connections without a TCP
//     address.

// admitInput is what the admission decision knows of one connection's
// first call.
type admitInput struct {
	now       time.Time
	estimated bool // a round has estimated the fleet's mean
	alone     bool // no peer answered the last round
	backOff   bool // the pod backs off from futile sheds
	ownLoad   float64
	ownConns  int // client connections at the last round
	young     int // of them, those whose rate was not known yet (MeasureLoad)
	admitted  int // client connections let in since the last round
	meanLoad  float64
	meanConns float64
	room      int       // connections the peers heard of can take (roomIn)
	lastSent  time.Time // when a connection from the same address was last sent on; zero if never
}

// sendOn reports whether a new client connection should be sent on: the
// pod would hold more than its share with it (FairShare.Hysteresis above
// the mean, by load, its load counted at the fleet's mean load per
// connection; FairShare.Tolerance above ceil(mean), by connections) while
// peers have room.
func sendOn(in admitInput, cfg FairShare) bool {
	if cfg.AdmissionOff || !in.estimated || in.alone || in.backOff || in.room <= 0 {
		return false
	}
	if !in.lastSent.IsZero() && in.now.Sub(in.lastSent) < cfg.Interval {
		return false
	}
	with := in.ownConns + in.admitted + 1
	if cfg.Measure == MeasureConnections {
		return float64(with) > math.Ceil(in.meanConns-1e-9)+float64(cfg.Tolerance)
	}
	if in.meanConns <= 0 || in.meanLoad <= 0 {
		return false
	}
	perConn := in.meanLoad / in.meanConns
	// The connections whose rate is not known yet are not in ownLoad.
	return in.ownLoad+float64(in.young+in.admitted+1)*perConn > in.meanLoad*(1+cfg.Hysteresis)
}

// roomIn returns how many connections the peers of reports can take before
// they reach the mean: whole connections below meanConns, of the peers
// that hold at least one (a peer that holds none may not be an endpoint
// yet, and clients sent its way would land on the old pods) and, by load,
// are not above meanLoad.
func roomIn(reports []*fairsharev1.LoadReport, m Measure, meanLoad, meanConns float64) int {
	n := 0
	for _, r := range reports {
		c := float64(r.GetConnections())
		if c < 1 || m == MeasureLoad && r.GetLoad() > meanLoad {
			continue
		}
		n += max(0, int(math.Floor(meanConns-c)))
	}
	return n
}

// healthPrefix is the method prefix of grpc.health.v1, whose calls
// admission leaves alone: a kubelet gRPC probe opens a connection per
// probe.
const healthPrefix = "/grpc.health.v1.Health/"

// admit runs at a client connection's first call, when that is unary (a
// stream's may be long, and a GOAWAY would cut it at the grace), and sends the connection
// on (GOAWAY with MaxConnectionAgeGrace, after the call, which is served)
// when sendOn says so.
func (f *fairShare) admit(c *conn, method string, now time.Time) {
	if strings.HasPrefix(method, healthPrefix) || c.fromSelf() {
		return
	}
	ip := remoteIP(c)
	if ip == "" {
		return
	}
	f.mu.Lock()
	in := admitInput{
		now: now, estimated: f.estimated, alone: f.alone, backOff: f.shed.futile >= futileSheds,
		ownLoad: f.ownLoad, ownConns: f.ownConns, young: f.young, admitted: f.admitted,
		meanLoad: f.meanLoad, meanConns: f.meanConns, room: f.room, lastSent: f.bounced[ip],
	}
	send := sendOn(in, f.cfg)
	if send {
		f.room--
		f.bounced[ip] = now
	} else {
		f.admitted++
	}
	f.mu.Unlock()
	if send {
		go c.goAway(ReasonFairShare, on(f.s.cfg.MaxConnectionAgeGrace))
	}
}
