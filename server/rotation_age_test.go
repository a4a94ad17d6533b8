package server_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// Age rotation under load: every connection is replaced about once a second
// and no call fails.
func TestAgeRotationLosesNoCall(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s load test")
	}
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = time.Second
	cfg.MaxConnectionAgeGrace = 2 * time.Second
	p := newPeers()
	addr, _ := start(t, svc("a"), append(p.options(), server.WithConfig(cfg))...)
	client := dial(t, addr, cfg)

	const minCalls, minRun = 20000, 10 * time.Second
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && (calls.Load() < minCalls || time.Since(begin) < minRun) {
				_, err := client.Hi(ctx, &hellov1.HiRequest{ToWho: "t", Message: "m"})
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d calls in %v over %d connections", calls.Load(), time.Since(begin).Round(time.Millisecond), p.count())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed; first: %v", n, calls.Load(), firstErr.Load())
	}
	if calls.Load() < minCalls {
		t.Errorf("only %d calls made, want at least %d", calls.Load(), minCalls)
	}
	if p.count() <= 5 {
		t.Errorf("calls used %d TCP connections, want more than 5 (one rotation a second)", p.count())
	}
}

// A stream shorter than the grace finishes on a connection that is told to go
// away while it runs.
func TestStreamShorterThanGraceSurvivesRotation(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = time.Second
	cfg.MaxConnectionAgeGrace = 3 * time.Second
	ev := newEvents()
	addr, _ := start(t, &testkit.Hello{Name: "a", IgnoreDrain: true}, server.WithConfig(cfg), server.WithObserver(ev))
	client := dial(t, addr, cfg)

	// 20 messages 100 ms apart: about 2 s, across the 0.9–1.1 s age.
	stream, err := client.HiStream(context.Background(), &hellov1.HiStreamRequest{ToWho: "t", Count: 20, IntervalMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream failed after %d messages: %v", got, err)
		}
		got++
	}
	if got != 20 {
		t.Errorf("received %d messages, want 20", got)
	}
	if ev.drained("age") == 0 {
		t.Error("the connection was not rotated by age while the stream ran")
	}
}

// A stream that ignores the drain notice is cut when the grace runs out.
func TestStreamIgnoringDrainIsCutAtGrace(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = time.Second
	cfg.MaxConnectionAgeGrace = time.Second
	addr, _ := start(t, &testkit.Hello{Name: "a", IgnoreDrain: true}, server.WithConfig(cfg))
	client := dial(t, addr, cfg)

	begin := time.Now()
	stream, err := client.HiStream(context.Background(), &hellov1.HiStreamRequest{ToWho: "t", IntervalMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	took := time.Since(begin)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("stream ended with %v, want Unavailable from the grace cut", err)
	}
	// Age 0.9–1.1 s plus grace 1 s.
	if took < 1800*time.Millisecond || took > 5*time.Second {
		t.Errorf("stream was cut after %v, want about age + grace (1.9–2.1 s)", took)
	}
}

// A stream that watches server.Draining ends cleanly, before the grace.
func TestStreamWatchingDrainEndsCleanly(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = time.Second
	cfg.MaxConnectionAgeGrace = 5 * time.Second
	addr, _ := start(t, svc("a"), server.WithConfig(cfg))
	client := dial(t, addr, cfg)

	begin := time.Now()
	stream, err := client.HiStream(context.Background(), &hellov1.HiStreamRequest{ToWho: "t", IntervalMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
		n++
	}
	took := time.Since(begin)
	if !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want a clean end (io.EOF)", err)
	}
	if n == 0 || took > 3*time.Second {
		t.Errorf("stream sent %d messages and ended after %v; want it to end at the age (~1 s), well before the 5 s grace", n, took)
	}
}
