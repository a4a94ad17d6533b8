package testkit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// A CallLoad keeps callers making unary Hello.Hi calls until Stop, and
// counts the calls that began before Mark and the ones of those that
// failed: the shutdown tests use it to show that no call accepted before a
// SIGTERM or a Shutdown fails.
type CallLoad struct {
	marked               atomic.Bool
	before, failedBefore atomic.Int64
	firstErr             atomic.Value // error
	cancel               context.CancelFunc
	wg                   sync.WaitGroup
}

// callTimeout bounds each call of a CallLoad.
const callTimeout = 10 * time.Second

// StartCallLoad starts callers goroutines calling client.Hi back to back;
// they stop at Stop or at the end of the test.
func StartCallLoad(t testing.TB, client hellov1.HelloClient, callers int) *CallLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &CallLoad{cancel: cancel}
	t.Cleanup(func() { l.Stop() })
	for range callers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				before := !l.marked.Load()
				// A call of its own deadline, so that a hung server cannot
				// hold Stop (and the test's cleanup) for ever.
				callCtx, cancelCall := context.WithTimeout(context.Background(), callTimeout)
				_, err := client.Hi(callCtx, &hellov1.HiRequest{ToWho: "load"})
				cancelCall()
				if before {
					l.before.Add(1)
					if err != nil {
						l.failedBefore.Add(1)
						l.firstErr.CompareAndSwap(nil, err)
					}
				}
			}
		})
	}
	return l
}

// Mark makes the calls that begin from now on "after".
func (l *CallLoad) Mark() { l.marked.Store(true) }

// Stop ends the load, waits for the calls in flight and returns how many
// calls began before Mark, how many of them failed, and the first failure.
func (l *CallLoad) Stop() (before, failedBefore int64, firstErr error) {
	l.cancel()
	l.wg.Wait()
	err, _ := l.firstErr.Load().(error)
	return l.before.Load(), l.failedBefore.Load(), err
}
