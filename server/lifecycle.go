package server

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/rotorkit/rotor/internal/lifecycle"
)

// Serve accepts connections on lis and serves them until Shutdown or Close,
// then returns ErrServerClosed; it returns the listener's error if lis
// fails first. Serve may be called for several listeners. Unlike Run, it
// serves no admin endpoints: mount AdminHandler yourself.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	stopped := s.shutdown
	s.serving = true
	s.mu.Unlock()
	if stopped {
		lis.Close()
		return ErrServerClosed
	}
	if a, ok := lis.Addr().(*net.TCPAddr); ok {
		s.port.CompareAndSwap(0, int32(a.Port))
	}
	s.noteLocalAddr(lis.Addr())
	s.startBackground()
	err := s.gs.Serve(&kitListener{Listener: lis, s: s})
	if err == nil || s.isShuttingDown() {
		return ErrServerClosed
	}
	return err
}

// ListenAndServe listens on the address of WithAddr (default ":50051") and
// calls Serve.
func (s *Server) ListenAndServe() error {
	lis, err := net.Listen("tcp", s.set.addr)
	if err != nil {
		return err
	}
	return s.Serve(lis)
}

// Run listens on the address of WithAddr, serves it and the admin endpoints
// (WithAdminAddr) until ctx ends, then runs Shutdown, bounded by
// ShutdownDelay + DrainTimeout and a second. It returns nil after a clean
// shutdown, the listener's error if serving fails first. Run does not
// handle signals: give it a ctx from SignalContext to stop on SIGTERM.
func (s *Server) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.set.addr)
	if err != nil {
		return err
	}
	if s.set.adminAddr != "" && !isLoopback(s.set.adminAddr) {
		s.log.Warn("admin endpoints are reachable beyond this host", "addr", s.set.adminAddr, "token_required", s.set.adminToken != "")
	}
	stopAdmin, err := s.serveAdmin()
	if err != nil {
		lis.Close()
		return err
	}
	defer stopAdmin()
	s.log.Info("serving gRPC", "addr", lis.Addr().String())

	return lifecycle.Run(ctx, s, func() error { return s.Serve(lis) }, ErrServerClosed, on(s.cfg.ShutdownDelay), on(s.cfg.DrainTimeout))
}

// Close stops the server at once: listeners and connections close, open
// calls fail, health reports NOT_SERVING, and the peer watcher, fair share
// and ORCA's sampling stop as in Shutdown. It returns once those have
// returned (at once, unless an Observer blocks); it does not wait for
// Shutdown's hooks. Prefer Shutdown.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()
	s.health.Shutdown()
	s.stopBackground()
	s.stop()
	<-s.bgDone
	return nil
}

// stop ends grpc-go's server, once: listeners close, connections close.
func (s *Server) stop() {
	s.stopOnce.Do(s.gs.Stop)
}

// SignalContext returns a copy of parent that is cancelled when the process
// receives SIGTERM (what the kubelet sends) or SIGINT, for Server.Run and
// gateway.Gateway.Run. After that first signal it stops listening, so a
// second one ends the process at once, as signals do by default. Call stop
// to release the signals earlier.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	go func() {
		select {
		case <-ch:
		case <-ctx.Done():
		}
		signal.Stop(ch)
		cancel()
	}()
	return ctx, cancel
}

// RotateOnSignal rotates every client connection, spread over RotateSpread,
// each time the process receives one of sigs (SIGHUP when none is given),
// until ctx ends. Call it in its own goroutine. On Windows no signal is
// free for it (Go delivers only interrupt and SIGTERM there, which
// SignalContext takes for shutdown): rotate with POST /rotate on the admin
// endpoints (WithAdminAddr) or Rotate.
func (s *Server) RotateOnSignal(ctx context.Context, sigs ...os.Signal) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGHUP}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			go func() {
				if _, err := s.Rotate(ctx, Rotation{Reason: ReasonSignal}); err != nil && ctx.Err() == nil {
					s.log.Warn("rotation on signal stopped", "err", err)
				}
			}()
		}
	}
}
