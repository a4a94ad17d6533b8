package server

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Serve accepts connections on lis and serves each until it ends. It returns
// ErrServerClosed after Shutdown or Close, or the listener's error. Serve may
// be called for several listeners.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		lis.Close()
		return ErrServerClosed
	}
	s.serving = true
	s.listeners[lis] = struct{}{}
	s.mu.Unlock()
	if a, ok := lis.Addr().(*net.TCPAddr); ok {
		s.port.CompareAndSwap(0, int32(a.Port))
	}
	s.noteLocalAddr(lis.Addr())
	s.startBackground()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, lis)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		rc, err := lis.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Temporary() {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("rotor: accept failed; retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.serveAdmitted(rc)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Run listens on the configured address (WithAddr, default ":50051") and
// serves until ctx ends or the process receives SIGTERM or SIGINT, then runs
// Shutdown bounded by ShutdownDelay + DrainTimeout (plus a second). A second
// signal during the shutdown ends the process at once, as signals do by
// default. Run returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.set.addr)
	if err != nil {
		return err
	}
	return s.RunListener(ctx, lis)
}

// RunListener is Run on a listener the caller opened.
func (s *Server) RunListener(ctx context.Context, lis net.Listener) error {
	sigCtx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stopSignals()
	if s.set.adminAddr != "" && !isLoopback(s.set.adminAddr) {
		s.log.Warn("rotor: admin endpoints are reachable beyond this host", "addr", s.set.adminAddr, "token_required", s.set.adminToken != "")
	}
	stopAdmin, err := s.serveAdmin(ctx)
	if err != nil {
		lis.Close()
		return err
	}
	defer stopAdmin()
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go s.rotateOnHangup(bg, hup)
	s.log.Info("rotor: serving gRPC", "addr", lis.Addr().String())

	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			// The listener failed: stop everything else Run started too.
			s.Close()
		}
		return err
	case <-sigCtx.Done():
	}
	// From here a second SIGTERM/SIGINT takes its default action: exit now.
	stopSignals()
	stopBg()
	cfg := s.set.cfg
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownDelay+cfg.DrainTimeout+time.Second)
	defer cancel()
	err = s.Shutdown(ctx)
	if serr := <-served; !errors.Is(serr, ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Shutdown stops the server the way Kubernetes needs:
//
//  1. the health service reports NOT_SERVING for every service, so readiness
//     probes fail and the pod leaves the Service endpoints;
//  2. the server keeps serving for ShutdownDelay, while that news reaches
//     every node;
//  3. it stops accepting and sends every connection GOAWAY: clients open new
//     connections elsewhere and no new call is lost;
//  4. calls still open after DrainTimeout, or when ctx ends, are cut.
//
// Shutdown returns nil once every connection is closed, or ctx.Err() if ctx
// ended first (the server is stopped hard then). Calling it again waits for
// the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			s.shutdownErr = s.shutdown(ctx)
			close(s.shutdownDone)
		}()
	})
	select {
	case <-s.shutdownDone:
		return s.shutdownErr
	case <-ctx.Done():
		<-s.shutdownDone
		return s.shutdownErr
	}
}

func (s *Server) shutdown(ctx context.Context) error {
	cfg := s.set.cfg
	s.health.Shutdown()
	s.stopBackground()
	s.log.Info("rotor: shutting down: health is NOT_SERVING", "delay", cfg.ShutdownDelay, "drain_timeout", cfg.DrainTimeout)
	delay := time.NewTimer(cfg.ShutdownDelay)
	select {
	case <-delay.C:
	case <-ctx.Done():
		delay.Stop()
	}

	conns := s.stopAccepting()
	s.log.Info("rotor: draining connections", "conns", len(conns))
	// The hooks' context ends at the drain deadline (or with ctx), not when
	// the gRPC connections happen to be done, and Shutdown waits for them.
	drainCtx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
	defer cancel()
	s.mu.Lock()
	hooks := s.onDrain
	s.mu.Unlock()
	var hooksWG sync.WaitGroup
	for _, f := range hooks {
		hooksWG.Add(1)
		go func() {
			defer hooksWG.Done()
			f(drainCtx)
		}()
	}
	for _, c := range conns {
		s.drain(c, ReasonShutdown, cfg.DrainTimeout)
	}
	drained := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		hooksWG.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		s.log.Info("rotor: shutdown complete")
		return nil
	case <-ctx.Done():
		for _, c := range s.snapshot() {
			c.stop()
		}
		cancel()
		<-drained
		s.log.Warn("rotor: shutdown deadline passed; open calls were cut", "err", ctx.Err())
		return ctx.Err()
	}
}

// Close stops the server at once: listeners close and every open call fails.
// Prefer Shutdown.
func (s *Server) Close() error {
	s.health.Shutdown()
	s.stopBackground()
	for _, c := range s.stopAccepting() {
		c.stop()
	}
	s.connsWG.Wait()
	return nil
}

// stopAccepting closes every listener and returns the open connections.
func (s *Server) stopAccepting() []*conn {
	s.mu.Lock()
	s.closing = true
	for lis := range s.listeners {
		lis.Close()
	}
	s.mu.Unlock()
	return s.snapshot()
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// rotateOnHangup rotates every connection, spread over RotateSpread, each
// time hup (SIGHUP) fires, until ctx ends.
func (s *Server) rotateOnHangup(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			go func() {
				_, _ = s.Rotate(ctx, RotateOptions{Reason: ReasonSignal, Spread: s.set.cfg.RotateSpread})
			}()
		}
	}
}
