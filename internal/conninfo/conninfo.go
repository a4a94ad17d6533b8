// Package conninfo carries what rotor's server knows about the connection a
// call arrived on to the telemetry of package interceptors, which must not
// import package server: whether the kit has sent the connection GOAWAY,
// when and why, and whether it is a lame duck (accepted while the server
// drains). Package server's outermost interceptor puts the connection in
// every call's context under [Key]; package interceptors reads it with
// [From] to annotate the call's span. Neither package depends on the other,
// and this one depends on nothing.
package conninfo

import (
	"context"
	"time"
)

// Conn is the connection a call arrived on, as the kit sees it. Its methods
// are safe for concurrent use and do not block.
type Conn interface {
	// GoAway returns the reason the kit sent the connection GOAWAY for (one
	// of internal/reasons.Rotation, or a caller's own Rotate reason) and
	// when; reason is "" while the connection serves.
	GoAway() (reason string, at time.Time)
	// LameDuck reports whether the connection was accepted after the
	// server began its drain (shutdown), from a client whose address list
	// still held the server.
	LameDuck() bool
}

// Key is the context key of a call's Conn. Package server stores its own
// connection record under it (the record implements Conn); nothing else may
// store a value under it.
type Key struct{}

// From returns the Conn of the call of ctx, or nil when ctx is not a call
// of rotor's server (a plain grpc.Server, or a call the kit could not tie to
// its connection).
func From(ctx context.Context) Conn {
	c, _ := ctx.Value(Key{}).(Conn)
	return c
}
