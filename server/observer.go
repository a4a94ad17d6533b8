package server

import (
	"time"

	"github.com/rotorkit/rotor/internal/reasons"
)

// A Reason says why the kit sent a connection GOAWAY, or refused one.
// Rotate accepts any Reason, so callers can name their own triggers.
type Reason string

// The reasons the kit itself uses (the list the interceptors package
// creates its series from).
const (
	// ReasonAge: the connection reached its MaxConnectionAge.
	ReasonAge Reason = reasons.Age
	// ReasonAPI: a program called Server.Rotate.
	ReasonAPI Reason = reasons.API
	// ReasonAdmin: an operator asked through the admin endpoint.
	ReasonAdmin Reason = reasons.Admin
	// ReasonSignal: the process received the signal given to
	// RotateOnSignal (SIGHUP in the example).
	ReasonSignal Reason = reasons.Signal
	// ReasonPeers: the peer watcher saw the set of pods grow.
	ReasonPeers Reason = reasons.Peers
	// ReasonFairShare: fair-share balancing shed the connection, or sent
	// a new one on as it was accepted (admission, see FairShare).
	ReasonFairShare Reason = reasons.FairShare
	// ReasonShutdown: the server began its drain.
	ReasonShutdown Reason = reasons.Shutdown
	// ReasonLameDuck: a connection accepted during the drain, from a client
	// whose address list still held this pod, was sent away again to make
	// the client resolve once more.
	ReasonLameDuck Reason = reasons.LameDuck
	// ReasonClient: the connection ended without a GOAWAY from the kit: the
	// client closed it, the network broke, or grpc-go closed it (idle or
	// keepalive timeout). Used only in ConnClosed.
	ReasonClient Reason = reasons.Client
	// ReasonMaxConnections: a connection was refused at accept because
	// Config.MaxConnections were open. Used only in ConnRefused.
	ReasonMaxConnections Reason = reasons.MaxConnections
)

// An Observer receives the kit's connection events, to turn them into
// metrics. Methods are called from many goroutines and must not block, nor
// call Server.Shutdown or Close, which wait for the goroutines that call
// them (fair share's rounds and sheds, the peer watcher's rotations). The
// interceptors package provides a Prometheus implementation (ConnMetrics);
// reasons are plain strings (Reason values) so that it needs no import of
// this package.
type Observer interface {
	// ConnOpened is called when a connection is accepted.
	ConnOpened()
	// ConnDraining is called when the kit sends a connection GOAWAY. On a
	// connection it cannot write into (TLS given as grpc.Creds, which New's
	// log names) a GOAWAY asked for before the first frame is dropped: the
	// connection serves on, and its ConnClosed says ReasonClient.
	ConnDraining(reason string)
	// ConnClosed is called once a connection is closed, with the reason it
	// was sent GOAWAY for (ReasonClient when it was not), how long it lived
	// and how many calls it carried.
	ConnClosed(reason string, lifetime time.Duration, calls uint64)
}

// A RotationObserver is an Observer that also wants to know of each Rotate
// call: its reason and how many connections it chose.
type RotationObserver interface {
	Rotated(reason string, conns int)
}

type nopObserver struct{}

func (nopObserver) ConnOpened()                              {}
func (nopObserver) ConnDraining(string)                      {}
func (nopObserver) ConnClosed(string, time.Duration, uint64) {}
