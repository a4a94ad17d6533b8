package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/conninfo"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// heldHello hands the context of each Hi call to the test and answers
// when the test says.
type heldHello struct {
	hellov1.UnimplementedHelloServer
	calls   chan context.Context
	release chan struct{}
}

func (h *heldHello) Hi(ctx context.Context, _ *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	h.calls <- ctx
	<-h.release
	return &hellov1.HiResponse{FromWho: "held"}, nil
}

// The kit's outermost interceptor hands every call its connection as a
// conninfo.Conn, which is how package interceptors puts the kit's events on
// the call's span without importing this package: serving, then the reason
// and time of a GOAWAY sent while the call runs.
func TestCallContextCarriesItsConnection(t *testing.T) {
	svc := &heldHello{calls: make(chan context.Context), release: make(chan struct{})}
	addr, srv := start(t, svc)
	client := dial(t, addr, server.Config{})
	answered := make(chan error, 1)
	go func() {
		_, err := client.Hi(context.Background(), &hellov1.HiRequest{})
		answered <- err
	}()
	ctx := <-svc.calls
	c := conninfo.From(ctx)
	if c == nil {
		t.Fatal("conninfo.From(call context) = nil, want the call's connection")
	}
	if reason, at := c.GoAway(); reason != "" || !at.IsZero() {
		t.Errorf("GoAway() of a serving connection = %q, %v; want \"\", zero time", reason, at)
	}
	if c.LameDuck() {
		t.Error("LameDuck() = true for a connection accepted while the server serves")
	}

	before := time.Now()
	res, err := srv.Rotate(context.Background(), server.Rotation{MinAge: server.Off, Spread: server.Off})
	if err != nil || res.Rotated != 1 {
		t.Fatalf("Rotate = %+v, %v; want the one connection rotated", res, err)
	}
	after := time.Now()
	reason, at := c.GoAway()
	if reason != string(server.ReasonAPI) || at.Before(before) || at.After(after) {
		t.Errorf("GoAway() after Rotate = %q, %v; want %q between %v and %v", reason, at, server.ReasonAPI, before, after)
	}
	select {
	case <-server.Draining(ctx):
	default:
		t.Error("Draining(ctx) is not closed after the GOAWAY")
	}
	close(svc.release)
	if err := <-answered; err != nil {
		t.Errorf("the call in flight failed: %v", err)
	}
}

// A client that comes back during the drain, its address list still
// holding the server, is served on a connection that says it is a lame
// duck.
func TestLameDuckCallsSaySo(t *testing.T) {
	lameDuck := make(chan bool, 1)
	svc := &ductHello{seen: lameDuck}
	srv, addr := testkit.StartRotor(t, svc, server.WithShutdownDelay(server.Off), server.WithDrainTimeout(2*time.Second), server.WithMaxConnectionAgeGrace(time.Second))
	client, _ := headlessClient(t, addr)
	calls := startCalls(client)
	defer calls.stop()
	if <-lameDuck {
		t.Fatal("LameDuck() = true before the drain began")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	deadline := time.After(5 * time.Second)
	for found := false; !found; {
		select {
		case found = <-lameDuck:
		case <-deadline:
			t.Fatal("no call on a lame-duck connection within 5 s of the drain")
		}
	}
	calls.stop()
	if err := <-done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() = %v", err)
	}
}

// ductHello reports, without blocking, whether each call's connection is a
// lame duck.
type ductHello struct {
	hellov1.UnimplementedHelloServer
	seen chan bool
}

func (h *ductHello) Hi(ctx context.Context, _ *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	if c := conninfo.From(ctx); c != nil {
		select {
		case h.seen <- c.LameDuck():
		default:
		}
	}
	return &hellov1.HiResponse{FromWho: "old"}, nil
}
