package server

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotorkit/rotor/internal/conninfo"
)

// conn is the kit's record of one accepted connection. grpc-go's one
// server serves it; the kit decides when it is sent GOAWAY.
//
// Its life has three states, and moves forward but for one step back
// (keepOpen: a GOAWAY asked for that could never be written, the
// connection not being HTTP/2, returns it to serving):
//
//		serving ──goAway──▶ draining ──closed──▶ gone
//		   └──────────────closed───────────────────┘
//
//	  - serving: accepted and in Server.conns. Age rotation's timer runs.
//	  - draining: the kit asked for a GOAWAY (goAway, once): draining is
//	    closed and reason set, so Draining(ctx) fires for its calls; the
//	    frameWriter writes the frame at the next HTTP/2 frame boundary; the
//	    grace timer runs, and closes the network connection if the client has
//	    not by then.
//	  - gone: the network connection is closed, by the client (the usual end
//	    of a drain), by grpc-go (keepalive, idle, handshake timeout, Stop) or
//	    by the grace timer (closed, once): it leaves Server.conns and the
//	    observer is told.
//
// mu guards the state, the timers and draining, which is closed under it.
type conn struct {
	srv      *Server
	raw      net.Conn // as accepted
	opened   time.Time
	key      string // connKeyOf(raw), how TagConn finds the record
	lameDuck bool   // accepted after the server began draining
	// internal marks a connection that carries only peers' fair-share
	// load queries: it is neither a client nor rotated. (Here it fills
	// the padding after lameDuck: the record is 312 B.)
	internal atomic.Bool
	calls    atomic.Uint64
	busy     atomic.Int64  // nanoseconds its unary handlers ran
	handled  atomic.Uint64 // unary handlers that returned, whose time is in busy
	// firstCall is when its first client call began, as nanoseconds after
	// opened (an offset, so that opened's monotonic clock reading is kept)
	// plus 1 (so that a call at the dial differs from none); 0 before it.
	// See setFirstCall and firstCallAt.
	firstCall atomic.Int64
	// Its smoothed rates, kept by the fair-share goroutine alone
	// (conn.rates): calls, handler seconds (capped, and for the cap's
	// reference: see rates) and handlers returned per second, and the
	// counts and time they were last folded in at.
	callRate    float64
	busyRate    float64
	refBusyRate float64
	handledRate float64
	lastCalls   uint64
	lastBusy    int64
	lastHandled uint64
	ratesAt     time.Time
	// letIn is the number admission gave the connection when it let it in
	// within growth (fairShare.letIns; 0: not let in): until its first
	// call it counts in the pod's admitted connections.
	letIn atomic.Uint64
	// fw is where GOAWAY frames go: set at accept for plaintext, after the
	// handshake under TLS (kitCreds). nil until then.
	fw atomic.Pointer[frameWriter]

	mu       sync.Mutex
	state    connState
	reason   Reason
	goAwayAt time.Time // when goAway moved it to draining
	draining chan struct{}
	ageTimer *time.Timer
	grace    *time.Timer
	// early is a GOAWAY asked for before the connection had a frameWriter
	// (in its TLS handshake): attach sends it.
	early []byte
	// sentAtAccept marks a connection admission sent on at accept.
	sentAtAccept bool
}

type connState uint8

const (
	connServing connState = iota
	connDraining
	connGone
)

// connKey is the context key of a call's *conn: the one that
// internal/conninfo reads, so that telemetry learns about the connection
// without importing this package (see conninfo.go).
type connKey = conninfo.Key

// Draining returns a channel that is closed when the connection carrying
// the call of ctx is sent GOAWAY (by age, Rotate, the peer watcher, fair
// share or a shutdown). A long-lived stream should select on it and end
// cleanly, so that its client reopens the stream on a new connection before
// the grace runs out. For a ctx that is not a call of a Server, Draining
// returns nil, a channel that never closes.
func Draining(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.draining
	}
	return nil
}

// connKeyOf identifies a connection by its two addresses, as grpc-go's
// stats handler is told them.
func connKeyOf(remote, local net.Addr) string {
	if remote == nil || local == nil {
		return ""
	}
	return remote.String() + "|" + local.String()
}

// goAway moves c from serving to draining: it asks for a GOAWAY with
// reason and closes the connection grace after, if the client has not. It
// reports whether it did: false when c is draining or gone already, or
// its stream cannot be written into (see frameWriter).
func (c *conn) goAway(reason Reason, grace time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != connServing {
		return false
	}
	frame := goAwayFrame(string(reason))
	if fw := c.fw.Load(); fw == nil {
		// Still in its TLS handshake: there is no HTTP/2 stream yet; the
		// frame goes out once there is (attach).
		c.early = frame
	} else if !fw.goAway(frame) {
		return false
	}
	c.state, c.reason, c.goAwayAt = connDraining, reason, time.Now()
	close(c.draining)
	if c.ageTimer != nil {
		c.ageTimer.Stop()
	}
	c.grace = time.AfterFunc(grace, func() { _ = c.raw.Close() })
	c.srv.obs.ConnDraining(string(reason))
	return true
}

// spareStream keeps a stream that is the first call of a connection sent on
// at accept from the grace's cut: the client opened it before it read the
// GOAWAY. Like any stream on a draining connection it sees Draining, and
// the client opens nothing new there; one that ignores Draining is cut as
// on a connection rotated by age, at MaxConnectionAge after the accept
// plus MaxConnectionAgeGrace (never with MaxConnectionAge Off). The
// connection, draining, counts in neither Stats nor fair share's load.
func (c *conn) spareStream() {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A grace already stopped (keepOpen: the GOAWAY was never written) or
	// fired stays so.
	if !c.sentAtAccept || c.grace == nil || !c.grace.Stop() {
		return
	}
	if age := c.srv.cfg.MaxConnectionAge; age != Off {
		c.grace = time.AfterFunc(time.Until(c.opened.Add(age))+on(c.srv.cfg.MaxConnectionAgeGrace), func() { _ = c.raw.Close() })
	}
}

// keepOpen undoes a GOAWAY that was never written (the connection's bytes
// turned out not to be HTTP/2, see frameWriter.step): c is serving again,
// its grace stopped, so its calls are not cut, and the calls that ask
// Draining from now on get a channel that stays open, so that a stream
// which ends on Draining is not reopened into a closed one over and over.
// Like any connection the kit cannot write into, it is never sent GOAWAY
// again (goAway reports false). ConnDraining was told of the GOAWAY. One
// admission sent on keeps the room it spent until the next round, and
// counts in the pod's connections from its first call, as any does.
func (c *conn) keepOpen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != connDraining {
		return
	}
	if c.grace != nil {
		c.grace.Stop()
		c.grace = nil
	}
	c.state, c.reason, c.goAwayAt, c.sentAtAccept = connServing, "", time.Time{}, false
	c.draining = make(chan struct{})
}

// closed moves c to gone, once, whatever closed the connection.
func (c *conn) closed() {
	c.mu.Lock()
	if c.state == connGone {
		c.mu.Unlock()
		return
	}
	reason := ReasonClient
	if c.state == connDraining {
		reason = c.reason
	}
	c.state = connGone
	for _, t := range []*time.Timer{c.ageTimer, c.grace} {
		if t != nil {
			t.Stop()
		}
	}
	c.mu.Unlock()
	c.srv.forget(c)
	c.srv.obs.ConnClosed(string(reason), time.Since(c.opened), c.calls.Load())
}

// isDraining reports whether c was sent GOAWAY (or is gone).
func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != connServing
}

// handshakeConn is what grpc-go gets for a TLS connection: the accepted
// connection, carrying its record to kitCreds, which wraps what the TLS
// handshake returns in a frameWriter.
type handshakeConn struct {
	net.Conn
	c *conn
}

// Close closes the connection and tells the kit it is gone; a handshake
// that fails ends here.
func (h *handshakeConn) Close() error {
	err := h.Conn.Close()
	h.c.closed()
	return err
}

// firstCallAt returns when the connection's first client call began, and
// false before it (conn.rates measures the first rate from it).
func (c *conn) firstCallAt() (time.Time, bool) {
	d := c.firstCall.Load()
	if d == 0 {
		return time.Time{}, false
	}
	return c.opened.Add(time.Duration(d - 1)), true
}

// setFirstCall records at as the time of the connection's first client
// call (countCall does, once).
func (c *conn) setFirstCall(at time.Time) {
	c.firstCall.Store(int64(max(0, at.Sub(c.opened))) + 1)
}
