// Package lifecycle holds the loops of rotor's long-running pieces: the
// serving loop that server.Server.Run and gateway.Gateway.Run share, so
// that the gRPC server and the REST gateway stop by the same rule (serve
// until the context ends, then shut down within the shutdown delay, the
// drain timeout and a second), and the loops that do something at
// intervals.
package lifecycle

import (
	"context"
	"errors"
	"time"
)

// A Server is what Run stops: a rotor gRPC server or gateway.
type Server interface {
	// Shutdown stops gracefully within ctx.
	Shutdown(ctx context.Context) error
	// Close stops at once.
	Close() error
}

// Run calls serve, which serves until srv stops, and waits for ctx to end.
// Then it calls srv.Shutdown with a context that ends delay + drain + 1 s
// later (one second for the rest of the shutdown), whatever ctx's own
// deadline, and returns Shutdown's error, or serve's unless it is closed,
// the error serve returns once srv has stopped. If serve fails first, Run
// closes srv, so that whatever else was started with it stops too, and
// returns serve's error.
func Run(ctx context.Context, srv Server, serve func() error, closed error, delay, drain time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- serve() }()
	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), delay+drain+time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; err == nil && !errors.Is(serr, closed) {
		err = serr
	}
	return err
}

// Every calls fn every interval, the first time one interval from now,
// until ctx ends; it returns then. The calls keep to their schedule
// whatever fn takes, but one that overruns the next call's time is
// followed at once, and the schedule starts again from there.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	next := time.Now().Add(interval)
	Loop(ctx, interval, func() time.Duration {
		fn()
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		return time.Until(next)
	})
}

// Loop calls fn once first has passed, then again each time the wait fn
// returned has, until ctx ends; it returns then. No call begins once Loop
// has seen ctx end, even when fn ended it and asked for no wait.
func Loop(ctx context.Context, first time.Duration, fn func() (wait time.Duration)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Both may be ready; select picks at random.
			if ctx.Err() != nil {
				return
			}
		}
		t.Reset(fn())
	}
}
