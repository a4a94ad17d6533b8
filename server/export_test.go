package server

import (
	"time"

	"google.golang.org/grpc/backoff"
)

// SetReconnectBackoff replaces ClientOptions' connection backoff until
// restore is called, so that a test can watch it at a smaller scale.
func SetReconnectBackoff(c backoff.Config) (restore func()) {
	old := reconnectBackoff
	reconnectBackoff = c
	return func() { reconnectBackoff = old }
}

// SetWRRServiceConfig replaces WeightedRoundRobin's service config for a
// test and returns a function that restores it.
func SetWRRServiceConfig(cfg string) (restore func()) {
	old := wrrServiceConfig
	wrrServiceConfig = cfg
	return func() { wrrServiceConfig = old }
}

// SetPeerPollPerPeer replaces how far each peer stretches the peer
// watcher's DNS polls under fair share, for servers created until restore
// is called: a benchmark that slows a fleet's pace slows its polls alike.
func SetPeerPollPerPeer(d time.Duration) (restore func()) {
	old := peerPollPerPeer
	peerPollPerPeer = d
	return func() { peerPollPerPeer = old }
}

// SetPeerNeverResolvedAfter replaces how long a peer watcher's name may stay
// unresolved from the start before the server warns, until restore is
// called.
func SetPeerNeverResolvedAfter(d time.Duration) (restore func()) {
	old := peerNeverResolvedAfter
	peerNeverResolvedAfter = d
	return func() { peerNeverResolvedAfter = old }
}
