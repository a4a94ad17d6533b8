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

// roundsAt counts the fair-share rounds that a peer answered of pods that
// held own connections and estimated the fleet mean at mean.
type roundsAt struct {
	*events
	own  int
	mean float64
	n    atomic.Int64
}

func (r *roundsAt) FairShareRound(peers, own int, mean, _, _ float64, _ int) {
	if peers > 0 && own == r.own && math.Abs(mean-r.mean) < 1e-9 {
		r.n.Add(1)
	}
}

// Admission: pods 0 and 1 run for 6 s (beyond their 5 s join window)
// before pod 2 starts, so that they count it as growth, which admission
// needs. They hold 3 clients each and pod 2 one (mean 7/3, so nobody sheds
// by connections; MinAge 1 min keeps every connection from being shed
// anyway). A new client that kube-proxy sends to pod 0 is sent on at
// accept, before its first call, and its next pick, pod 2, keeps it: its
// first call is served by pod 2. Without admission pod 0 would keep it. A
// probe that dials pod 0 itself, as the kubelet does, is answered whether
// it is sent on or not, and nothing else moves.
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

	// A newcomer's first dial reaches pod 0, its later ones pod 2.
	sentOn, tries := sendsOn(t, f, 0, 2)
	if !sentOn {
		t.Fatal("in 5 tries a new client that reached pod 0 at its share was never sent on to pod 2, which had room")
	}
	for i, c := range clients {
		if got, want := hi(c), fmt.Sprint("pod", place[i]); got != want {
			t.Errorf("client %d moved to %s; want it left on %s (the new client was the one to move)", i, got, want)
		}
	}
	// A try whose first call went out before the client read the GOAWAY
	// was served by pod 0 and counts one too.
	if n := obs.drained("fairshare"); n < 1 || n > tries {
		t.Errorf("%d fair-share GOAWAYs in %d tries; want 1 to %d, the new client's", n, tries, tries)
	}
	// A probe dials pod 0 itself each time, as the kubelet's gRPC probe
	// does: sent on or not (up to admitBurst times within admitAgain, then
	// let in), its Check is answered by pod 0.
	var probeDials atomic.Int64
	cc, _ := f.client(t, func() int { probeDials.Add(1); return 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a probe of pod 0: %v, %v; want SERVING", r.GetStatus(), err)
	}
	if n := probeDials.Load(); n > 5 {
		t.Errorf("the probe dialled %d times; want at most 5 (sent on up to 4 times, then let in)", n)
	}
	cc.Close()
	sent := obs.drained("fairshare")

	l := startLoad(clients)
	time.Sleep(2 * time.Second)
	l.stop(t)
	if n := obs.drained("fairshare"); n != sent {
		t.Errorf("%d more fair-share GOAWAYs in 2 s at 3, 3, 2", n-sent)
	}
	for i, p := range f.pods {
		if got, want := p.Stats().Clients, []int{3, 3, 2}[i]; got != want {
			t.Errorf("pod %d holds %d clients, want %d", i, got, want)
		}
	}
}

// sendsOn dials a newcomer whose first dial reaches pod from and whose
// later ones reach pod to, up to 5 times, and reports whether one was
// sent on (its first call served by pod to, after 2 dials) and in how many
// tries. A round whose query to pod to timed out on a busy machine leaves
// pod from without room until the next: then the newcomer stays, and
// sendsOn closes it and tries again.
func sendsOn(t *testing.T, f *fleet, from, to int) (sentOn bool, tries int) {
	t.Helper()
	for try := 0; try < 5; try++ {
		tries++
		var newDials atomic.Int64
		cc, newcomer := f.client(t, func() int {
			if newDials.Add(1) == 1 {
				return from
			}
			return to
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := newcomer.Hi(ctx, &hellov1.HiRequest{ToWho: "t"})
		cancel()
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		switch got := r.GetFromWho(); got {
		case fmt.Sprint("pod", to):
			if n := newDials.Load(); n != 2 {
				t.Errorf("the new client dialled %d times, want 2 (pod %d, which sent it on, then pod %d)", n, from, to)
			}
			return true, tries
		case fmt.Sprint("pod", from):
			t.Logf("try %d: the new client stayed on pod%d", try, from)
			cc.Close()
		default:
			t.Fatalf("the new client's first call was served by %s, want pod%d (or pod%d without room)", got, to, from)
		}
	}
	return false, tries
}

// A pod that joins a fleet takes the peers it learns at its first round
// for the fleet it joined, not for growth; yet when that fleet held
// clients, for growthGrace it sends on, as the fleet's older pods do
// within growth, a client that would put it above its share while a peer
// has room. It takes the older pods' sent-on clients as they walk: when it
// let in every one, new pods of a 50 → 60 scale-up held up to 8 on the way
// in one lab run, and in earlier ones some ended growth at 6 for a mean of
// 4 and shed past growth. Pods 0 and 1 hold 1 and 3
// clients when pod 2 starts, pod 2 then 3 (mean 7/3): a newcomer that
// reaches pod 2 goes on to pod 0.
func TestFairShareNewPodSendsOnAboveItsShare(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s fleet test")
	}
	ev := newEvents()
	before, obs := &roundsAt{events: ev, own: 3, mean: 2}, &roundsAt{events: ev, own: 3, mean: 7.0 / 3}
	fs := server.FairShare{Measure: server.MeasureConnections, MinAge: time.Minute}
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	f := startFleet(t, ips[:2], roundsOf{ev, []*roundsAt{before, obs}}, fs)
	held := place(t, f, 0, 1, 1, 1)
	// Pod 2 decides at its first answered round whether it joins a fleet
	// with clients, from what pods 0 and 1 counted at their last rounds:
	// it starts once pod 1 has counted its 3.
	deadline := time.Now().Add(10 * time.Second)
	for before.n.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no round of pod 1 counted its 3 clients and a mean of 2 in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.ips = ips
	f.start(t, 2, roundsOf{ev, []*roundsAt{before, obs}}, fs)
	started := time.Now()
	newer := place(t, f, 2, 2, 2)
	// Pods 1 and 2 have played rounds that saw all seven clients (20
	// between them, about 5 s), and so know of pod 0's room.
	deadline = time.Now().Add(15 * time.Second)
	for obs.n.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds of pods 1 and 2 saw 3 own connections and a mean of 7/3 in 15 s", obs.n.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	placing := obs.drained("fairshare")
	sentOn, tries := sendsOn(t, f, 2, 0)
	if !sentOn && time.Since(started) > 25*time.Second {
		t.Fatalf("the tries ended %v after pod 2 started, too near the end of its 30 s of joining to tell", time.Since(started).Round(time.Second))
	}
	if !sentOn {
		t.Fatalf("in %d tries, %v after it started, pod 2 never sent on a new client that would put it above its share while pod 0 had room", tries, time.Since(started).Round(time.Second))
	}
	if n := obs.drained("fairshare") - placing; n < 1 || n > tries {
		t.Errorf("%d fair-share GOAWAYs in %d tries; want 1 to %d, the new client's", n, tries, tries)
	}
	held.stayed(t)
	newer.stayed(t)
}

// A fleet whose pods start together, before their clients, does not count
// as joining (joiningLocked): no pod grew its peer set past its join
// window, so none sends a client on, though one is above its share and a
// peer has room. Admission at every pod's start dialled 1,191 connections
// in a 50 → 60 lab run, 711 of them in the start's 30 s, against 882 and
// 416 when only a pod joining a fleet with clients sends on (810 and 399
// on main; runs-2026-12-06/fleet-lab-new-pod-admission.txt). Pods 0, 1
// and 2 hold 1, 1 and 3 clients (mean 5/3): a newcomer that reaches pod 2
// stays, within 30 s of the pods' first rounds.
func TestFairShareFleetStartedTogetherLetsIn(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5 s fleet test")
	}
	ev := newEvents()
	obs := &roundsAt{events: ev, own: 3, mean: 5.0 / 3}
	var first [3]*roundsAt
	for i := range first {
		first[i] = &roundsAt{events: ev}
	}
	fs := server.FairShare{Measure: server.MeasureConnections, MinAge: time.Minute}
	f := startFleetWith(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, func(i int) server.Observer {
		return roundsOf{ev, []*roundsAt{first[i], obs}}
	}, fs, quietLog)
	started := time.Now()
	// Every pod has played a round that a peer answered, with no clients.
	deadline := started.Add(10 * time.Second)
	for i := range first {
		for first[i].n.Load() < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("pod %d played no round that a peer answered in 10 s", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	held := place(t, f, 0, 1, 2, 2, 2)
	// Pod 2 has played rounds that saw all five clients, and so knows of
	// pods 0 and 1's room.
	for obs.n.Load() < 4 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("only %d rounds of pod 2 saw 3 own connections and a mean of 5/3 in 15 s", obs.n.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sentOn, tries := sendsOn(t, f, 2, 0)
	if sentOn {
		t.Errorf("pod 2 sent a new client on in try %d, in a fleet that started together", tries)
	}
	if d := time.Since(started); d > 25*time.Second {
		t.Fatalf("the tries ended %v after the pods started, too near the end of the 30 s of joining to tell", d.Round(time.Second))
	}
	if n := obs.drained("fairshare"); n != 0 {
		t.Errorf("%d fair-share GOAWAYs in a fleet that started together; want 0", n)
	}
	held.stayed(t)
}

// placed are clients that each dialled their own pod, and how many times
// each had dialled once placed.
type placed struct {
	pods    []int
	clients []hellov1.HelloClient
	dials   []*atomic.Int64
	settled []int64
}

// place opens a client for each of pods whose every dial goes to that
// pod, again if the pod sends it on (then admitBurst lets it in), and
// checks that its calls are served there. It calls until a call dials no
// more: a pod that sends a connection on may serve its first call, sent
// before the client read the GOAWAY, and the client (pick_first) dials
// again only at its next.
func place(t *testing.T, f *fleet, pods ...int) placed {
	t.Helper()
	p := placed{pods: pods}
	for _, pod := range pods {
		n := new(atomic.Int64)
		_, c := f.client(t, func() int { n.Add(1); return pod })
		i := len(p.clients)
		p.clients, p.dials = append(p.clients, c), append(p.dials, n)
		for calls, was := 0, int64(-1); n.Load() != was; calls++ {
			if calls == 6 { // sent on up to 4 times (admitBurst), then let in
				t.Fatalf("a client of pod %d still dialled at its call %d", pod, calls)
			}
			was = n.Load()
			p.call(t, i)
		}
		p.settled = append(p.settled, n.Load())
	}
	return p
}

// call makes client i's call and checks its own pod served it.
func (p placed) call(t *testing.T, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := p.clients[i].Hi(ctx, &hellov1.HiRequest{ToWho: "t"})
	cancel()
	if want := fmt.Sprint("pod", p.pods[i]); err != nil || r.GetFromWho() != want {
		t.Fatalf("a client of pod %d: served by %q (%v), want %s", p.pods[i], r.GetFromWho(), err, want)
	}
}

// stayed checks that every client is still on the connection it had once
// placed: it dialled no more (a GOAWAY would make it dial its pod again)
// and its pod serves its call.
func (p placed) stayed(t *testing.T) {
	t.Helper()
	for i := range p.clients {
		p.call(t, i)
		if n := p.dials[i].Load(); n != p.settled[i] {
			t.Errorf("a client of pod %d dialled %d times since it was placed; want it left on its connection", p.pods[i], n-p.settled[i])
		}
	}
}

// roundsOf passes a pod's events to the fleet's and its rounds to each
// of its roundsAt.
type roundsOf struct {
	*events
	at []*roundsAt
}

func (r roundsOf) FairShareRound(peers, own int, mean, ownLoad, meanLoad float64, shed int) {
	for _, x := range r.at {
		x.FairShareRound(peers, own, mean, ownLoad, meanLoad, shed)
	}
}
