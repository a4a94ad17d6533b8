package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	begin := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 20*time.Millisecond, func() {
			if calls.Add(1) == 5 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return when its context ended")
	}
	if n, took := calls.Load(), time.Since(begin); n != 5 || took < 100*time.Millisecond {
		t.Errorf("%d calls in %v; want 5, the first after 20 ms, so at least 100 ms", n, took)
	}
}

// A call that ends the context and asks for no wait is the last: with the
// timer due at once as well, Loop must not pick the timer (select picks at
// random among ready cases, so 200 rounds would miss it about never).
func TestLoopStopsWhenFnEndsTheContext(t *testing.T) {
	for range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		Loop(ctx, 0, func() time.Duration {
			calls++
			cancel()
			return 0
		})
		if calls != 1 {
			t.Fatalf("%d calls after the first ended the context; want 1", calls)
		}
	}
}

func TestLoopWaitsWhatFnSays(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var at []time.Duration
	begin := time.Now()
	Loop(ctx, 0, func() time.Duration {
		at = append(at, time.Since(begin))
		if len(at) == 3 {
			cancel()
		}
		return time.Duration(len(at)) * 30 * time.Millisecond
	})
	// Calls at 0, then 30 ms later, then 60 ms after that.
	if len(at) != 3 || at[1] < 30*time.Millisecond || at[2] < 90*time.Millisecond {
		t.Errorf("calls at %v; want 3, at 0, ≥30 ms and ≥90 ms", at)
	}
}

// srv is a Server whose Serve ends when it is shut down or closed.
type srv struct {
	stopped  chan struct{}
	shutdown atomic.Bool
	closed   atomic.Bool
}

var errClosed = errors.New("closed")

func (s *srv) serve() error { <-s.stopped; return errClosed }

func (s *srv) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	close(s.stopped)
	_, ok := ctx.Deadline()
	if !ok {
		return errors.New("Shutdown's context has no deadline")
	}
	return nil
}

func (s *srv) Close() error { s.closed.Store(true); return nil }

func TestRun(t *testing.T) {
	s := &srv{stopped: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, s, s.serve, errClosed, time.Second, time.Second); err != nil || !s.shutdown.Load() || s.closed.Load() {
		t.Errorf("Run after ctx ended = %v (shut down %v, closed %v); want nil after a Shutdown", err, s.shutdown.Load(), s.closed.Load())
	}
	s = &srv{stopped: make(chan struct{})}
	failed := errors.New("listener failed")
	if err := Run(context.Background(), s, func() error { return failed }, errClosed, 0, 0); err != failed || !s.closed.Load() {
		t.Errorf("Run with a failing serve = %v (closed %v); want its error, and srv closed", err, s.closed.Load())
	}
}
