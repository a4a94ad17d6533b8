package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/server"
)

// TestConnectionRotation runs keep-alive clients for longer than
// MaxConnectionAge and counts the TCP connections they open: with rotation
// every client reconnects about once per age and no request fails; with
// rotation off each keeps its one connection.
func TestConnectionRotation(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	for _, tc := range []struct {
		name    string
		age     time.Duration
		run     time.Duration
		min     int // connections per client, at least
		max     int // and at most
		closing bool
	}{
		{name: "age 1s", age: time.Second, run: 3 * time.Second, min: 3, max: 4, closing: true},
		{name: "off", age: server.Off, run: 1500 * time.Millisecond, min: 1, max: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, base := startGateway(t, b, gateway.Config{MaxConnectionAge: tc.age})
			const clients = 4
			var wg sync.WaitGroup
			var failed, closes atomic.Int64
			conns := make([]int, clients)
			requests := make([]int, clients)
			deadline := time.Now().Add(tc.run)
			for i := range clients {
				wg.Go(func() {
					c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
					defer c.CloseIdleConnections()
					trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
						if !info.Reused {
							conns[i]++
						}
					}}
					for time.Now().Before(deadline) {
						req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
							"POST", base+"/v1/hi", strings.NewReader(fmt.Sprintf(`{"to_who":"client %d"}`, i)))
						resp, err := c.Do(req)
						if err != nil {
							t.Errorf("client %d, request %d: %v", i, requests[i], err)
							failed.Add(1)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							t.Errorf("client %d, request %d: status %d", i, requests[i], resp.StatusCode)
							failed.Add(1)
						}
						if resp.Close {
							closes.Add(1)
						}
						requests[i]++
						time.Sleep(5 * time.Millisecond) // a steady load, not a busy loop
					}
				})
			}
			wg.Wait()
			for i := range clients {
				if conns[i] < tc.min || conns[i] > tc.max {
					t.Errorf("client %d opened %d connections in %s (%d requests), want %d to %d",
						i, conns[i], tc.run, requests[i], tc.min, tc.max)
				}
			}
			if failed.Load() > 0 {
				t.Errorf("%d requests failed", failed.Load())
			}
			if got := closes.Load() > 0; got != tc.closing {
				t.Errorf("responses with Connection: close: %d, want some: %v", closes.Load(), tc.closing)
			}
			t.Logf("connections per client %v, requests %v, Connection: close %d", conns, requests, closes.Load())
		})
	}
}
