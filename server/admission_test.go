package server_test

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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

// Admission: pods 0 and 1 run for 6 s (beyond their 5 s join window)
// before pod 2 starts, so that they count it as growth, which admission
// needs. They hold 3 clients each and pod 2 one (mean 7/3, so nobody sheds
// by connections; MinAge 1 min keeps every connection from being shed
// anyway). A new client that kube-proxy sends to pod 0 has its first call
// served there and is then sent on, and its next pick, pod 2, keeps it.
// Without admission pod 0 would keep it. A client whose first call is a
// health check (a kubelet probe) is never sent on, and nothing else moves.
func TestFairShareSendsANewClientToRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s fleet test")
	}
	obs := &roundsAt{events: newEvents(), own: 3, mean: 7.0 / 3}
	fs := server.FairShare{Measure: server.MeasureConnections, MinAge: time.Minute}
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	f := startFleet(t, ips[:2], obs, fs)
	time.Sleep(6 * time.Second)
	f.ips = ips
	f.start(t, 2, obs, fs)
	place := []int{0, 0, 0, 1, 1, 1, 2}
	var dials atomic.Int64
	clients := f.clients(t, len(place), func() int { return place[dials.Add(1)-1] })
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
	for i, c := range clients {
		if got, want := hi(c), fmt.Sprint("pod", place[i]); got != want {
			t.Fatalf("client %d was served by %s, want %s", i, got, want)
		}
	}
	// Pods 0 and 1 have played rounds that saw all seven clients (20
	// between them, about 5 s), and so know of pod 2's room.
	deadline := time.Now().Add(20 * time.Second)
	for obs.n.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds of pods 0 and 1 saw 3 own connections and a mean of 7/3 in 20 s", obs.n.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A newcomer's first dial reaches pod 0, its later ones pod 2. A round
	// whose query to pod 2 timed out on a busy machine leaves pod 0 without
	// room until the next: then the newcomer stays, and the test closes it
	// and tries again.
	sentOn := false
	for try := 0; try < 5 && !sentOn; try++ {
		var newDials atomic.Int64
		cc, newcomer := f.client(t, func() int {
			if newDials.Add(1) == 1 {
				return 0
			}
			return 2
		})
		if got := hi(newcomer); got != "pod0" {
			t.Fatalf("the new client's first call was served by %s, want pod0 (where kube-proxy sent it)", got)
		}
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if hi(newcomer) == "pod2" {
				sentOn = true
				break
			}
		}
		if !sentOn {
			t.Logf("try %d: the new client stayed on pod0 for 3 s", try)
			cc.Close()
		}
	}
	if !sentOn {
		t.Fatal("in 5 tries a new client that reached pod 0 at its share was never sent on to pod 2, which had room")
	}
	for i, c := range clients {
		if got, want := hi(c), fmt.Sprint("pod", place[i]); got != want {
			t.Errorf("client %d moved to %s; want it left on %s (the new client was the one to move)", i, got, want)
		}
	}
	if n := obs.drained("fairshare"); n != 1 {
		t.Errorf("%d fair-share GOAWAYs; want 1, the new client's", n)
	}
	// Pod 2 still has room (ceil(8/3) = 3), but a connection whose first
	// call is a health check stays where it landed.
	var probeDials atomic.Int64
	cc, probe := f.client(t, func() int {
		if probeDials.Add(1) == 1 {
			return 0
		}
		return 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if got := hi(probe); got != "pod0" {
			t.Fatalf("a connection whose first call was a health check moved to %s; want it left on pod0", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cc.Close()

	l := startLoad(clients)
	time.Sleep(2 * time.Second)
	l.stop(t)
	if n := obs.drained("fairshare"); n != 1 {
		t.Errorf("%d more fair-share GOAWAYs in 2 s at 3, 3, 2", n-1)
	}
	for i, p := range f.pods {
		if got, want := p.Stats().Clients, []int{3, 3, 2}[i]; got != want {
			t.Errorf("pod %d holds %d clients, want %d", i, got, want)
		}
	}
}
