package server

import "google.golang.org/grpc/backoff"

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
