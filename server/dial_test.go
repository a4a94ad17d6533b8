package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

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
	clientCfg.MinPingInterval = 5 * time.Second // DialOptions: pings every 10 s
	clientCfg.MaxConnectionAge = server.Off

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
			// grpc-go hands the channel its picker before it sets the
			// channel's state, so a call can succeed while GetState still
			// says CONNECTING: wait for READY first.
			ready, cancelReady := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelReady()
			for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
				if !cc.WaitForStateChange(ready, s) {
					t.Fatalf("the channel did not report READY after a call succeeded (state %v)", s)
				}
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

// DialOptions caps the connection backoff, so that a client whose server
// was unreachable for a while connects within one capped delay of its
// return. The backoff is scaled down here (50 ms, cap 200 ms); a client
// without the option would follow grpc-go's default (1 s, ×1.6, ±20 %), whose
// next attempt after a 1.3 s outage comes at 2.1 s at the earliest, 0.8 s
// after the server is back.
func TestDialOptionsReconnectBackoff(t *testing.T) {
	restore := server.SetReconnectBackoff(backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond})
	defer restore()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // unreachable until the server below takes the port again

	cc, err := grpc.NewClient(addr, append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.Connect()
	time.Sleep(1300 * time.Millisecond)

	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	back := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			t.Fatalf("not connected 5 s after the server came back (state %v)", s)
		}
	}
	if took := time.Since(back); took > 600*time.Millisecond {
		t.Errorf("connected %v after the server came back; the capped backoff (200 ms) should have it within about that", took)
	}
}
