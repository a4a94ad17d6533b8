package server

import "google.golang.org/grpc/backoff"

// SetReconnectBackoff replaces ClientOptions' connection backoff until
// restore is called, so that a test can watch it at a smaller scale.
func SetReconnectBackoff(c backoff.Config) (restore func()) {
	old := reconnectBackoff
	reconnectBackoff = c
	return func() { reconnectBackoff = old }
}
