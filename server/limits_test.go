package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// refusals is an events observer that also counts refused connections.
type refusals struct {
	*events
	mu      sync.Mutex
	refused map[string]int
}

func (r *refusals) ConnRefused(reason string) {
	r.mu.Lock()
	r.refused[reason]++
	r.mu.Unlock()
	r.poke()
}

func (r *refusals) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[reason]
}

// plainConn dials addr with plain grpc-go defaults (pick_first, no
// keepalive) and no retry of its own, so one failed call is one attempt.
func plainConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func hi(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := hellov1.NewHelloClient(cc).Hi(ctx, &hellov1.HiRequest{ToWho: "t"})
	return err
}

// TestMaxConnections caps the server at 2 connections: a third is closed as
// soon as it is accepted, without a byte of HTTP/2, and its call fails with
// Unavailable; once one of the two closes, a new connection is served.
func TestMaxConnections(t *testing.T) {
	ev := &refusals{events: newEvents(), refused: map[string]int{}}
	cfg := noAge()
	cfg.MaxConnections = 2
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev), server.WithLogger(quietLog))
	first, second := plainConn(t, addr), plainConn(t, addr)
	for _, cc := range []*grpc.ClientConn{first, second} {
		if err := hi(cc); err != nil {
			t.Fatal(err)
		}
	}

	// A raw third connection: the server closes it before it writes
	// anything, not even its HTTP/2 SETTINGS.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := raw.Read(make([]byte, 64))
	if n != 0 || err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("over the cap, the server answered %d bytes, %v; want the connection closed at once", n, err)
	}
	ev.waitFor(t, 5*time.Second, "the raw connection to be refused", func() bool { return ev.count(string(server.ReasonMaxConnections)) >= 1 })
	if got := ev.count(string(server.ReasonMaxConnections)); got != 1 {
		t.Fatalf("%d refusals, want 1 (the raw connection)", got)
	}

	// A gRPC client over the cap fails fast, with Unavailable.
	third := plainConn(t, addr)
	if err := hi(third); status.Code(err) != codes.Unavailable {
		t.Fatalf("third connection's call: %v; want Unavailable", err)
	}
	third.Close() // before its reconnect backoff ends
	// The server closes a refused connection before it reports it, so the
	// client's failed call can come first: wait for the report.
	ev.waitFor(t, 5*time.Second, "the gRPC client's refusal", func() bool {
		return ev.count(string(server.ReasonMaxConnections)) >= 2
	})
	if got := ev.count(string(server.ReasonMaxConnections)); got != 2 {
		t.Errorf("%d refusals, want 2 (the raw connection and the gRPC client)", got)
	}
	if st := srv.Stats(); st.Open != 2 {
		t.Errorf("Stats().Open = %d, want 2: refused connections are never served", st.Open)
	}

	// Room again once a connection closes.
	first.Close()
	ev.waitFor(t, 5*time.Second, "the first connection to close", func() bool { return ev.open() == 1 })
	if err := hi(plainConn(t, addr)); err != nil {
		t.Errorf("a new connection after one closed: %v", err)
	}
	if err := hi(second); err != nil {
		t.Errorf("the second connection, open throughout: %v", err)
	}
}

// TestSilentConnectionLosesItsSlot: a connection that never sends its
// HTTP/2 preface is closed after HandshakeTimeout, so silent connections
// cannot hold the MaxConnections slots for long.
func TestSilentConnectionLosesItsSlot(t *testing.T) {
	ev := &refusals{events: newEvents(), refused: map[string]int{}}
	cfg := noAge()
	cfg.MaxConnections = 1
	cfg.HandshakeTimeout = time.Second
	addr, _ := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev), server.WithLogger(quietLog))
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ev.waitFor(t, 5*time.Second, "the silent connection to be accepted", func() bool { return ev.open() == 1 })
	begin := time.Now()
	_ = silent.SetReadDeadline(begin.Add(5 * time.Second))
	// The server's SETTINGS arrive at once; then the connection must end.
	if _, err := io.Copy(io.Discard, silent); isTimeout(err) {
		t.Fatalf("a connection silent for 5s is still open; HandshakeTimeout is %v", cfg.HandshakeTimeout)
	}
	took := time.Since(begin)
	t.Logf("closed after %v", took.Round(10*time.Millisecond))
	if took < cfg.HandshakeTimeout/2 {
		t.Errorf("closed after %v, well before HandshakeTimeout %v", took, cfg.HandshakeTimeout)
	}
	ev.waitFor(t, 5*time.Second, "the silent connection to close", func() bool { return ev.open() == 0 })
	if err := hi(plainConn(t, addr)); err != nil {
		t.Errorf("a client after the silent connection was closed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestPingFlood: a client that pings far more often than MinPingInterval
// is sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings" after grpc-go's three
// strikes, while a well-behaved client on the same server keeps its one
// connection and every call succeeds. grpc-go's own client cannot ping
// faster than every 10 s, so the flood comes from a raw HTTP/2 framer.
func TestPingFlood(t *testing.T) {
	p := newPeers()
	cfg := noAge()
	addr, _ := start(t, svc("a"), append(p.options(), server.WithConfig(cfg))...)
	good := dial(t, addr, cfg)
	if _, err := good.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
		t.Fatal(err)
	}
	l := startLoad([]hellov1.HelloClient{good})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	begin := time.Now()
	_ = c.SetReadDeadline(begin.Add(time.Second))
	var goAway *http2.GoAwayFrame
	acks := 0
	for goAway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY within 1s of the flood (%d pings answered): %v", acks, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			acks++
		case *http2.GoAwayFrame:
			goAway = f
		}
	}
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goAway.DebugData()) != "too_many_pings" {
		t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM \"too_many_pings\"", goAway.ErrCode, goAway.DebugData())
	}
	t.Logf("GOAWAY after %v and %d ping acks", time.Since(begin).Round(time.Millisecond), acks)

	// The well-behaved client went on through the flood, on one connection.
	for range 20 {
		if _, err := good.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	l.stop(t)
	if n := p.count(); n != 1 {
		t.Errorf("the well-behaved client used %d connections, want its first one throughout", n)
	}
}

// TestMaxConcurrentStreams: with a cap of 1, a second call on the same
// connection waits, without failing, until the first stream ends.
func TestMaxConcurrentStreams(t *testing.T) {
	cfg := noAge()
	cfg.MaxConcurrentStreams = 1
	var streamEnded, earlyUnary atomic.Bool
	early := server.WithUnaryInterceptors(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !streamEnded.Load() {
			earlyUnary.Store(true)
		}
		return h(ctx, req)
	})
	addr, _ := start(t, svc("a"), server.WithConfig(cfg), early)
	client := dial(t, addr, cfg)

	sctx, endStream := context.WithCancel(context.Background())
	defer endStream()
	testkit.OpenStream(sctx, t, client)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Hi(ctx, &hellov1.HiRequest{})
		done <- err
	}()
	// Waiting is the absence of an event, so only a timer can show it.
	select {
	case err := <-done:
		t.Fatalf("a second call finished (err %v) while the connection's one stream was open", err)
	case <-time.After(300 * time.Millisecond):
	}
	streamEnded.Store(true)
	endStream()
	if err := <-done; err != nil {
		t.Fatalf("the waiting call failed once the stream ended: %v", err)
	}
	if earlyUnary.Load() {
		t.Error("the unary call reached the server while the stream was open")
	}
}

// TestMaxRecvMsgSize: a message over MaxRecvMsgSize fails with
// ResourceExhausted, and the connection serves the next call.
func TestMaxRecvMsgSize(t *testing.T) {
	cfg := noAge()
	cfg.MaxRecvMsgSize = 1 << 10
	addr, _ := start(t, svc("a"), server.WithConfig(cfg))
	client := dial(t, addr, cfg)
	_, err := client.Hi(context.Background(), &hellov1.HiRequest{Message: strings.Repeat("x", 2<<10)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("2 KiB message to a 1 KiB limit: %v; want ResourceExhausted", err)
	}
	if _, err := client.Hi(context.Background(), &hellov1.HiRequest{Message: strings.Repeat("x", 512)}); err != nil {
		t.Errorf("512 B message after the refused one: %v", err)
	}
}
