package server

import (
	"context"
	"sync"
	"time"
)

// lameDuckAge is how long a connection accepted during the drain is served
// before it, too, is sent GOAWAY. Its client came back because its address
// list still holds this pod; each GOAWAY asks the client to resolve again,
// and a client whose last answer was stale (a DNS cache) needs another ask.
// Short enough to ask often within a client's 30 s re-resolution window,
// long enough that a GOAWAY never lands right after a reconnect (grpc-js
// retries a refused call only once).
const lameDuckAge = 5 * time.Second

// lameDuckQuiet is how long the drain waits, once no client connection is
// open, for one that comes back: clients reconnect within milliseconds of a
// GOAWAY when their address list still holds this pod.
const lameDuckQuiet = time.Second

// Shutdown stops the server the way Kubernetes needs:
//
//  1. health reports NOT_SERVING for every service, so readiness probes
//     fail and the pod leaves the Service endpoints; age rotation, the
//     peer watcher, fair share (a round still asking its peers uses no
//     answer: it reports nothing to the Observer and sheds nothing) and
//     ORCA's sampling stop (calls and ORCA streams carry its last
//     figures); the hooks of RegisterOnShutdown start;
//  2. the server keeps serving for ShutdownDelay, while that news spreads;
//  3. the drain: every connection is sent GOAWAY; clients move their new
//     calls elsewhere, and calls in flight run on until DrainTimeout. The
//     listeners stay open: a client that comes back (a headless Service's
//     client still holding this pod's address) is served, as a lame duck,
//     and sent GOAWAY again after a few seconds, so that it resolves once
//     more;
//  4. the drain ends when no client connection is left and none has come
//     back for a second, or at DrainTimeout; then the listeners close and
//     calls still open are cut.
//
// Shutdown returns nil once that is done, the hooks have returned and the
// background work of step 1 has too (at once, unless an Observer blocks).
// It returns ctx.Err() if ctx ends before then (when it ends just as the
// last of these finishes, either): if the drain is not over, it cuts the
// calls still open at that moment; past the drain nothing is left to cut.
// The hooks are given ctx, and Shutdown always waits for them; once ctx
// has ended it waits for nothing else. Calling it again waits for the
// first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			s.shutdownErr = s.shutdownSteps(ctx)
			close(s.shutdownDone)
		}()
	})
	<-s.shutdownDone
	return s.shutdownErr
}

func (s *Server) shutdownSteps(ctx context.Context) (err error) {
	cfg := s.cfg
	s.mu.Lock()
	s.shutdown = true
	hooks := s.hooks
	s.mu.Unlock()
	s.health.Shutdown()
	s.stopBackground()
	defer func() {
		// Last, after the hooks: the background work has already seen
		// the stop.
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
			s.log.Warn("shutdown context ended before the shutdown hooks returned; they may have been cut short", "err", err)
			return
		}
		select {
		case <-s.bgDone:
		case <-ctx.Done():
			select {
			case <-s.bgDone: // both: select picks at random
			default:
				if err == nil {
					err = ctx.Err()
				}
			}
		}
	}()
	var hooksWG sync.WaitGroup
	for _, f := range hooks {
		hooksWG.Add(1)
		go func() {
			defer hooksWG.Done()
			f(ctx)
		}()
	}
	defer hooksWG.Wait()
	s.log.Info("shutting down: health is NOT_SERVING", "delay", on(cfg.ShutdownDelay), "drain_timeout", on(cfg.DrainTimeout))
	if !sleep(ctx, on(cfg.ShutdownDelay)) {
		return s.cut(ctx)
	}

	deadline := time.Now().Add(on(cfg.DrainTimeout))
	s.mu.Lock()
	s.draining = true
	s.drainEnd = deadline
	s.mu.Unlock()
	conns := s.snapshot()
	s.log.Info("draining: GOAWAY to every connection; serving clients that come back as a lame duck", "conns", len(conns))
	for _, c := range conns {
		c.goAway(ReasonShutdown, time.Until(deadline))
	}
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	var quiet *time.Timer
	var quietC <-chan time.Time
	for {
		if open, last := s.clientConns(); open == 0 {
			wait := lameDuckQuiet - time.Since(last)
			if wait <= 0 {
				break
			}
			if quiet == nil {
				quiet = time.NewTimer(wait)
				defer quiet.Stop()
			} else {
				quiet.Reset(wait)
			}
			quietC = quiet.C
		} else {
			quietC = nil
		}
		select {
		case <-s.changed:
		case <-quietC:
		case <-end.C:
			s.log.Warn("drain deadline passed; closing what is left", "conns", len(s.snapshot()), "lame_duck_served", s.lameDucks.Load())
			s.stop()
			return nil
		case <-ctx.Done():
			return s.cut(ctx)
		}
	}
	s.stop()
	s.log.Info("shutdown complete", "lame_duck_served", s.lameDucks.Load())
	return nil
}

// cut stops the server hard because ctx ended.
func (s *Server) cut(ctx context.Context) error {
	s.stop()
	s.log.Warn("shutdown context ended; open calls were cut", "err", ctx.Err())
	return ctx.Err()
}

// clientConns returns the client connections open (peers' load queries
// are not counted; a lame duck's are) and the time a connection last
// opened or closed.
func (s *Server) clientConns() (int, time.Time) {
	s.mu.Lock()
	last := time.Unix(0, s.lastChange)
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if !c.internal.Load() {
			n++
		}
	}
	return n, last
}

// goAwayLameDuck sends GOAWAY to a connection accepted during the drain,
// with the rest of the drain as its grace.
func (s *Server) goAwayLameDuck(c *conn) {
	s.mu.Lock()
	end := s.drainEnd
	s.mu.Unlock()
	if end.IsZero() {
		end = time.Now().Add(on(s.cfg.DrainTimeout))
	}
	c.goAway(ReasonLameDuck, time.Until(end))
}

// sleep waits for d or ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
