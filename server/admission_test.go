package server_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// roundsAt counts the fair-share rounds of pods that held own connections
// and estimated the fleet mean at mean.
type roundsAt struct {
	*events
	own  int
	mean float64
	n    atomic.Int64
}

func (r *roundsAt) FairShareRound(_, own int, mean, _, _ float64, _ int) {
	if own == r.own && math.Abs(mean-r.mean) < 1e-9 {
		r.n.Add(1)
	}
}

// Admission: pods 0 and 1 hold 3 clients each and pod 2 one (mean 7/3, so
// nobody sheds by connections); a new client that kube-proxy sends to pod
// 0 has its first call served there and is then sent on, and its next
// pick, pod 2, keeps it. Without admission pod 0 would keep it and shed its
// oldest client once that is a second old. The fleet then holds 3, 3 and
// 2 and moves nothing more.
func TestFairShareSendsANewClientToRoom(t *testing.T) {
	obs := &roundsAt{events: newEvents(), own: 3, mean: 7.0 / 3}
	f := startFleet(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, obs, server.FairShare{Measure: server.MeasureConnections})
	place := []int{0, 0, 0, 1, 1, 1, 2, 0} // each client's first dial; later dials go to pod 2
	var dials atomic.Int64
	clients := f.clients(t, len(place), func() int {
		if n := int(dials.Add(1)); n <= len(place) {
			return place[n-1]
		}
		return 2
	})
	hi := func(c hellov1.HelloClient) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.Hi(ctx, &hellov1.HiRequest{ToWho: "t"})
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		return r.GetFromWho()
	}
	for i, c := range clients[:7] {
		if got, want := hi(c), "pod"+string(rune('0'+place[i])); got != want {
			t.Fatalf("client %d was served by %s, want %s", i, got, want)
		}
	}
	// Pods 0 and 1 have each played rounds that saw all seven clients (20
	// such rounds between them, about 5 s), and so know of pod 2's room.
	deadline := time.Now().Add(20 * time.Second)
	for obs.n.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds of pods 0 and 1 saw 3 own connections and a mean of 7/3 in 20 s", obs.n.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := obs.drained("fairshare"); n != 0 {
		t.Fatalf("%d fair-share GOAWAYs before the new client; want none at 3, 3, 1", n)
	}

	newcomer := clients[7]
	if got := hi(newcomer); got != "pod0" {
		t.Fatalf("the new client's first call was served by %s, want pod0 (where kube-proxy sent it)", got)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := hi(newcomer)
		if got == "pod2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new client is still served by %s 10 s after its first call; want it sent on to pod2", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, c := range clients[:7] {
		if got, want := hi(c), "pod"+string(rune('0'+place[i])); got != want {
			t.Errorf("client %d moved to %s; want it left on %s (the new client was the one to move)", i, got, want)
		}
	}
	if n := obs.drained("fairshare"); n != 1 {
		t.Errorf("%d fair-share GOAWAYs; want 1, the new client's", n)
	}

	// 3, 3, 2 is balanced by connections: nothing moves.
	l := startLoad(clients)
	time.Sleep(2 * time.Second)
	l.stop(t)
	if n := obs.drained("fairshare"); n != 1 {
		t.Errorf("a balanced fleet sent %d more fair-share GOAWAYs in 2 s", n-1)
	}
	for i, p := range f.pods {
		if got, want := p.Stats().Clients, []int{3, 3, 2}[i]; got != want {
			t.Errorf("pod %d holds %d clients, want %d", i, got, want)
		}
	}
}
