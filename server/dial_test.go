package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The recommended client keepalive never trips the server's ping
// enforcement (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), while the same
// client against a server that enforces a longer interval does: the control
// shows the test can see the GOAWAY. grpc-go's client floor is 10 s, so the
// pair takes about 45 s; both halves run in parallel.
func TestClientKeepaliveNeverTooManyPings(t *testing.T) {
	if testing.Short() {
		t.Skip("45 s keepalive test")
	}
	clientCfg := server.DefaultConfig()
	clientCfg.MinPingInterval = 5 * time.Second // ClientOptions: pings every 10 s
	clientCfg.MaxConnectionAge = server.Never

	tests := []struct {
		name       string
		serverPing time.Duration
		wantGoAway bool
	}{
		{"consistent pair", 5 * time.Second, false},
		{"control: server enforces 15s", 15 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := clientCfg
			cfg.MinPingInterval = tt.serverPing
			ev := newEvents()
			addr, _ := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
			cc := clientConn(t, addr, clientCfg)
			if _, err := hellov1.NewHelloClient(cc).Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
				t.Fatal(err)
			}
			// Idle from here: only keepalive pings cross the connection.
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			changed := cc.WaitForStateChange(ctx, connectivity.Ready)
			if changed != tt.wantGoAway {
				t.Errorf("connection left READY: %v (now %v), want %v", changed, cc.GetState(), tt.wantGoAway)
			}
			if !tt.wantGoAway && ev.open() != 1 {
				t.Errorf("server has %d open connections, want the first one still open", ev.open())
			}
		})
	}
}
