package server

import "time"

// A Reason says why a connection was told to go away.
type Reason string

// Reasons the kit itself uses. Rotate accepts any Reason, so callers can name
// their own triggers.
const (
	// ReasonAge: the connection reached its MaxConnectionAge.
	ReasonAge Reason = "age"
	// ReasonAPI: a program called Server.Rotate.
	ReasonAPI Reason = "api"
	// ReasonAdmin: an operator asked through the admin endpoint.
	ReasonAdmin Reason = "admin"
	// ReasonSignal: the process received SIGHUP.
	ReasonSignal Reason = "signal"
	// ReasonPeers: the peer watcher saw the set of pods grow.
	ReasonPeers Reason = "peers"
	// ReasonShutdown: the server is shutting down.
	ReasonShutdown Reason = "shutdown"
	// ReasonClient: the connection ended without a GOAWAY from the kit: the
	// client closed it, the network broke, or grpc-go closed it (idle or
	// keepalive timeout). Used only in ConnClosed.
	ReasonClient Reason = "client"
)

// An Observer receives the kit's connection events, to turn them into
// metrics. Methods are called from many goroutines and must not block. The
// interceptors package provides a Prometheus implementation (ConnMetrics);
// reasons are plain strings (the Reason values) so that it needs no import
// of this package.
type Observer interface {
	// ConnOpened is called when a connection is accepted.
	ConnOpened()
	// ConnDraining is called when the kit sends a connection GOAWAY.
	ConnDraining(reason string)
	// ConnClosed is called once a connection is closed, with the reason it
	// was drained for (ReasonClient when it was not), how long it lived and
	// how many calls it carried.
	ConnClosed(reason string, lifetime time.Duration, calls uint64)
}

type nopObserver struct{}

func (nopObserver) ConnOpened()                              {}
func (nopObserver) ConnDraining(string)                      {}
func (nopObserver) ConnClosed(string, time.Duration, uint64) {}
