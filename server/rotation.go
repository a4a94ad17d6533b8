package server

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
)

// A Rotation says which client connections Rotate sends GOAWAY, and how
// fast. Its zero value rotates every connection at least DefaultRotateMinAge
// old, spread over Config.RotateSpread.
type Rotation struct {
	// Fraction of the eligible connections to rotate, in (0, 1]; the count
	// is rounded up, so any positive fraction of a non-empty set rotates at
	// least one. 0 means all.
	Fraction float64
	// Count, when positive, rotates this many connections (at most all
	// that are eligible) instead of a fraction. 0 means: use Fraction.
	Count int
	// Spread is the window over which the GOAWAYs are sent, evenly spaced,
	// so that clients do not reconnect in one herd. 0 means
	// Config.RotateSpread; Off sends them all at once. At most 10 min.
	Spread time.Duration
	// MinAge leaves alone connections younger than this: they were just
	// placed by a fresh pick (kube-proxy or DNS), so moving them gains
	// nothing, and a GOAWAY right after a reconnect can fail a call in
	// clients that retry a refused call only once (grpc-js). 0 means
	// DefaultRotateMinAge; Off rotates connections of any age. At most
	// 1 h.
	MinAge time.Duration
	// Reason is recorded in metrics and logs. Empty means ReasonAPI.
	Reason Reason
}

// DefaultRotateMinAge is the youngest a connection may be for Rotate to
// choose it, unless Rotation.MinAge says otherwise.
const DefaultRotateMinAge = time.Second

// RotateResult says what a Rotate did.
type RotateResult struct {
	// Rotated is how many connections were sent GOAWAY.
	Rotated int `json:"rotated"`
	// Young is how many were left alone for being younger than MinAge.
	Young int `json:"skipped_young"`
	// Draining is how many were left alone for being sent GOAWAY already.
	Draining int `json:"skipped_draining"`
	// MinAge is the MinAge in force.
	MinAge time.Duration `json:"-"`
}

func (r Rotation) validate() error {
	var p problems
	if r.Fraction < 0 || r.Fraction > 1 || math.IsNaN(r.Fraction) {
		p.add("server.Rotation.Fraction", r.Fraction, "a number in (0, 1], or 0 for all")
	}
	if r.Count < 0 {
		p.add("server.Rotation.Count", r.Count, "0 (use Fraction) or more")
	}
	if r.Spread != Off && (r.Spread < 0 || r.Spread > maxShutdownStep) {
		p.add("server.Rotation.Spread", r.Spread, "at most 10m, 0 for Config.RotateSpread, or server.Off for all at once")
	}
	if r.MinAge != Off && (r.MinAge < 0 || r.MinAge > time.Hour) {
		p.add("server.Rotation.MinAge", r.MinAge, "at most 1h, 0 for the default 1s, or server.Off for any age")
	}
	return p.err()
}

// Rotate sends GOAWAY to some of the client connections open when it is
// called, oldest first, spread over r.Spread, and returns once the last
// GOAWAY is sent. Peers' fair-share load queries, connections younger than
// r.MinAge and connections already draining are left out. Clients move
// their new calls to a new connection at once (through kube-proxy or DNS,
// so possibly another pod); calls in flight finish within
// MaxConnectionAgeGrace. An invalid r is a *ConfigError, and nothing is
// rotated. If ctx ends first, Rotate stops and returns what it did so far
// with ctx.Err().
func (s *Server) Rotate(ctx context.Context, r Rotation) (RotateResult, error) {
	if err := r.validate(); err != nil {
		return RotateResult{}, err
	}
	if r.Reason == "" {
		r.Reason = ReasonAPI
	}
	minAge := on(conf.Or(r.MinAge, DefaultRotateMinAge))
	spread := on(conf.Or(r.Spread, s.cfg.RotateSpread))
	res := RotateResult{MinAge: minAge}
	now := time.Now()
	conns := slices.DeleteFunc(s.snapshot(), func(c *conn) bool {
		switch {
		case c.internal.Load():
			return true
		case c.isDraining():
			res.Draining++
			return true
		case now.Sub(c.opened) < minAge:
			res.Young++
			return true
		}
		return false
	})
	slices.SortFunc(conns, func(a, b *conn) int { return a.opened.Compare(b.opened) })
	n := len(conns)
	switch {
	case r.Count > 0:
		n = min(r.Count, n)
	case r.Fraction > 0:
		n = int(math.Ceil(r.Fraction * float64(n)))
	}
	conns = conns[:n]
	s.log.Info("rotating connections", "reason", string(r.Reason), "conns", n, "skipped_young", res.Young, "spread", spread)
	if ro, ok := s.obs.(RotationObserver); ok {
		ro.Rotated(string(r.Reason), n)
	}
	res.Rotated = s.goAwayEach(ctx, conns, spread, r.Reason)
	return res, ctx.Err()
}

// goAwayEach sends GOAWAY to conns, evenly spaced over spread, and returns
// how many it sent before ctx ended (connections already draining or gone
// are skipped). Calls in flight get MaxConnectionAgeGrace.
func (s *Server) goAwayEach(ctx context.Context, conns []*conn, spread time.Duration, reason Reason) int {
	grace := on(s.cfg.MaxConnectionAgeGrace)
	sent := 0
	paced(ctx, len(conns), spread, time.Now, sleep, func(i int) {
		if conns[i].goAway(reason, grace) {
			sent++
		}
	})
	return sent
}

// paced calls send(i) for i from 0 to n-1, the i-th i·spread/(n-1) after
// it starts, until ctx ends (wait is sleep, now time.Now, but for tests).
// It keeps to that schedule rather than sleeping the gap between two
// sends: on a busy host a timer fires a little late, and at 10,000
// connections over 5 s, where the gap is half a millisecond, the late gaps
// added up made the spread three times as long. Sends that fall behind go
// out at once until the schedule is met again.
func paced(ctx context.Context, n int, spread time.Duration, now func() time.Time, wait func(context.Context, time.Duration) bool, send func(i int)) {
	var step time.Duration
	if n > 1 {
		step = spread / time.Duration(n-1)
	}
	start := now()
	for i := range n {
		if i > 0 && !wait(ctx, start.Add(time.Duration(i)*step).Sub(now())) {
			return
		}
		send(i)
	}
}

// Stats is a snapshot of the server's connections.
type Stats struct {
	Open     int `json:"open"`     // connections open, draining or not
	Draining int `json:"draining"` // connections sent GOAWAY whose calls still run
	// Clients is the connections open, not draining, and not a fair-share
	// peer's load queries. A peer's connection is known as one by its first
	// query: it counts here from its accept to that query, usually one
	// handshake, up to about the asking pod's FairShare.Interval when
	// grpc-go connects between its rounds (a reconnect after a refused
	// dial). Fair share's own count starts at a connection's first call
	// (admission, within growth or a new pod's joining, counts the ones it
	// let in from accept).
	Clients int `json:"clients"`
}

// Stats returns the current connection counts.
func (s *Server) Stats() Stats {
	var st Stats
	for _, c := range s.snapshot() {
		st.Open++
		switch {
		case c.isDraining():
			st.Draining++
		case !c.internal.Load():
			st.Clients++
		}
	}
	return st
}
