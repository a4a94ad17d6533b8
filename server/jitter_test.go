package server_test

import (
	"context"
	"testing"
	"time"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// TestHugeAgeIsNotOverflow: the longest age a flag accepts short of "never"
// must not overflow, with its jitter, into a negative age that rotates
// every connection as soon as it opens. The jitter overflows for about
// half of all draws, so 10 connections miss a regression once in 1024 runs.
func TestHugeAgeIsNotOverflow(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = server.Never - time.Hour // -max-connection-age=2562046h
	ev := newEvents()
	addr, _ := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	for range 10 {
		client := dial(t, addr, cfg)
		for range 2 {
			if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := ev.drained("age"); n != 0 {
		t.Errorf("%d connections rotated by age right after they opened; MaxConnectionAge is %v", n, cfg.MaxConnectionAge)
	}
}
