package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// load runs calls on every client until stop is called, and reports the
// calls made and the failures.
type load struct {
	calls, failed atomic.Int64
	firstErr      atomic.Value
	cancel        context.CancelFunc
	wg            sync.WaitGroup
}

func startLoad(clients []hellov1.HelloClient) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for _, c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				_, err := c.Hi(context.Background(), &hellov1.HiRequest{ToWho: "t"})
				l.calls.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	return l
}

func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed; first: %v", n, l.calls.Load(), l.firstErr.Load())
	}
	if l.calls.Load() == 0 {
		t.Error("no call was made")
	}
}

func noAge() server.Config {
	return server.Config{MaxConnectionAge: server.Off, MaxConnectionAgeGrace: 2 * time.Second}
}

// POST /rotate under load replaces every connection and loses no call.
func TestAdminRotateUnderLoad(t *testing.T) {
	cfg := noAge()
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	var clients []hellov1.HelloClient
	for range 4 {
		clients = append(clients, dial(t, addr, cfg))
	}
	l := startLoad(clients)
	ev.waitFor(t, 10*time.Second, "4 connections", func() bool { return ev.open() == 4 })

	// POST /rotate leaves connections younger than 1 s alone.
	time.Sleep(server.DefaultRotateMinAge)
	admin := httptest.NewServer(srv.AdminHandler())
	defer admin.Close()
	resp, err := http.Post(admin.URL+"/rotate?spread=400ms", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Rotated int    `json:"rotated"`
		Young   int    `json:"skipped_young"`
		MinAge  string `json:"min_age"`
		Reason  string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /rotate: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if body.Rotated != 4 || body.Young != 0 || body.MinAge != "1s" || body.Reason != "admin" {
		t.Errorf("POST /rotate answered %+v, want 4 rotated, none skipped, min age 1s, for reason admin", body)
	}
	// Every original connection closes and each client opens a new one.
	ev.waitFor(t, 10*time.Second, "the 4 old connections to close and 4 new to open", func() bool {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		return ev.closed["admin"] == 4 && ev.opened == 8
	})
	time.Sleep(200 * time.Millisecond) // calls on the new connections
	l.stop(t)
}

// Rotate honours fraction, count and spread, and skips draining connections.
func TestRotateFractionCountSpread(t *testing.T) {
	cfg := noAge()
	cfg.MaxConnectionAgeGrace = 5 * time.Second
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	connect(t, addr, cfg, 4)
	ctx := context.Background()
	if res, err := srv.Rotate(ctx, server.Rotation{Fraction: 0.5, MinAge: server.Off}); res.Rotated != 2 || err != nil {
		t.Fatalf("Rotate(fraction 0.5 of 4) = %+v, %v; want 2", res, err)
	}
	if res, err := srv.Rotate(ctx, server.Rotation{Count: 1, MinAge: server.Off}); res.Rotated != 1 || res.Draining > 2 || err != nil {
		t.Fatalf("Rotate(count 1) = %+v, %v; want 1 rotated, and the draining ones (those not closed yet) skipped", res, err)
	}
	if res, err := srv.Rotate(ctx, server.Rotation{Spread: 600 * time.Millisecond, MinAge: server.Off}); res.Rotated < 1 || err != nil {
		t.Fatalf("Rotate(all) = %+v, %v; want the remaining connections", res, err)
	}
	if ev.drained("api") < 4 {
		t.Errorf("%d connections drained for reason api, want at least 4", ev.drained("api"))
	}
	for _, tc := range []struct {
		r     server.Rotation
		field string
	}{
		{server.Rotation{Fraction: 1.5}, "server.Rotation.Fraction"},
		{server.Rotation{Fraction: -1}, "server.Rotation.Fraction"},
		{server.Rotation{Spread: -2}, "server.Rotation.Spread"},
		{server.Rotation{Spread: time.Hour}, "server.Rotation.Spread"},
		{server.Rotation{Count: -2}, "server.Rotation.Count"},
		{server.Rotation{MinAge: -time.Second}, "server.Rotation.MinAge"},
	} {
		_, err := srv.Rotate(ctx, tc.r)
		var ce *server.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Rotate(%+v) = %v; want a *ConfigError for %s", tc.r, err, tc.field)
		}
	}
}

// The GOAWAYs of a spread rotation are spaced over the window.
func TestRotateSpreadsOverWindow(t *testing.T) {
	cfg := noAge()
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	connect(t, addr, cfg, 3)
	begin := time.Now()
	res, err := srv.Rotate(context.Background(), server.Rotation{Spread: 800 * time.Millisecond, MinAge: server.Off})
	if res.Rotated != 3 || err != nil {
		t.Fatalf("Rotate = %+v, %v; want 3", res, err)
	}
	if took := time.Since(begin); took < 800*time.Millisecond {
		t.Errorf("Rotate returned after %v; the last of 3 GOAWAYs spread over 800ms must wait the whole window", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Rotate(ctx, server.Rotation{Spread: time.Second}); err != nil && err != context.Canceled {
		t.Errorf("Rotate with a cancelled context = %v", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	_, srv := start(t, svc("a"), server.WithAdminToken("s3cret"))
	admin := httptest.NewServer(srv.AdminHandler())
	defer admin.Close()
	var body string // of the last request
	do := func(method, path, token string) int {
		req, _ := http.NewRequest(method, admin.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
		return resp.StatusCode
	}
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/rotate", "", 401},
		{"POST", "/rotate", "wrong", 401},
		{"POST", "/rotate", "s3cret", 200},
		{"GET", "/rotate", "s3cret", 405},
		{"POST", "/rotate?fraction=2", "s3cret", 400},
		{"POST", "/rotate?spread=soon", "s3cret", 400},
		{"POST", "/rotate?count=-1", "s3cret", 400},
		{"POST", "/rotate?count=99999999999999999999", "s3cret", 400},
		{"POST", "/rotate?min_age=forever", "s3cret", 400},
		{"POST", "/rotate?spread=off&min_age=off", "s3cret", 200},
		{"GET", "/stats", "", 200},
		{"GET", "/nope", "", 404},
	}
	for _, c := range cases {
		if got := do(c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s (token %q) = %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
	// The 400s say what to change.
	for path, want := range map[string]string{
		"/rotate?count=99999999999999999999": "is out of range",
		"/rotate?count=many":                 "is not a whole number",
	} {
		if got := do("POST", path, "s3cret"); got != 400 || !strings.Contains(body, want) {
			t.Errorf("POST %s = %d %q; want 400 saying %q", path, got, body, want)
		}
	}
}

func TestAdminAddressMustBeLoopback(t *testing.T) {
	_, err := server.New(server.WithAdminAddr("0.0.0.0:9090"))
	if err == nil || !strings.Contains(err.Error(), "WithPublicAdmin") {
		t.Fatalf("New(WithAdminAddr(0.0.0.0:9090)) = %v; want an error pointing to WithPublicAdmin", err)
	}
	if _, err := server.New(server.WithAdminAddr("0.0.0.0:9090"), server.WithPublicAdmin()); err != nil {
		t.Fatalf("with WithPublicAdmin: %v", err)
	}
	if _, err := server.New(server.WithAdminAddr("localhost:9090")); err != nil {
		t.Fatalf("loopback admin: %v", err)
	}
}

// Rotations leave nothing behind: after 1,000 of them the goroutine count is
// back where it started.
func TestThousandRotationsLeakNoGoroutine(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 reconnects")
	}
	cfg := noAge()
	cfg.MaxConnectionAgeGrace = time.Second
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev))
	client := dial(t, addr, cfg)
	call := func() {
		if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	call()
	// settle waits for the single live connection, then for goroutines of
	// closed ones to exit (up to 2 s), and returns the goroutine count.
	settle := func(target int) int {
		ev.waitFor(t, 10*time.Second, "one open connection", func() bool { return ev.open() == 1 })
		n := runtime.NumGoroutine()
		for i := 0; i < 100 && n > target; i++ {
			time.Sleep(20 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	baseline := settle(0)
	opened := func() int {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		return ev.opened
	}
	for i := range 1000 {
		if _, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off}); err != nil {
			t.Fatal(err)
		}
		// Calls keep working while the client moves to its next connection.
		for deadline := time.Now().Add(10 * time.Second); opened() < i+2; {
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: no new connection", i+1)
			}
			call()
		}
	}
	after := settle(baseline)
	if after > baseline {
		t.Errorf("goroutines: %d before, %d after 1,000 rotations", baseline, after)
	}
}

// Rotate leaves young connections alone: they were just placed, and a GOAWAY
// right after a reconnect can fail calls of clients that retry only once.
func TestRotateSkipsYoungConnections(t *testing.T) {
	cfg := noAge()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg))
	if _, err := dial(t, addr, cfg).Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
		t.Fatal(err)
	}
	if res, err := srv.Rotate(context.Background(), server.Rotation{}); res.Rotated != 0 || res.Young != 1 || res.MinAge != time.Second || err != nil {
		t.Fatalf("Rotate() of a fresh connection = %+v, %v; want 0 rotated and 1 skipped as younger than 1s", res, err)
	}
	if res, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off}); res.Rotated != 1 || err != nil {
		t.Fatalf("Rotate(MinAge Off) = %+v, %v; want 1", res, err)
	}
}
