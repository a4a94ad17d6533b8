package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// RotateOptions says which connections Rotate sends away, and how fast.
type RotateOptions struct {
	// Fraction of the open connections to rotate, in (0, 1]; the count is
	// rounded up, so any positive fraction of a non-empty set rotates at
	// least one. 0 means 1 (all).
	Fraction float64
	// Count, when positive, rotates exactly this many connections (at most
	// all) instead of a fraction.
	Count int
	// Spread is the window over which the GOAWAYs are sent, evenly spaced,
	// so that clients do not all reconnect in one herd. 0 sends them all at
	// once.
	Spread time.Duration
	// Reason is recorded in metrics and logs. Empty means ReasonAPI.
	Reason Reason
	// MinAge leaves alone connections younger than this: they were just
	// placed by a fresh pick (kube-proxy or DNS), so moving them gains
	// nothing, and a GOAWAY right after a reconnect can fail a call in
	// clients that retry a refused call only once (grpc-js). 0 means
	// DefaultRotateMinAge; negative rotates connections of any age.
	MinAge time.Duration
}

// DefaultRotateMinAge is the youngest a connection may be for Rotate to
// choose it, unless RotateOptions.MinAge says otherwise.
const DefaultRotateMinAge = time.Second

// Rotate sends GOAWAY to some of the client connections open when it is
// called (peers' fair-share load queries and connections younger than
// MinAge excepted), oldest first, spread over o.Spread, and returns how many it rotated once
// the last GOAWAY is sent. Clients move their new calls to a fresh connection
// at once (through kube-proxy or DNS, so possibly another pod); calls in
// flight finish within MaxConnectionAgeGrace. Connections already draining are
// skipped. If ctx ends first, Rotate stops and returns the count so far with
// ctx.Err().
func (s *Server) Rotate(ctx context.Context, o RotateOptions) (int, error) {
	if o.Fraction < 0 || o.Fraction > 1 || math.IsNaN(o.Fraction) {
		return 0, fmt.Errorf("rotor/server: RotateOptions.Fraction = %v is invalid: want a number in (0, 1], or 0 for all", o.Fraction)
	}
	if o.Spread < 0 {
		return 0, fmt.Errorf("rotor/server: RotateOptions.Spread = %v is invalid: want 0 or more", o.Spread)
	}
	if o.Count < 0 {
		return 0, fmt.Errorf("rotor/server: RotateOptions.Count = %d is invalid: want 0 or more", o.Count)
	}
	if o.Reason == "" {
		o.Reason = ReasonAPI
	}
	minAge := o.MinAge
	if minAge == 0 {
		minAge = DefaultRotateMinAge
	}
	now := time.Now()
	conns := s.snapshot()
	conns = slices.DeleteFunc(conns, func(c *conn) bool {
		return c.isDraining() || c.internal.Load() || now.Sub(c.opened) < minAge
	})
	slices.SortFunc(conns, func(a, b *conn) int { return a.opened.Compare(b.opened) })
	n := len(conns)
	switch {
	case o.Count > 0:
		n = min(o.Count, n)
	case o.Fraction > 0:
		n = int(math.Ceil(o.Fraction * float64(n)))
	}
	conns = conns[:n]
	s.log.Info("rotor: rotating connections", "reason", string(o.Reason), "conns", n, "open", len(s.snapshot()), "spread", o.Spread)
	if ro, ok := s.obs.(RotationObserver); ok {
		ro.Rotated(string(o.Reason), n)
	}

	grace := s.set.cfg.MaxConnectionAgeGrace
	var step time.Duration
	if n > 1 {
		step = o.Spread / time.Duration(n-1)
	}
	rotated := 0
	for i, c := range conns {
		if i > 0 && step > 0 {
			t := time.NewTimer(step)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return rotated, ctx.Err()
			}
		}
		if s.drain(c, o.Reason, grace) {
			rotated++
		}
	}
	return rotated, nil
}

// A RotationObserver is an Observer that also wants to know of each Rotate
// call: its reason and how many connections it chose.
type RotationObserver interface {
	Rotated(reason string, conns int)
}

func (c *conn) isDraining() bool {
	select {
	case <-c.draining:
		return true
	default:
		return false
	}
}

// Stats is a snapshot of the server's connections.
type Stats struct {
	Open     int `json:"open"`     // connections open, draining or not
	Draining int `json:"draining"` // connections told to go away whose calls still run
	Clients  int `json:"clients"`  // open, not draining, not a peer's load queries
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
