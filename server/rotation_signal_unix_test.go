//go:build unix

package server_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// RotateOnSignal rotates every connection when the process gets SIGHUP.
func TestRotateOnSignal(t *testing.T) {
	cfg := noAge()
	cfg.RotateSpread = server.Off
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.RotateOnSignal(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	client := dial(t, addr, cfg)
	if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(server.DefaultRotateMinAge) // rotations leave younger connections alone
	// signal.Notify is in place once RotateOnSignal runs; send until seen.
	testkit.Eventually(t, 5*time.Second, "a rotation for reason signal", func() bool {
		if ev.drained("signal") == 0 {
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
			time.Sleep(50 * time.Millisecond)
		}
		return ev.drained("signal") == 1
	})
}
