package server

import (
	"time"

	"github.com/rotorkit/rotor/internal/conninfo"
)

// A call's *conn, in its context under connKey, is the conninfo.Conn that
// package interceptors reads to put the kit's events on the call's span.
var _ conninfo.Conn = (*conn)(nil)

// GoAway returns the reason c was sent GOAWAY for and when, or "" while it
// serves.
func (c *conn) GoAway() (reason string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		return "", time.Time{}
	}
	return string(c.reason), c.goAwayAt
}

// LameDuck reports whether c was accepted during the drain. The field is
// set before the connection is registered, and so before any call on it.
func (c *conn) LameDuck() bool { return c.lameDuck }
