package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// headlessClient is a round_robin client whose address list changes only
// when the test says, as a dns:/// client's changes only when it re-resolves
// (at most once per 30 s in grpc-go, whatever GOAWAYs ask).
func headlessClient(t *testing.T, addrs ...string) (hellov1.HelloClient, func(addrs ...string)) {
	t.Helper()
	r := manual.NewBuilderWithScheme("test")
	state := func(addrs []string) resolver.State {
		var s resolver.State
		for _, a := range addrs {
			s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
		}
		return s
	}
	r.InitialState(state(addrs))
	cc := testkit.Dial(t, r.Scheme()+":///hello-headless", server.Config{}, grpc.WithResolvers(r))
	return hellov1.NewHelloClient(cc), func(addrs ...string) { r.UpdateState(state(addrs)) }
}

// callLoop calls Hi from two goroutines every 5 ms until stop, and counts
// the calls each server answered and the failures.
type callLoop struct {
	mu       sync.Mutex
	by       map[string]int
	failed   int
	firstErr error
	stop     func()
}

func startCalls(client hellov1.HelloClient) *callLoop {
	l := &callLoop{by: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				callCtx, cancelCall := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := client.Hi(callCtx, &hellov1.HiRequest{})
				cancelCall()
				l.mu.Lock()
				if err != nil {
					l.failed++
					if l.firstErr == nil {
						l.firstErr = err
					}
				} else {
					l.by[resp.GetFromWho()]++
				}
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	l.stop = func() { cancel(); wg.Wait() }
	return l
}

func (l *callLoop) served(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by[name]
}

// The issue this drain exists for: a headless Service's client keeps the
// old pod's address until it re-resolves, which a GOAWAY asks for but
// grpc-go holds back for up to 30 s. A server that closed its listener with
// its GOAWAY would refuse the reconnects in between; rotor serves them as a
// lame duck, loses no call, and ends its drain a second after the client
// has moved on.
func TestHeadlessClientLosesNoCallThroughShutdown(t *testing.T) {
	ev := newEvents()
	old, oldAddr := testkit.StartRotor(t, &testkit.Hello{Name: "old"}, server.WithObserver(ev),
		server.WithShutdownDelay(200*time.Millisecond), server.WithDrainTimeout(20*time.Second))
	_, newAddr := testkit.StartRotor(t, &testkit.Hello{Name: "new"})
	client, resolve := headlessClient(t, oldAddr)
	calls := startCalls(client)
	defer calls.stop()
	testkit.Eventually(t, 5*time.Second, "calls on the old server", func() bool { return calls.served("old") > 20 })

	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- old.Shutdown(context.Background()) }()
	// The GOAWAY goes out after the 200 ms delay; the client reconnects
	// to the only address it has, and is served.
	ev.waitFor(t, 5*time.Second, "the shutdown GOAWAY", func() bool { return ev.drained("shutdown") > 0 })
	served := calls.served("old")
	testkit.Eventually(t, 5*time.Second, "calls served by the lame duck", func() bool { return calls.served("old") > served+20 })
	time.Sleep(time.Second)
	resolve(newAddr) // the client's next resolution finds the new pod only
	moved := time.Now()
	testkit.Eventually(t, 5*time.Second, "calls on the new server", func() bool { return calls.served("new") > 20 })

	if err := <-done; err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	took, after := time.Since(begin), time.Since(moved)
	calls.stop()
	if calls.failed != 0 {
		t.Errorf("%d calls failed; first: %v", calls.failed, calls.firstErr)
	}
	// The drain ends about a second after the client left, not at the
	// 20 s DrainTimeout.
	if after < 900*time.Millisecond || after > 5*time.Second {
		t.Errorf("Shutdown returned %v after the client moved on (%v in all); want about 1 s (the drain waits a second for clients that come back)", after, took)
	}
	if ev.opens() < 2 {
		t.Error("the client never came back to the draining server")
	}
}

// A client that never moves (its address list keeps the old pod) is served
// until DrainTimeout, and sent GOAWAY every few seconds meanwhile (reason
// lameduck), each one a new ask to re-resolve.
func TestLameDuckNudgesAndEndsAtDrainTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("7 s drain")
	}
	ev := newEvents()
	old, oldAddr := testkit.StartRotor(t, &testkit.Hello{Name: "old"}, server.WithObserver(ev),
		server.WithShutdownDelay(server.Off), server.WithDrainTimeout(7*time.Second), server.WithMaxConnectionAgeGrace(time.Second))
	client, _ := headlessClient(t, oldAddr)
	calls := startCalls(client)
	defer calls.stop()
	testkit.Eventually(t, 5*time.Second, "calls on the old server", func() bool { return calls.served("old") > 20 })
	begin := time.Now()
	if err := old.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	took := time.Since(begin)
	if took < 6500*time.Millisecond || took > 9*time.Second {
		t.Errorf("Shutdown took %v with a client that never leaves; want about DrainTimeout (7 s)", took)
	}
	if n := ev.drained("lameduck"); n == 0 {
		t.Error("no lame-duck GOAWAY in 7 s; want one about 5 s after the client came back")
	}
}

// Age rotation stops when Shutdown begins: the shutdown GOAWAY follows
// within ShutdownDelay, and an age GOAWAY in between would only spend the
// client's re-resolution on an answer that may still hold this pod.
func TestNoAgeRotationDuringShutdownDelay(t *testing.T) {
	ev := newEvents()
	cfg := server.Config{MaxConnectionAge: time.Second, ShutdownDelay: 2500 * time.Millisecond}
	srv, addr := testkit.StartRotor(t, nil, server.WithConfig(cfg), server.WithObserver(ev))
	cc := clientConn(t, addr, cfg)
	calls := startCalls(hellov1.NewHelloClient(cc))
	defer calls.stop()
	ev.waitFor(t, 5*time.Second, "an age rotation", func() bool { return ev.drained("age") > 0 })
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	ages := ev.drained("age")
	ev.waitFor(t, 5*time.Second, "the shutdown GOAWAY", func() bool { return ev.drained("shutdown") > 0 })
	if n := ev.drained("age") - ages; n > 1 {
		// One may have been under way when Shutdown began.
		t.Errorf("%d age rotations during the 2.5 s shutdown delay with a 1 s age; want none", n)
	}
	calls.stop()
	cc.Close() // the client leaves; the drain ends a second later
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls.failed != 0 {
		t.Errorf("%d calls failed; first: %v", calls.failed, calls.firstErr)
	}
}
