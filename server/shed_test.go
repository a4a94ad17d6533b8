package server

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

func TestDecideShed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	conns := func(loads ...float64) []connLoad {
		var cs []connLoad
		for i, l := range loads {
			cs = append(cs, connLoad{id: i, load: l, opened: t0.Add(time.Duration(i) * time.Second)})
		}
		return cs
	}
	load := FairShare{}.withDefaults()
	byConns := FairShare{Measure: MeasureConnections}.withDefaults()
	// A pod that was above its share last round too (overRounds).
	fresh := shedState{cooldown: load.Cooldown, over: 1}
	// One that has also wanted a shed for steadyWant, in rounds in which
	// it would help by count where it does now (see waited), which a shed
	// that counts on a random landing with an estimated mean waits for.
	steady := shedState{cooldown: load.Cooldown, over: 1, wantSince: t0.Add(-steadyWant), helpsSince: t0.Add(-steadyWant)}
	// One that has wanted it for loadOnlyWant, which past growth a shed
	// that would not help by count waits for.
	loadOnly := shedState{cooldown: load.Cooldown, over: 1, wantSince: t0.Add(-loadOnlyWant)}
	// One whose peer set grew 10 s ago (growthGrace).
	grown := shedState{cooldown: load.Cooldown, over: 1, grewAt: t0.Add(-10 * time.Second)}
	tests := []struct {
		name string
		in   shedInput
		cfg  FairShare
		st   shedState
		want []int
	}{
		{"balanced: within the band", shedInput{now: t0, own: 1.05, mean: 1, conns: conns(0.5, 0.55)}, load, fresh, nil},
		{"idle fleet", shedInput{now: t0, own: 0, mean: 0, conns: conns(0, 0)}, load, fresh, nil},
		{"twice the mean: heaviest first, each light enough for the excess left",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.3, 0.4, 0.2, 0.6)}, load, fresh, []int{4, 2}},
		{"one connection over an even mean: it moves (5, 5, 4, 3, 3 becomes 4 each)",
			shedInput{now: t0, own: 5, mean: 4, conns: conns(1, 1, 1, 1, 1)}, load, fresh, []int{0}},
		{"one connection over a mean no placement can reach: stays (21 connections on 5 pods)",
			shedInput{now: t0, own: 5, mean: 4.2, conns: conns(1, 1, 1, 1, 1)}, load, fresh, nil},
		{"a connection heavier than the mean stays",
			shedInput{now: t0, own: 3, mean: 1, conns: conns(2.2, 0.5, 0.3)}, load, fresh, []int{1, 2}},
		{"two connections heavier than the mean: one moves, and the pod stays above the mean",
			shedInput{now: t0, own: 3, mean: 1, conns: conns(1.5, 1.5)}, load, fresh, []int{0}},
		{"one connection heavier than the excess: stays",
			shedInput{now: t0, own: 3, mean: 1.2, conns: conns(2.5, 0.5)}, load, fresh, []int{1}},
		{"idle connections move nothing",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0, 0, 2)}, load, fresh, nil},
		{"never below the mean: a second 0.9 would leave 0.2 for a mean of 1",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.9, 0.9, 0.3)}, load, fresh, []int{0}},
		{"within the cooldown",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.5, 0.5, 0.5)}, load,
			shedState{lastShed: t0.Add(-100 * time.Millisecond), cooldown: time.Second, over: 1}, nil},
		{"above its share for one round only",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.5, 0.5, 0.5)}, load, shedState{cooldown: time.Second}, nil},
		{"two heavy clients of about the mean: one moves (the skewed-cost lab's stuck state)",
			shedInput{now: t0, own: 440, mean: 232, conns: conns(210, 210, 10, 10)}, load, fresh, []int{0}},
		{"the same in a fleet of 2: the other pod is as far below the mean as this one is above",
			shedInput{now: t0, own: 440, mean: 232, pods: 2, conns: conns(210, 210, 10, 10)}, load, fresh, []int{0}},
		{"a pod alone sheds nothing", shedInput{now: t0, own: 2, mean: 1, pods: 1, conns: conns(0.5, 0.5)}, load, fresh, nil},
		{"one connection above a mean it cannot reach: stays (the pod it lands on would shed it)",
			shedInput{now: t0, own: 7, mean: 6.2, conns: conns(1, 1, 1, 1, 1, 1, 1)}, load, fresh, nil},
		{"one connection over the mean in a fleet of 60, landing at random: stays (the pod it lands on, at 4, would be at 5)",
			shedInput{now: t0, own: 5, mean: 4, pods: 60, conns: conns(1, 1, 1, 1, 1)}, load, fresh, nil},
		{"an estimate a standard error low is no excess: 5.1 of an estimated 3.9 ± 0.2 in a fleet of 60 stays",
			shedInput{now: t0, own: 5.1, mean: 3.9, meanErr: 0.2, estimated: true, pods: 60, conns: conns(1.02, 1.02, 1.02, 1.02, 1.02)}, load, steady, nil},
		{"the same reading with a smaller error, ± 0.05, wanted for steadyWant: it moves",
			shedInput{now: t0, own: 5.1, mean: 3.9, meanErr: 0.05, estimated: true, pods: 60, conns: conns(1.02, 1.02, 1.02, 1.02, 1.02)}, load, steady, []int{0}},
		{"the same, wanted for less than steadyWant: it waits",
			shedInput{now: t0, own: 5.1, mean: 3.9, meanErr: 0.05, estimated: true, pods: 60, conns: conns(1.02, 1.02, 1.02, 1.02, 1.02)}, load, fresh, nil},
		{"the same reading against an exact mean of 3.9: it moves",
			shedInput{now: t0, own: 5.1, mean: 3.9, pods: 60, conns: conns(1.02, 1.02, 1.02, 1.02, 1.02)}, load, fresh, []int{0}},
		{"an excess clear of the estimate's error moves, without waiting for steadyWant: 6 of an estimated 4 ± 0.2 sheds one",
			shedInput{now: t0, own: 6, mean: 4, meanErr: 0.2, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1)}, load, fresh, []int{0}},
		{"not clear with a larger error, 6 of an estimated 4 ± 0.7: it waits for steadyWant",
			shedInput{now: t0, own: 6, mean: 4, meanErr: 0.7, estimated: true, pods: 60, conns: conns(1, 1, 1, 1, 1, 1)}, load, fresh, nil},
		{"a pod at 5 whose connections read 12 % costlier than the fleet's, 5.6 of an estimated 4, without the fleet's load per connection (perConn not known): clear by load, it moves at once",
			shedInput{now: t0, own: 5.6, mean: 4, estimated: true, pods: 60, ownConns: 5, conns: conns(1.12, 1.12, 1.12, 1.12, 1.12)}, load, fresh, []int{0}},
		{"the same with the fleet's load per connection: one connection above the mean is not clear, and a shed would not help by count: it waits (loadOnlyWant)",
			shedInput{now: t0, own: 5.6, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(1.12, 1.12, 1.12, 1.12, 1.12)}, load, fresh, nil},
		{"5 connections reading 5 % costlier, 5.25 of an estimated 4, wanted for steadyWant: its count explains its load (within Hysteresis), and one connection over the mean cannot be evened out by a random landing: it stays",
			shedInput{now: t0, own: 5.25, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(1.05, 1.05, 1.05, 1.05, 1.05)}, load, steady, nil},
		{"the same within growthGrace of growth: judged by load, it moves",
			shedInput{now: t0, own: 5.25, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(1.05, 1.05, 1.05, 1.05, 1.05)}, load, grown, []int{0}},
		{"the same against an exact mean (a fleet of up to Sample + 1 pods, here 5), where a shed helps by count: it moves at once",
			shedInput{now: t0, own: 5.25, mean: 4, pods: 5, ownConns: 5, perConn: 1, conns: conns(1.05, 1.05, 1.05, 1.05, 1.05)}, load, fresh, []int{0}},
		{"at the mean count of an exact mean, 4 connections reading 5.12 in all (TestRealCluster's walks began so): a shed would not help by count, it waits",
			shedInput{now: t0, own: 5.12, mean: 4, pods: 5, ownConns: 4, perConn: 1, conns: conns(1.45, 1.3, 1.2, 1.17)}, load, fresh, nil},
		{"the same, wanted for steadyWant: it still waits (loadOnlyWant)",
			shedInput{now: t0, own: 5.12, mean: 4, pods: 5, ownConns: 4, perConn: 1, conns: conns(1.45, 1.3, 1.2, 1.17)}, load, steady, nil},
		{"the same, wanted for loadOnlyWant: it moves",
			shedInput{now: t0, own: 5.12, mean: 4, pods: 5, ownConns: 4, perConn: 1, conns: conns(1.45, 1.3, 1.2, 1.17)}, load, loadOnly, []int{2}},
		{"at ceil(mean) of an exact mean that is not whole (5 of 4.2: 21 connections on 5 pods), reading 1.06 each: its count explains its load and a shed would not help by count, it stays",
			shedInput{now: t0, own: 5.3, mean: 4.2, pods: 5, ownConns: 5, perConn: 1, conns: conns(1.06, 1.06, 1.06, 1.06, 1.06)}, load, steady, nil},
		{"the same within growthGrace of growth: it moves at once",
			shedInput{now: t0, own: 5.12, mean: 4, pods: 5, ownConns: 4, perConn: 1, conns: conns(1.45, 1.3, 1.2, 1.17)}, load, grown, []int{2}},
		{"5 that called and 1 back from a shed, not called yet, reading 5.9 of an estimated 4: the count of those that called does not explain it, wanted for loadOnlyWant: it moves",
			shedInput{now: t0, own: 5.9, mean: 4, estimated: true, pods: 60, ownConns: 5, waiting: 1, perConn: 1, conns: conns(1.18, 1.18, 1.18, 1.18, 1.18)}, load, loadOnly, []int{0}},
		{"a pod at 6 for a mean of 4.5 ± 0.13, explained by its count, wanted for steadyWant: half its landings help, it moves",
			shedInput{now: t0, own: 6, mean: 4.5, meanErr: 0.13, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1)}, load, steady, []int{0}},
		{"the same, wanted for less than steadyWant: its excess is not clear (clearExcess), it waits",
			shedInput{now: t0, own: 6, mean: 4.5, meanErr: 0.13, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1)}, load, fresh, nil},
		{"a pod at 12 for a mean of 10 ± 0.13, explained by its count: it moves",
			shedInput{now: t0, own: 12, mean: 10, meanErr: 0.13, estimated: true, pods: 60, ownConns: 12, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, load, steady, []int{0}},
		{"a pod at 23 for a mean of 20 ± 0.13, explained by its count: it moves",
			shedInput{now: t0, own: 23, mean: 20, meanErr: 0.13, estimated: true, pods: 60, ownConns: 23, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, load, steady, []int{0, 1}},
		{"a pod at 5 whose connections read 20 % costlier (a slower node), wanted for steadyWant: a shed would not help by count, it waits (loadOnlyWant)",
			shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(1.2, 1.2, 1.2, 1.2, 1.2)}, load, steady, nil},
		{"the same, wanted for loadOnlyWant: it moves",
			shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(1.2, 1.2, 1.2, 1.2, 1.2)}, load, loadOnly, []int{0}},
		{"a pod at 5 with a heavy client, 7 of an estimated 4, wanted for loadOnlyWant: light ones move, the heavy one stays",
			shedInput{now: t0, own: 7, mean: 4, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: conns(3, 1, 1, 1, 1)}, load, loadOnly, []int{1, 2}},
		{"a pod at 6, by count clear of the mean, its load explained by it: judged by load, it moves at once",
			shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(1, 1, 1, 1, 1, 1)}, load, fresh, []int{0}},
		{"a pod at the mean by connections whose calls read 50 % costlier, 6 of an estimated 4: it waits (loadOnlyWant)",
			shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, ownConns: 4, perConn: 1, conns: conns(1.5, 1.5, 1.5, 1.5)}, load, fresh, nil},
		{"the same, wanted for loadOnlyWant: it moves",
			shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, ownConns: 4, perConn: 1, conns: conns(1.5, 1.5, 1.5, 1.5)}, load, loadOnly, []int{0}},
		{"clear by connections but not by load: 6 connections reading 5.2 of an estimated 4 wait for steadyWant",
			shedInput{now: t0, own: 5.2, mean: 4, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(0.88, 0.88, 0.88, 0.88, 0.88, 0.8)}, load, fresh, nil},
		{"the same, wanted for steadyWant: the heaviest moves",
			shedInput{now: t0, own: 5.2, mean: 4, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(0.88, 0.88, 0.88, 0.88, 0.88, 0.8)}, load, steady, []int{0}},
		{"the count within the estimate's error: 6 connections of an estimated 4 ± 0.65, clear by load (6.5), wait for steadyWant",
			shedInput{now: t0, own: 6.5, mean: 4, meanErr: 0.65, estimated: true, pods: 60, ownConns: 6, perConn: 1, conns: conns(1.1, 1.08, 1.08, 1.08, 1.08, 1.08)}, load, fresh, nil},
		{"the same in a fleet of 6, where a landing helps more (6/5): clear, it moves at once",
			shedInput{now: t0, own: 6.5, mean: 4, meanErr: 0.65, estimated: true, pods: 6, ownConns: 6, perConn: 1, conns: conns(1.1, 1.08, 1.08, 1.08, 1.08, 1.08)}, load, fresh, []int{0}},
		{"clients back from its sheds that have not called do not count: 7 connections, 5 that called, reading 5.5 of an estimated 4, wait (loadOnlyWant)",
			shedInput{now: t0, own: 5.6, mean: 4, estimated: true, pods: 60, ownConns: 5, waiting: 2, perConn: 1, conns: conns(1.12, 1.12, 1.12, 1.12, 1.12)}, load, fresh, nil},
		{"a whole connection with the thin edge is not made clear by small ones shed with it: 5.2 of an estimated 4 ± 0.05 waits",
			shedInput{now: t0, own: 5.2, mean: 4, meanErr: 0.05, estimated: true, pods: 60, conns: conns(1, 1, 1, 1, 1, 0.05, 0.05, 0.05, 0.05)}, load, fresh, nil},
		{"the same with room, where admission sends it: it moves",
			shedInput{now: t0, own: 5, mean: 4, pods: 60, room: 3, conns: conns(1, 1, 1, 1, 1)}, load, grown, []int{0}},
		{"with room the estimate's error does not count: it moves",
			shedInput{now: t0, own: 5, mean: 4, meanErr: 0.5, pods: 60, room: 3, perConn: 1, conns: conns(1, 1, 1, 1, 1)}, load, grown, []int{0}},
		{"with room: no more connections than the room",
			shedInput{now: t0, own: 8, mean: 4, pods: 60, room: 2, conns: conns(1, 1, 1, 1, 1, 1, 1, 1)}, load, grown, []int{0, 1}},
		{"with room: down to within the hysteresis of the mean (5 → 4 for an estimate of 4.3)",
			shedInput{now: t0, own: 5, mean: 4.3, pods: 60, room: 3, perConn: 1, conns: conns(1, 1, 1, 1, 1)}, load, grown, []int{0}},
		{"with room: not below the mean by more than the hysteresis",
			shedInput{now: t0, own: 6, mean: 5, pods: 60, room: 3, perConn: 2, conns: conns(2, 2, 2)}, load, grown, nil},
		{"with room: a connection heavier than the room's unit moves only as without the band (it could come back)",
			shedInput{now: t0, own: 11.6, mean: 10, pods: 60, room: 3, perConn: 1, conns: conns(2.5, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, load, grown, []int{1, 2}},
		{"by connections: the excess over ceil(mean), oldest first",
			shedInput{now: t0, own: 6, mean: 3.2, conns: conns(0, 0, 0, 0, 0, 0)}, byConns, fresh, []int{0, 1}},
		{"by connections: at ceil(mean)",
			shedInput{now: t0, own: 4, mean: 3.2, conns: conns(0, 0, 0, 0)}, byConns, fresh, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.pods == 0 {
				tt.in.pods = 5
			}
			d := decideShed(tt.in, tt.cfg, tt.st)
			if !slices.Equal(d.shed, tt.want) {
				t.Errorf("shed %v, want %v", d.shed, tt.want)
			}
		})
	}
}

// In a fleet whose mean is estimated, past growth, a shed by load whose
// excess is not clear of the noise is made only once every round has
// wanted it for loadOnlyWant when it would not help by count, or for
// steadyWant of rounds in which it would: a round that does not want it
// (over its share or within it) starts the wait again, and so does a
// shed, while one round in which it would help does not cut the longer
// wait. With an exact mean a shed that would not help by count waits for
// loadOnlyWant too. With an exact mean where it helps by count, within
// growthGrace of the peer set growing, or two connections above the mean,
// it is made after overRounds, as before.
func TestDecideShedWaitsForASteadyWant(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cfg := FairShare{}.withDefaults()
	var conns []connLoad
	for i := range 5 {
		conns = append(conns, connLoad{id: i, load: 1.2, opened: t0.Add(-time.Minute)})
	}
	// 5 connections reading 20 % costlier than the fleet's (a slower node),
	// 6.0 of an estimated 3.9 ± 0.05 in a fleet of 60: each round wants the
	// pod's first connection gone (see TestDecideShed), and its count
	// alone does not clear the mean.
	over := shedInput{own: 6, mean: 3.9, meanErr: 0.05, estimated: true, pods: 60, ownConns: 5, perConn: 3.9 / 4, conns: conns}
	// 4 connections reading 1.25, 5.0 in all: above its share by load,
	// not explained by its count, but no shed helps.
	edge := over
	edge.own, edge.ownConns = 5.0, 4
	edge.conns = nil
	for i := range 4 {
		edge.conns = append(edge.conns, connLoad{id: i, load: 1.25, opened: t0.Add(-time.Minute)})
	}
	// Reading 4.2: within its share.
	within := over
	within.own = 4.2
	// sheds plays 45 s of rounds every Interval and returns when each shed
	// came, after t0; the round at dip reads dipIn.
	sheds := func(in shedInput, st shedState, dip time.Duration, dipIn shedInput) []time.Duration {
		var at []time.Duration
		for now := t0; now.Before(t0.Add(45 * time.Second)); now = now.Add(cfg.Interval) {
			round := in
			if dip > 0 && now.Equal(t0.Add(dip)) {
				round = dipIn
			}
			round.now = now
			d := decideShed(round, cfg, st)
			if len(d.shed) > 0 {
				at = append(at, now.Sub(t0))
			}
			st = d.next
		}
		return at
	}
	st := shedState{cooldown: cfg.Cooldown}
	// Its count would not help (5 of 3.9): only its load explains the
	// shed, which waits for loadOnlyWant.
	if got := sheds(over, st, 0, over); len(got) < 2 || got[0] != loadOnlyWant || got[1] < got[0]+loadOnlyWant {
		t.Errorf("estimated mean: sheds at %v, want the first at %v and the next %v or more after it", got, loadOnlyWant, loadOnlyWant)
	}
	// At 6 for 4.5 ± 0.13 a shed helps by count, but it is not clear
	// (clearExcess): it waits for steadyWant.
	helps := shedInput{own: 6, mean: 4.5, meanErr: 0.13, estimated: true, pods: 60, ownConns: 6, perConn: 1}
	for i := range 6 {
		helps.conns = append(helps.conns, connLoad{id: i, load: 1, opened: t0.Add(-time.Minute)})
	}
	if got := sheds(helps, st, 0, helps); len(got) == 0 || got[0] != steadyWant {
		t.Errorf("estimated mean, 6 of 4.5 ± 0.13: sheds at %v, want the first at %v", got, steadyWant)
	}
	// One round at 6 s whose sample reads the mean at 3.75 (perConn 1): a
	// shed then helps by count but is not clear, and the rounds before it
	// wanted one for more than steadyWant. The wait for loadOnlyWant goes
	// on: the rounds in which it helps must be steadyWant in a row.
	lowSample := over
	lowSample.mean, lowSample.perConn = 3.75, 1
	if got := sheds(over, st, 6*time.Second, lowSample); len(got) == 0 || got[0] != loadOnlyWant {
		t.Errorf("estimated mean, one round at 6 s where a low sample lets a shed help by count: sheds at %v, want the first at %v", got, loadOnlyWant)
	}
	// One round at 3 s in which the shed is wanted but would not help by
	// count: the steadyWant of rounds in which it helps starts again after
	// it.
	if got := sheds(helps, st, 3*time.Second, over); len(got) == 0 || got[0] != 3*time.Second+cfg.Interval+steadyWant {
		t.Errorf("estimated mean, 6 of 4.5 ± 0.13, one round at 3 s in which a shed would not help by count: sheds at %v, want the first at %v",
			got, 3*time.Second+cfg.Interval+steadyWant)
	}
	for _, dip := range []struct {
		name string
		in   shedInput
	}{{"over its share, no shed helps", edge}, {"within its share", within}} {
		if got := sheds(over, st, 3*time.Second, dip.in); len(got) == 0 || got[0] != 3*time.Second+cfg.Interval+loadOnlyWant {
			t.Errorf("one round at 3 s %s: sheds at %v, want the first at %v", dip.name, got, 3*time.Second+cfg.Interval+loadOnlyWant)
		}
	}
	after := time.Duration(overRounds-1) * cfg.Interval // the first round at t0
	// An exact mean: every peer asked, a fleet of up to Sample + 1 pods.
	// At 5 connections a shed helps by count (countHelps).
	exact := over
	exact.meanErr, exact.estimated, exact.pods = 0, false, 5
	// Two shed clients landed at once: 6 connections, 7.0 of an
	// estimated 3.9 ± 0.05.
	two := over
	two.own, two.ownConns = 7.0, 6
	two.conns = append(slices.Clone(conns), connLoad{id: 5, load: 1.0, opened: t0.Add(-time.Minute)})
	grown := shedState{cooldown: cfg.Cooldown, grewAt: t0.Add(-10 * time.Second)}
	byConns := FairShare{Measure: MeasureConnections}.withDefaults()
	for _, tc := range []struct {
		name string
		in   shedInput
		st   shedState
	}{
		{"an exact mean", exact, st},
		{"within growthGrace of growth", over, grown},
		{"two connections above the mean", two, st},
	} {
		if got := sheds(tc.in, tc.st, 0, tc.in); len(got) == 0 || got[0] != after {
			t.Errorf("%s: sheds at %v, want the first at %v (overRounds)", tc.name, got, after)
		}
	}
	// A clear round in the cooldown after a shed sheds nothing and
	// starts the wait again.
	cooling := shedState{cooldown: time.Second, over: 3, lastShed: t0.Add(-cfg.Interval), wantSince: t0.Add(-time.Second)}
	clearNow := two
	clearNow.now = t0
	if d := decideShed(clearNow, cfg, cooling); len(d.shed) != 0 || !d.next.wantSince.IsZero() || !d.wants {
		t.Errorf("a clear round within the cooldown: shed %v, wantSince %v, wants %v; want nothing shed, the wait started again and the shed still wanted (no Debug line of a wait no longer wanted)",
			d.shed, d.next.wantSince, d.wants)
	}
	// A round within its share after a wait wants no shed: that is the
	// wait fair share logs as no longer wanted.
	inShare := two
	inShare.now, inShare.own = t0, inShare.mean
	if d := decideShed(inShare, cfg, cooling); len(d.shed) != 0 || !d.next.wantSince.IsZero() || d.wants {
		t.Errorf("a round within its share after a wait: shed %v, wantSince %v, wants %v; want nothing shed or wanted, the wait ended",
			d.shed, d.next.wantSince, d.wants)
	}
	// At the mean count of an exact mean only the load reading is over:
	// it waits as with an estimated one (see waitsSteady).
	exactEdge := shedInput{own: 5.12, mean: 4, pods: 5, ownConns: 4, perConn: 1, conns: []connLoad{
		{id: 0, load: 1.45, opened: t0.Add(-time.Minute)}, {id: 1, load: 1.3, opened: t0.Add(-time.Minute)},
		{id: 2, load: 1.2, opened: t0.Add(-time.Minute)}, {id: 3, load: 1.17, opened: t0.Add(-time.Minute)}}}
	if got := sheds(exactEdge, st, 0, exactEdge); len(got) == 0 || got[0] != loadOnlyWant {
		t.Errorf("exact mean, 4 connections reading 5.12 of 4: sheds at %v, want the first at %v", got, loadOnlyWant)
	}
	// A round at 5 connections, where a shed helps by count, does not
	// wait: it sheds at once, and the rounds after it wait again.
	exactHelps := exactEdge
	exactHelps.ownConns = 5
	if got := sheds(exactEdge, st, 3*time.Second, exactHelps); len(got) < 2 || got[0] != 3*time.Second ||
		got[1] != 3*time.Second+cfg.Interval+loadOnlyWant {
		t.Errorf("exact mean, one round at 3 s where a shed helps by count: sheds at %v, want the first at 3s and the next at %v",
			got, 3*time.Second+cfg.Interval+loadOnlyWant)
	}
	if got := sheds(exactEdge, grown, 0, exactEdge); len(got) == 0 || got[0] != after {
		t.Errorf("the same within growthGrace of growth: sheds at %v, want the first at %v (overRounds)", got, after)
	}
	if got := sheds(edge, st, 0, edge); len(got) != 0 {
		t.Errorf("4 connections reading 5.0 of an estimated 3.9 ± 0.05 in a fleet of 60: sheds at %v, want none", got)
	}
	// By connections nothing waits: 6 of an estimated 4.
	conn := shedInput{now: t0, own: 6, mean: 4, estimated: true, pods: 60, conns: conns}
	if d := decideShed(conn, byConns, shedState{cooldown: byConns.Cooldown, over: 1}); len(d.shed) == 0 {
		t.Error("by connections, 6 of an estimated 4: shed nothing, want the excess at once")
	}
}

// Past growth, a connection that came straight back from the pod's last
// shed, which waited, goes again without a new wait (keptBack): a heavy
// client's neighbour that landed back on its pod. One that did not come
// back, or one back from a shed that did not wait (within growth), waits
// loadOnlyWant again.
func TestDecideShedSendsAConnectionBackFromAShedThatWaitedAtOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cfg := FairShare{}.withDefaults()
	old := t0.Add(-time.Minute)
	// A pod of an estimated fleet of 60 at 4 connections and 1.0 each, with
	// a heavy client (2.0: too heavy to move, see heaviest) and 3 light
	// neighbours: only its load explains a shed of the neighbours, which
	// waits loadOnlyWant.
	heavy := shedInput{own: 2.75, mean: 1.0, meanErr: 0.02, estimated: true, pods: 60, ownConns: 4, perConn: 0.25, conns: []connLoad{
		{id: 0, load: 2.0, opened: old}, {id: 1, load: 0.25, opened: old}, {id: 2, load: 0.25, opened: old}, {id: 3, load: 0.25, opened: old}}}
	// After the shed, one neighbour's client landed back (back) or another
	// client landed on the pod.
	landed := func(back bool) shedInput {
		in := heavy
		in.own, in.ownConns = 2.25, 2
		in.conns = []connLoad{{id: 0, load: 2.0, opened: old}, {id: 1, load: 0.25, opened: t0.Add(loadOnlyWant + time.Second), back: back}}
		return in
	}
	// sheds plays 40 s of rounds from st and returns when each shed came
	// and what it shed: heavy until the first shed, then landed(back).
	sheds := func(st shedState, back bool) (at []time.Duration, shed [][]int) {
		for now := t0; now.Before(t0.Add(40 * time.Second)); now = now.Add(cfg.Interval) {
			round := heavy
			if len(at) > 0 {
				round = landed(back)
			}
			round.now = now
			d := decideShed(round, cfg, st)
			if len(d.shed) > 0 {
				at, shed = append(at, now.Sub(t0)), append(shed, d.shed)
			}
			st = d.next
		}
		return at, shed
	}
	st := shedState{cooldown: cfg.Cooldown}
	again := time.Duration(overRounds) * cfg.Interval // overRounds rounds, the cooldown within them
	if at, shed := sheds(st, true); len(at) < 2 || at[0] != loadOnlyWant || len(shed[0]) != 3 || at[1]-at[0] > again || !slices.Equal(shed[1], []int{1}) {
		t.Errorf("a neighbour back from a shed that waited: sheds at %v of %v; want the 3 neighbours at %v and the one back within %v of it", at, shed, loadOnlyWant, again)
	}
	if at, shed := sheds(st, false); len(at) < 2 || at[0] != loadOnlyWant || at[1]-at[0] < loadOnlyWant {
		t.Errorf("another client on the pod after a shed that waited: sheds at %v of %v; want the next %v or more after the first", at, shed, loadOnlyWant)
	}
	// Within growthGrace of growth until 1 s: the first shed does not wait.
	grown := shedState{cooldown: cfg.Cooldown, grewAt: t0.Add(-growthGrace + time.Second)}
	if at, shed := sheds(grown, true); len(at) < 2 || at[0] >= time.Second || at[1]-at[0] < loadOnlyWant {
		t.Errorf("a neighbour back from a shed within growth, which did not wait: sheds at %v of %v; want the first within growth and the next %v or more after it", at, shed, loadOnlyWant)
	}
	// Within growth, at the fleet's mean count (2 of 2), a shed waits
	// steadyWant (growthShed), also for a connection back from a shed that
	// waited: keptBack is for waits past growth.
	in := landed(true)
	in.now, in.meanConns = t0, 2
	waitedBefore := shedState{cooldown: cfg.Cooldown, grewAt: t0.Add(-10 * time.Second), over: overRounds, lastShed: t0.Add(-time.Second), shedN: 1, waitedShed: true}
	if d := decideShed(in, cfg, waitedBefore); len(d.shed) != 0 {
		t.Errorf("within growth, a connection back from a shed that waited, at the mean count: shed %v at once; want it to wait steadyWant", d.shed)
	}
}

// Within growthGrace of growth, with an estimated mean, a shed by load goes
// at once down to the fleet's mean count of connections rounded down; below
// it only a load reading explains it, and it waits for steadyWant: in the
// lab one connection that read several times the others' (a CPU wait) made
// a pod at 4 for a mean of 4 shed the rest. With an exact mean (a small
// fleet) nothing waits within growth.
func TestDecideShedWithinGrowthWaitsBelowTheMeanCount(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cfg := FairShare{}.withDefaults()
	grown := shedState{cooldown: cfg.Cooldown, over: 1, grewAt: t0.Add(-10 * time.Second)}
	conns := func(loads ...float64) []connLoad {
		var cs []connLoad
		for i, l := range loads {
			cs = append(cs, connLoad{id: i, load: l, opened: t0.Add(-time.Minute + time.Duration(i)*time.Second)})
		}
		return cs
	}
	// 110 pods, 10 of them new: a mean of 3.64 connections, each at a load
	// of 1, and room on the new pods. This pod holds 4, one of them read
	// at 3: 6.0 in all.
	in := shedInput{now: t0, own: 6, mean: 3.64, meanConns: 3.64, perConn: 1, meanErr: 0.05, estimated: true, pods: 110,
		ownConns: 4, room: 3, conns: conns(3, 1, 1, 1)}
	if d := decideShed(in, cfg, grown); !slices.Equal(d.shed, []int{1}) {
		t.Errorf("4 connections for a mean of 3.64, one read at 3: shed %v, want [1] (down to 3 at once)", d.shed)
	}
	exact := in
	exact.estimated, exact.meanErr = false, 0
	if d := decideShed(exact, cfg, grown); !slices.Equal(d.shed, []int{1, 2}) {
		t.Errorf("the same with an exact mean: shed %v, want [1 2] (nothing waits)", d.shed)
	}
	// At 3, the mean rounded down, the rest waits for steadyWant, and
	// goes when every round wanted it that long (a heavy client).
	at3 := in
	at3.own, at3.ownConns, at3.conns = 5, 3, conns(3, 1, 1)
	st := grown
	var at []time.Duration
	for now := t0; now.Before(t0.Add(15 * time.Second)); now = now.Add(cfg.Interval) {
		at3.now = now
		d := decideShed(at3, cfg, st)
		if len(d.shed) > 0 {
			at = append(at, now.Sub(t0))
			if !slices.Equal(d.shed, []int{1}) {
				t.Errorf("at 3 after the wait: shed %v, want [1]", d.shed)
			}
		}
		st = d.next
	}
	if len(at) == 0 || at[0] != steadyWant {
		t.Errorf("3 connections for a mean of 3.64, one read at 3, within growth: sheds at %v, want the first at %v", at, steadyWant)
	}
	// A whole mean: 4 connections for a mean of 4.0 (or one a rounding
	// below it) are at the mean count; all four read 1.5, 6.0 in all.
	for _, mean := range []float64{4, 4 - 1e-12} {
		whole := in
		whole.own, whole.mean, whole.meanConns, whole.perConn = 6, mean, mean, 1
		whole.conns = conns(1.5, 1.5, 1.5, 1.5)
		if d := decideShed(whole, cfg, grown); len(d.shed) != 0 || d.next.wantSince.IsZero() || d.next.waitLeft != steadyWant {
			t.Errorf("4 connections for a whole mean of %v: shed %v, wantSince %v, left %v; want nothing at once and the wait of %v begun",
				mean, d.shed, d.next.wantSince, d.next.waitLeft, steadyWant)
		}
	}
	// A pod of 5 whose every connection reads 2 (10.0 for 3.64) wants 3
	// gone; 2 go at once, down to 3.
	starved := in
	starved.own, starved.ownConns, starved.room = 10, 5, 5
	starved.conns = conns(2, 2, 2, 2, 2)
	if d := decideShed(starved, cfg, grown); !slices.Equal(d.shed, []int{0, 1}) {
		t.Errorf("5 connections reading 2 each for a mean of 3.64: shed %v, want [0 1] (the oldest two, down to 3)", d.shed)
	}
	// Not known (0): as before, at once.
	unknown := at3
	unknown.now, unknown.meanConns, unknown.perConn = t0, 0, 0
	if d := decideShed(unknown, cfg, grown); len(d.shed) == 0 {
		t.Error("the mean count not known: shed nothing, want a shed at once")
	}
}

// A round hands decideShed its load and the fleet's in the unit of the
// measure, its connections, the fleet's mean load per connection, the unit
// of room, and with MeasureLoad the standard error of a sample's mean, in
// that unit.
func TestShedInputMeasured(t *testing.T) {
	load := FairShare{}.withDefaults()
	byConns := FairShare{Measure: MeasureConnections}.withDefaults()
	if in := (shedInput{pods: 5}).measured(load, 0.3, 6, 0.2, 4, nil, true, 4); in.own != 0.3 || in.mean != 0.2 || in.ownConns != 6 || in.waiting != 0 || in.perConn != 0.05 || in.pods != 5 || in.meanErr != 0 || in.estimated {
		t.Errorf("by load: %+v, want own 0.3, mean 0.2, ownConns 6, waiting 0, perConn 0.05 (0.2 over 4 connections), pods kept, meanErr 0, not estimated (every peer asked)", in)
	}
	if in := (shedInput{}).measured(byConns, 0.3, 6, 0.2, 4, nil, true, 4); in.own != 6 || in.mean != 4 || in.ownConns != 6 || in.perConn != 0.05 {
		t.Errorf("by connections: %+v, want own 6, mean 4, ownConns 6, perConn 0.05", in)
	}
	if in := (shedInput{perConn: 1}).measured(load, 0, 0, 0, 0, nil, true, 4); in.perConn != 0 {
		t.Errorf("an idle fleet without connections: perConn %v, want 0 (not known)", in.perConn)
	}
	// A sample of 4 of 59 peers whose loads spread by 0.04 (a fifth of
	// the 0.2 per connection of a fleet at 4 connections a pod).
	sample := []float64{0.76, 0.8, 0.84, 0.8}
	want := estimateError(sample, false, 59, 0.2)
	if in := (shedInput{}).measured(load, 1, 5, 0.8, 4, sample, false, 59); want <= 0 || in.meanErr != want || !in.estimated {
		t.Errorf("by load, a sample: meanErr %v, estimated %v; want %v from the sample with perConn 0.2, estimated", in.meanErr, in.estimated, want)
	}
	if in := (shedInput{}).measured(byConns, 1, 5, 0.8, 4, sample, false, 59); in.meanErr != 0 {
		t.Errorf("by connections, a sample: meanErr %v, want 0 (the margin is for loads)", in.meanErr)
	}
}

// A shed counts the clients back from earlier sheds that have not called
// yet (waiting) in the connections it is later judged against: when they
// call, the pod's count rises by them, and the shed, whose own client did
// leave, worked.
func TestDecideShedJudgesWaitingClients(t *testing.T) {
	cfg := FairShare{Measure: MeasureConnections, Cooldown: time.Second}.withDefaults()
	conns := []connLoad{{id: 0, load: 1}, {id: 1, load: 1}, {id: 2, load: 1}, {id: 3, load: 1}}
	// 4 that called and 2 back, not called yet, for a mean of 3.
	in := shedInput{now: time.Unix(1000, 0), own: 4, mean: 3, ownConns: 4, waiting: 2, returning: 2, pods: 5, conns: conns}
	st := shedState{cooldown: cfg.Cooldown}
	shedAt := func(in shedInput) shedDecision {
		t.Helper()
		for range 20 {
			d := decideShed(in, cfg, st)
			st = d.next
			if len(d.shed) > 0 {
				return d
			}
			in.now = in.now.Add(500 * time.Millisecond)
		}
		t.Fatalf("%+v: no shed in 20 rounds", in)
		return shedDecision{}
	}
	first := shedAt(in)
	// The shed's client is gone and the 2 waiting have called: 5 connections,
	// against the 6 the shed began with; one came from the shed's address.
	later := shedInput{now: first.next.lastShed.Add(time.Minute), own: 5, mean: 3, ownConns: 5, pods: 5, conns: conns, cameBack: 1}
	if d := shedAt(later); d.next.futile != 0 {
		t.Errorf("5 connections after a shed of 1 from 4 called and 2 waiting: judged futile (%d in a row); the shed worked", d.next.futile)
	}
}

// countExplains holds up to ownConns × perConn × (1 + Hysteresis), and
// not while perConn is not known.
func TestCountExplains(t *testing.T) {
	for _, tc := range []struct {
		in   shedInput
		want bool
	}{
		{shedInput{own: 5.49, ownConns: 5, perConn: 1}, true},
		{shedInput{own: 5.51, ownConns: 5, perConn: 1}, false},
		{shedInput{own: 5.49, ownConns: 5, waiting: 1, perConn: 1}, true},
		{shedInput{own: 5.6, ownConns: 5, waiting: 1, perConn: 1}, false},
		{shedInput{own: 1, ownConns: 5}, false},
		{shedInput{own: 0.1, perConn: 1}, false},
	} {
		if got := countExplains(tc.in, 0.1); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A pod judged by its count, within its share, forgets its back-off and
// its last shed as any pod within its share does: a shed long after is not
// judged against it.
func TestDecideShedByCountForgetsTheBackOff(t *testing.T) {
	cfg := FairShare{Cooldown: time.Second}.withDefaults()
	t0 := time.Unix(1000, 0)
	st := shedState{cooldown: 8 * time.Second, futile: futileSheds, lastShed: t0.Add(-time.Minute), shedN: 1, shedConns: 6, shedRest: 4}
	// 5 connections reading 5.2 of an estimated 4, past growth.
	in := shedInput{now: t0, own: 5.2, mean: 4, meanErr: 0.1, estimated: true, pods: 60, ownConns: 5, perConn: 1, conns: []connLoad{{id: 0, load: 1.04}, {id: 1, load: 1.04}, {id: 2, load: 1.04}, {id: 3, load: 1.04}, {id: 4, load: 1.04}}}
	d := decideShed(in, cfg, st)
	in.now = t0.Add(cfg.Interval)
	d = decideShed(in, cfg, d.next)
	if len(d.shed) != 0 || d.next.cooldown != cfg.Cooldown || d.next.futile != 0 || d.next.shedN != 0 || !d.ended {
		t.Errorf("two rounds at 5 for a mean of 4, explained by the count: shed %v, cooldown %v, futile %d, pending shed of %d, ended %v; want nothing shed, the back-off ended and forgotten",
			d.shed, d.next.cooldown, d.next.futile, d.next.shedN, d.ended)
	}
	// Within cameBackWindow of its shed, the shed's clients may be on
	// their way back: the pod keeps it to judge.
	st.lastShed = t0.Add(-cfg.Interval)
	in.now = t0
	d = decideShed(in, cfg, st)
	in.now = t0.Add(cfg.Interval)
	d = decideShed(in, cfg, d.next)
	if d.next.futile != futileSheds || d.next.shedN != 1 || d.ended {
		t.Errorf("two rounds at 5 for a mean of 4 within %v of a shed: futile %d, pending shed of %d, ended %v; want the shed kept (%d, 1, false)",
			cameBackWindow(cfg), d.next.futile, d.next.shedN, d.ended, futileSheds)
	}
}

// Sheds whose clients come back (the pod's connections do not drop against
// the rest of the fleet's) back off: after three in a row the cooldown doubles
// each time; within growthGrace of the peer set growing they do not count.
func TestDecideShedBacksOffFutileSheds(t *testing.T) {
	cfg := FairShare{Cooldown: time.Second}.withDefaults()
	// Every shed's clients come back (cameBack).
	in := shedInput{own: 2, mean: 1, ownConns: 3, restConns: 2, pods: 5, conns: []connLoad{{id: 0, load: 0.5}, {id: 1, load: 0.5}, {id: 2, load: 1}}, cameBack: 3}
	play := func(st shedState, start time.Time, rounds int) (shedState, []time.Duration) {
		now := start
		var cooldowns []time.Duration
		for range rounds {
			in.now = now
			d := decideShed(in, cfg, st)
			if len(d.shed) > 0 {
				cooldowns = append(cooldowns, d.next.cooldown)
			}
			st = d.next
			now = now.Add(500 * time.Millisecond)
		}
		return st, cooldowns
	}
	t0 := time.Unix(1000, 0)
	_, got := play(shedState{cooldown: cfg.Cooldown}, t0, 40)
	// The first shed has nothing to judge; the next three are futile.
	want := []time.Duration{time.Second, time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("cooldowns after each shed %v, want them to start %v", got, want)
	}
	_, got = play(shedState{cooldown: cfg.Cooldown, grewAt: t0}, t0, 40)
	for _, c := range got {
		if c != time.Second {
			t.Fatalf("cooldowns %v within the growth grace: want no back-off", got)
		}
	}
	// A shed that worked resets the back-off.
	st, _ := play(shedState{cooldown: cfg.Cooldown}, t0, 40)
	in.own = 1.05
	within := shedInput{now: t0.Add(time.Hour), own: 1.05, mean: 1, ownConns: 3, restConns: 2, pods: 5, conns: in.conns}
	d := decideShed(within, cfg, st)
	if d.next.cooldown == cfg.Cooldown {
		t.Error("one round within its share reset the back-off; a dip between a shed and the clients' return must not")
	}
	if d.ended {
		t.Error("one round within its share reported the back-off ended")
	}
	if d = decideShed(within, cfg, d.next); d.next.cooldown != cfg.Cooldown || d.next.futile != 0 || !d.ended {
		t.Errorf("after two rounds within its share: cooldown %v futile %d ended %v, want reset and ended", d.next.cooldown, d.next.futile, d.ended)
	}
	if d = decideShed(within, cfg, d.next); d.ended {
		t.Error("a third round within its share reported the back-off ended again")
	}
	if d := decideShed(within, cfg, decideShed(within, cfg, shedState{cooldown: cfg.Cooldown}).next); d.ended {
		t.Error("two rounds within its share, without a back-off, reported one ended")
	}
	// A shed whose clients did not come back ends the back-off too: the
	// pod is still above its share, and sheds again.
	// The last shed sent GOAWAY to 1 or 2 of the pod's 3 connections while
	// the rest averaged 2; now it has 2 as the rest still does, with a
	// client of the shed's address back and lighter connections left.
	worked := in
	worked.now, worked.own, worked.ownConns, worked.cameBack = t0.Add(time.Hour), 1.4, 2, 1
	worked.conns = []connLoad{{id: 0, load: 0.2}, {id: 1, load: 0.2}}
	if d := decideShed(worked, cfg, st); len(d.shed) == 0 || !d.ended || d.next.futile != 0 {
		t.Errorf("a shed after one that worked: shed %v ended %v futile %d, want a shed, the back-off ended", d.shed, d.ended, d.next.futile)
	}
	// Rounds within the share while the shed's clients are back but not
	// counted yet (returning) judge nothing: the back-off stays.
	returned := within
	returned.returning = 2
	d = decideShed(returned, cfg, st)
	for range 4 {
		d = decideShed(returned, cfg, d.next)
	}
	if d.next.cooldown == cfg.Cooldown || d.next.futile == 0 {
		t.Errorf("rounds within the share with the shed's clients returning reset the back-off (cooldown %v, futile %d); they must not", d.next.cooldown, d.next.futile)
	}
	if d = decideShed(within, cfg, decideShed(within, cfg, d.next).next); d.next.cooldown != cfg.Cooldown {
		t.Errorf("two rounds within the share once the clients count: cooldown %v, want reset", d.next.cooldown)
	}
	// So too by connections, for clients of the shed that came back and
	// have not called yet (slow round_robin clients): 4 connections for a
	// mean of 3.5 are within the share, and the 2 back do not count yet.
	byConns := FairShare{Measure: MeasureConnections, Cooldown: time.Second}.withDefaults()
	waiting := shedInput{now: t0.Add(time.Hour), own: 4, mean: 3.5, ownConns: 4, waiting: 2, restConns: 1, pods: 2, conns: in.conns, returning: 2, cameBack: 2}
	d = decideShed(waiting, byConns, st)
	for range 4 {
		d = decideShed(waiting, byConns, d.next)
	}
	if d.next.cooldown == byConns.Cooldown || d.next.futile == 0 {
		t.Errorf("by connections, rounds within the share with the shed's clients back and not called yet reset the back-off (cooldown %v, futile %d); they must not", d.next.cooldown, d.next.futile)
	}
	waiting.returning = 0
	if d = decideShed(waiting, byConns, decideShed(waiting, byConns, d.next).next); d.next.cooldown != byConns.Cooldown {
		t.Errorf("by connections, two rounds within the share once the clients count: cooldown %v, want reset", d.next.cooldown)
	}
	// A shed judged futile, and one judged to have worked (futileShed has
	// the cases), as decideShed counts them.
	judged := shedState{cooldown: cfg.Cooldown, over: 1, futile: 1, lastShed: t0, shedN: 2, shedConns: 6, shedRest: 4}
	came := shedInput{now: t0.Add(time.Hour), own: 1.2, mean: 0.6, ownConns: 6, restConns: 4, pods: 5, conns: in.conns, returning: 2, cameBack: 2}
	if d := decideShed(came, cfg, judged); len(d.shed) == 0 || d.next.futile != 2 {
		t.Errorf("shed %v, futile %d after the shed's clients came back; want a shed judged futile (2)", d.shed, d.next.futile)
	}
	// A peer set that grew since the shed, or in its round (past
	// growthGrace now): that shed is not judged, either way.
	for _, grewAt := range []time.Time{t0.Add(time.Second), t0} {
		grown := judged
		grown.grewAt = grewAt
		if d := decideShed(came, cfg, grown); len(d.shed) == 0 || d.next.futile != 1 || d.next.cooldown != cfg.Cooldown {
			t.Errorf("peer set grown %v after the shed: shed %v, futile %d, cooldown %v; want a shed, the count and cooldown as they were (1, %v)",
				grewAt.Sub(t0), d.shed, d.next.futile, d.next.cooldown, cfg.Cooldown)
		}
	}
	// A load that did not drop while no client of the shed came back: other
	// clients arrived (in TestRealCluster, a rollout's old pods ending;
	// once the pod backed off before the scale-up and ended at 1.60). Not
	// futile. Half of the shed's clients back is.
	rollout := shedInput{now: t0.Add(time.Hour), own: 2.2, mean: 0.8, ownConns: 7, restConns: 4, pods: 5, conns: in.conns}
	if d := decideShed(rollout, cfg, judged); len(d.shed) == 0 || d.next.futile != 0 {
		t.Errorf("shed %v, futile %d with the load up but none of the shed's 2 clients back; want a shed judged to have worked (0)", d.shed, d.next.futile)
	}
	rollout.cameBack = 1
	if d := decideShed(rollout, cfg, judged); len(d.shed) == 0 || d.next.futile != 2 {
		t.Errorf("shed %v, futile %d with 1 of the shed's 2 clients back and the load up; want futile (2)", d.shed, d.next.futile)
	}
}

// futileShed judges a shed by the pod's connections against the rest of
// the fleet's. Each case: a fleet of 5 pods, the other 4 at a mean of 4
// connections, and a pod at 8 that sent GOAWAY to 2; futile when at least
// 1 connection came back from the shed's addresses and judgedConns > (8 −
// 1) × restConns/4.
func TestFutileShed(t *testing.T) {
	st := shedState{lastShed: time.Unix(1000, 0), shedN: 2, shedConns: 8, shedRest: 4}
	for _, tc := range []struct {
		name string
		in   shedInput
		want bool
	}{
		// Connections count from their first call, young or not.
		{"both back", shedInput{ownConns: 8, restConns: 4, cameBack: 2}, true},
		// A client back and not called yet counts for this judgement.
		{"both back, one not called yet", shedInput{ownConns: 7, waiting: 1, restConns: 4, cameBack: 2}, true},
		{"both gone", shedInput{ownConns: 6, restConns: 4.5}, false},
		{"one of the two back", shedInput{ownConns: 7, restConns: 4.25, cameBack: 1}, false},
		{"one of the two back, the rest as it was", shedInput{ownConns: 7, restConns: 4, cameBack: 1}, false},
		// Behind one address (SNAT), the clients gone but others from it
		// arrived.
		{"gone, their address back", shedInput{ownConns: 6, restConns: 4.5, cameBack: 2}, false},
		// Both gone behind one address while a rollout's clients arrive
		// on every pod, 3 each: 9 ≤ 7 × 7.5/4.
		{"gone, a rollout arriving", shedInput{ownConns: 9, restConns: 7.5, cameBack: 5}, false},
		// Both back while every pod lost a quarter of its clients: 6 >
		// 7 × 3/4.
		{"back, clients leaving every pod", shedInput{ownConns: 6, restConns: 3, cameBack: 2}, true},
		// Nothing known of the rest: the count as it is.
		{"both back, the rest not known", shedInput{ownConns: 8, cameBack: 2}, true},
		{"both gone, the rest not known", shedInput{ownConns: 6, cameBack: 2}, false},
	} {
		tc.in.pods = 5
		if got := futileShed(tc.in, st); got != tc.want {
			t.Errorf("%s: futile %v, want %v", tc.name, got, tc.want)
		}
	}
	// A fleet of 2 at 10 connections each, its clients behind one address:
	// 2 of a rollout's clients came from it while the shed one landed on
	// the other pod with 2 more: 11 ≤ 9.5 × 13/10.
	two := shedState{lastShed: time.Unix(1000, 0), shedN: 1, shedConns: 10, shedRest: 10}
	if futileShed(shedInput{ownConns: 11, restConns: 13, pods: 2, cameBack: 2}, two) {
		t.Error("a fleet of 2, a rollout's clients arriving on both pods: futile, want worked")
	}
}

// A peer a pod learns (announced, passed on, or found by the peer watcher)
// counts as growth, which starts growthGrace, unless it learns it within
// joinWindow of its first round: that is the fleet it joined.
// TestRealCluster's scale-up 2 → 5, about 20 s after fair share came on,
// once ended at 1.50 with the old pods backed off while this window was
// 30 s.
func TestLearnedPeersCountAsGrowth(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := &fairShare{s: &Server{log: slog.New(slog.DiscardHandler)}, cfg: FairShare{}.withDefaults(), startedAt: t0,
		announced: map[string]time.Time{}, firstHeard: map[string]time.Time{}}
	f.learn([]string{"198.18.128.2:50051"}, t0.Add(4900*time.Millisecond))
	if !f.shed.grewAt.IsZero() {
		t.Fatal("a peer learned 4.9 s after the first round counted as growth; it is the fleet the pod joined")
	}
	f.learn([]string{"198.18.128.4"}, t0.Add(5*time.Second))
	if !f.shed.grewAt.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("a peer learned 5 s after the first round: grewAt %v, want %v", f.shed.grewAt, t0.Add(5*time.Second))
	}
	later := t0.Add(20 * time.Second)
	f.learn([]string{"198.18.128.3"}, later)
	if !f.shed.grewAt.Equal(later) {
		t.Fatalf("a peer learned 20 s after the first round: grewAt %v, want %v", f.shed.grewAt, later)
	}
	f.learn([]string{"198.18.128.3:50051", "198.18.128.2"}, later.Add(time.Second))
	if !f.shed.grewAt.Equal(later) {
		t.Errorf("peers it already knew moved grewAt to %v", f.shed.grewAt)
	}
	f.grew(later.Add(2 * time.Second))
	if !f.shed.grewAt.Equal(later.Add(2 * time.Second)) {
		t.Errorf("the peer watcher's growth: grewAt %v, want %v", f.shed.grewAt, later.Add(2*time.Second))
	}
}

// A connection's load counts rateMinAge after its first call, or once it
// has made rateMinCalls calls over at least rateMinCallsAge: one call on a
// connection dialled 20 ms ago (a kubelet's probe, a client just moved)
// must not read as 50 calls a second, but a busy client's rate is known
// sooner. Its first rate leaves out the call it was dialled for: 10 calls
// over the 2 s since the first read as 4.5 calls/s. With
// MeasureConnections every connection counts at once.
func TestMeasureConnsWaitsForARate(t *testing.T) {
	now := time.Now()
	open := func(age time.Duration, calls uint64) *conn { return pipeConn(t, now.Add(-age), calls) }
	young, old := open(20*time.Millisecond, 1), open(2*time.Second, 10)
	s := &Server{conns: map[*conn]struct{}{young: {}, old: {}}}
	f := newFairShare(s, FairShare{MinAge: Off}.withDefaults())
	m := f.measureConns(now)
	perCall := f.cfg.CallCost.Seconds()
	if m.conns != 2 || len(m.cands) != 1 || m.young != 1 || math.Abs(m.load-4.5*perCall) > 1e-12 {
		t.Errorf("load %v of %d connections, %d candidates, %d young; want %v (4.5 calls/s of the 2 s old one) of 2, 1, 1", m.load, m.conns, len(m.cands), m.young, 4.5*perCall)
	}
	busy := open(200*time.Millisecond, rateMinCalls)
	s.conns[busy] = struct{}{}
	if m := f.measureConns(now); m.conns != 3 || math.Abs(m.load-(4.5+(rateMinCalls-1)/0.2)*perCall) > 1e-9 {
		t.Errorf("load %v of %d connections; want %v: the 0.2 s old one with %d calls counts at its rate", m.load, m.conns, (4.5+(rateMinCalls-1)/0.2)*perCall, rateMinCalls)
	}
	delete(s.conns, busy)
	burst := open(100*time.Millisecond, 2*rateMinCalls)
	s.conns[burst] = struct{}{}
	if m := f.measureConns(now); m.conns != 3 || math.Abs(m.load-4.5*perCall) > 1e-9 {
		t.Errorf("load %v of %d connections; want %v: 20 calls in 0.1 s are a burst, not a rate yet", m.load, m.conns, 4.5*perCall)
	}
	delete(s.conns, burst)
	idle := open(5*time.Second, 1)
	idle.setFirstCall(now.Add(-20 * time.Millisecond))
	s.conns[idle] = struct{}{}
	if m := f.measureConns(now); m.conns != 3 || m.young != 2 || math.Abs(m.load-4.5*perCall) > 1e-9 {
		t.Errorf("load %v of %d connections, %d young; want %v of 3, 2: open 5 s, its first call 20 ms ago, it is young", m.load, m.conns, m.young, 4.5*perCall)
	}
	delete(s.conns, idle)
	// A young connection is a client of the last shed come back when it
	// opened from an address the shed sent GOAWAY to, after the shed and
	// soon enough (Interval, Spread and rateMinAge: 1.75 s here); an
	// address that is not TCP (this pipe) never tells.
	f.shedFrom = map[string]bool{"": true}
	f.shed.lastShed = now.Add(-time.Second)
	if r := f.measureConns(now).returning; r != 0 {
		t.Errorf("%d returning, want 0: a pipe has no address to tell", r)
	}
	f = newFairShare(tcpConns(t, now), FairShare{MinAge: Off}.withDefaults())
	f.shedFrom = map[string]bool{"127.0.0.2": true}
	f.shed.lastShed = now.Add(-900 * time.Millisecond)
	if r := f.measureConns(now).returning; r != 1 {
		t.Errorf("%d returning, want 1: one young connection from 127.0.0.2 opened after the shed", r)
	}
	f.shed.lastShed = now.Add(-1200 * time.Millisecond)
	if r := f.measureConns(now).returning; r != 1 {
		t.Errorf("%d returning, want 1: opened 1.18 s after the shed, within its queries, spread and rateMinAge", r)
	}
	f.shed.lastShed = now.Add(-10 * time.Millisecond)
	if r := f.measureConns(now).returning; r != 0 {
		t.Errorf("%d returning, want 0: the young connections opened before the shed", r)
	}
	f.shed.lastShed = now.Add(-5 * time.Second)
	if r := f.measureConns(now).returning; r != 0 {
		t.Errorf("%d returning, want 0: the young connections opened long after the shed's GOAWAYs", r)
	}
	f = newFairShare(s, FairShare{Measure: MeasureConnections, MinAge: Off}.withDefaults())
	if m := f.measureConns(now); m.conns != 2 || len(m.cands) != 2 {
		t.Errorf("by connections: %d connections, %d candidates; want 2 and 2", m.conns, len(m.cands))
	}
}

// pipeConn returns a connection record over a pipe, opened at opened, that
// has made calls calls, the first at the dial (a client dials with a call
// to make).
func pipeConn(t *testing.T, opened time.Time, calls uint64) *conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := &conn{raw: a, opened: opened}
	if calls > 0 {
		c.calls.Store(calls)
		c.setFirstCall(opened)
	}
	return c
}

// Admission counts a connection it let in as the pod's from the accept on,
// and once: as admitted until the measure of the first round after its
// first call, in ownConns from then. The measure tells by the number admit
// gave it whether it was let in before the measure read admitted (then
// one without a call counts again in the next round's admitted, whenever
// it was opened) or after (in admitted since, and if it has called, in
// ownConns instead); those sent on (draining), peers' and those admission
// did not let in do not count.
func TestAdmittedCountsALetInConnectionOnce(t *testing.T) {
	now := time.Now()
	s := &Server{conns: map[*conn]struct{}{}}
	f := newFairShare(s, FairShare{Measure: MeasureConnections, MinAge: Off}.withDefaults())
	add := func(opened time.Time, calls uint64) *conn {
		c := pipeConn(t, opened, calls)
		s.conns[c] = struct{}{}
		return c
	}
	before := now.Add(-time.Second)
	// Let in before the measure reads admitted, numbered by letInLocked
	// as admit numbers them: early first (opened after the round's now:
	// the measure waited for f.mu), then a peer's, one sent on, one that
	// has called, and waiting last (its number is letIns at the read).
	early, peer, sentOn := add(now.Add(time.Millisecond), 0), add(before, 0), add(before, 0)
	called, waiting := add(before, 1), add(before, 0)
	for _, c := range []*conn{early, peer, sentOn, called, waiting} {
		f.letInLocked(c)
	}
	peer.internal.Store(true)
	sentOn.state = connDraining
	add(before, 0) // not let in
	// late, late2 and lateCalled are let in after the measure read
	// admitted (numbered above it), yet in the connections it scans; the
	// late ones were opened before the round's now, lateCalled has called
	// already.
	late, late2, lateCalled := add(now.Add(-time.Millisecond), 0), add(now.Add(-2*time.Millisecond), 0), add(before, 1)
	late.letIn.Store(f.letIns + 1) // as letInLocked will number them
	late2.letIn.Store(f.letIns + 2)
	lateCalled.letIn.Store(f.letIns + 3)
	m := f.measureConns(now)
	if m.conns != 2 || m.letInWaiting != 2 || m.letInCalled != 1 {
		t.Fatalf("measured %d connections, %d let in before without a call, %d let in after that called; want 2 (the two that called), 2 (early and waiting, not the late ones) and 1 (lateCalled)",
			m.conns, m.letInWaiting, m.letInCalled)
	}
	f.admitted += 3 // late, late2 and lateCalled, as letInLocked counts them
	f.letIns += 3
	f.settleAdmittedLocked(m)
	if f.admitted != 4 {
		t.Errorf("admitted %d after the round; want 4: early, waiting, late and late2 (lateCalled is in ownConns; the peer's and the one sent on count nowhere)", f.admitted)
	}
	// The next round: all have called.
	for _, c := range []*conn{early, waiting, late, late2} {
		c.calls.Store(1)
		c.setFirstCall(now.Add(500 * time.Millisecond))
	}
	m = f.measureConns(now.Add(time.Second))
	if m.conns != 6 || m.letInWaiting != 0 || m.letInCalled != 0 {
		t.Errorf("measured %d connections, %d let in without a call, %d let in since that called; want 6, 0 and 0", m.conns, m.letInWaiting, m.letInCalled)
	}
	f.settleAdmittedLocked(m)
	if f.admitted != 0 {
		t.Errorf("admitted %d once every connection let in has called; want 0", f.admitted)
	}
}

// The clients of the last shed that came straight back count as come back
// before their first call, and as waiting (in neither the pod's
// connections nor its load), as do those of earlier sheds since the pod
// was last at its share: a slow round_robin client reconnects at once
// and calls when its turn comes. The pod's connections, which it reports
// to its peers, still count from the first call.
func TestCameBackCountsClientsBeforeTheirFirstCall(t *testing.T) {
	now := time.Now()
	s := tcpConns(t, now) // young from .2 and .3, old from .2, each with a call
	var back *conn
	for c := range s.conns {
		if now.Sub(c.opened) < time.Second {
			c.calls.Store(0) // the young ones have not called yet
			if remoteIP(c) == "127.0.0.2" {
				back = c
			}
		}
	}
	f := newFairShare(s, FairShare{MinAge: Off}.withDefaults())
	for _, tc := range []struct {
		name          string
		shedFrom      string
		shedAgo       time.Duration
		calls         uint64 // of the young connection from .2
		back, waiting int
	}{
		{"no shed pends", "", 0, 0, 0, 0},
		{"a shed from .2 0.9 s ago", "127.0.0.2", 900 * time.Millisecond, 0, 1, 1},
		{"the same, and its client has called", "127.0.0.2", 900 * time.Millisecond, 1, 1, 0},
		{"a shed from .2 10 ms ago, after the young ones opened", "127.0.0.2", 10 * time.Millisecond, 0, 0, 0},
		{"a shed from .4 0.9 s ago", "127.0.0.4", 900 * time.Millisecond, 0, 0, 0},
	} {
		f.forgetSheds()
		if tc.shedFrom != "" {
			f.shedFrom, f.sinceFrom, f.sinceN = map[string]bool{tc.shedFrom: true}, map[string]bool{tc.shedFrom: true}, 1
		}
		f.shed.lastShed, f.since = now.Add(-tc.shedAgo), now.Add(-tc.shedAgo)
		back.calls.Store(tc.calls)
		if b, w := f.cameBackAll(now); b != tc.back || w != tc.waiting {
			t.Errorf("%s: %d came back, %d waiting; want %d and %d", tc.name, b, w, tc.back, tc.waiting)
		}
		back.calls.Store(0)
		if n := f.measureConns(now).conns; n != 1 {
			t.Errorf("%s: %d connections, want 1: the old one (connections count from their first call)", tc.name, n)
		}
	}
	// A shed from .2 0.9 s ago, and since then one from .4: the client of
	// the first is still waiting, and not back from the last.
	f.shedFrom, f.sinceFrom, f.sinceN = map[string]bool{"127.0.0.4": true}, map[string]bool{"127.0.0.2": true, "127.0.0.4": true}, 2
	f.since, f.shed.lastShed = now.Add(-900*time.Millisecond), now.Add(-10*time.Millisecond)
	if b, w := f.cameBackAll(now); b != 0 || w != 1 {
		t.Errorf("an earlier shed's client not called yet: %d came back, %d waiting; want 0 and 1", b, w)
	}
	// Waiting is for a while, and for no more clients than the sheds sent
	// GOAWAY to: an idle connection must not keep the sheds pending for
	// good.
	if _, w := f.cameBackAll(now.Add(waitFor)); w != 0 {
		t.Errorf("%v later: %d waiting, want 0", waitFor, w)
	}
	f.sinceFrom["127.0.0.3"], f.sinceN = true, 1
	if _, w := f.cameBackAll(now); w != 1 {
		t.Errorf("two back and not called yet, from sheds of one connection: %d waiting, want 1", w)
	}
}

// The measure marks a candidate as back (connLoad.back, which keptBack
// sends on without a new wait) when it was opened from an address the
// last shed sent GOAWAY to, after that shed and within cameBackWindow of
// it (1.75 s with the defaults); never one that has no TCP address.
func TestMeasureMarksAConnectionBackFromTheLastShed(t *testing.T) {
	now := time.Now()
	s := tcpConns(t, now) // young from .2 and .3 (20 ms), old from .2 (2 s)
	pipe := pipeConn(t, now.Add(-20*time.Millisecond), 1)
	s.conns[pipe] = struct{}{}
	f := newFairShare(s, FairShare{MinAge: Off}.withDefaults())
	at := now.Add(rateMinAge + 100*time.Millisecond) // every rate known
	name := func(c *conn) string {
		switch {
		case c == pipe:
			return "pipe"
		case now.Sub(c.opened) > time.Second:
			return "old " + remoteIP(c)
		}
		return "young " + remoteIP(c)
	}
	window := cameBackWindow(f.cfg)
	for _, tc := range []struct {
		desc     string
		shedFrom string
		shedAgo  time.Duration
		back     string
	}{
		{"no shed", "", time.Second, ""},
		{"a shed from .2 0.5 s ago", "127.0.0.2", 500 * time.Millisecond, "young 127.0.0.2"},
		{"a shed from .3 0.5 s ago", "127.0.0.3", 500 * time.Millisecond, "young 127.0.0.3"},
		{"a shed from .2 5 ms ago, after the young ones opened", "127.0.0.2", 5 * time.Millisecond, ""},
		{"a shed from .2 whose window closed before the young ones opened", "127.0.0.2", 20*time.Millisecond + window + 10*time.Millisecond, ""},
		{"a shed from .4 0.5 s ago", "127.0.0.4", 500 * time.Millisecond, ""},
	} {
		f.forgetSheds()
		if tc.shedFrom != "" {
			// And "", what remoteIP gives the pipe: a connection with no
			// address must not count as back.
			f.shedFrom = map[string]bool{tc.shedFrom: true, "": true}
		}
		f.shed.lastShed = now.Add(-tc.shedAgo)
		m := f.measureConns(at)
		if len(m.cands) != 4 {
			t.Fatalf("%s: %d candidates, want 4", tc.desc, len(m.cands))
		}
		var back []string
		for i, c := range m.cands {
			if c.back {
				back = append(back, name(m.candConns[i]))
			}
		}
		if got := strings.Join(back, ", "); got != tc.back {
			t.Errorf("%s: back %q, want %q", tc.desc, got, tc.back)
		}
	}
}

// noteShed keeps the addresses of every shed, and when the first began,
// until forgetSheds; shedFrom holds the last shed's only.
func TestNoteShedKeepsEveryShedsAddresses(t *testing.T) {
	now := time.Now()
	s := tcpConns(t, now)
	byIP := map[string]*conn{}
	for c := range s.conns {
		byIP[remoteIP(c)] = c
	}
	a, _ := net.Pipe()
	t.Cleanup(func() { a.Close() })
	f := newFairShare(s, FairShare{}.withDefaults())
	f.noteShed(now, []*conn{byIP["127.0.0.2"]})
	f.noteShed(now.Add(time.Second), []*conn{byIP["127.0.0.3"], {raw: a}})
	if !maps.Equal(f.shedFrom, map[string]bool{"127.0.0.3": true}) || f.shedNoAddr != 1 {
		t.Errorf("last shed: addresses %v, %d without; want 127.0.0.3 and 1", f.shedFrom, f.shedNoAddr)
	}
	if !maps.Equal(f.sinceFrom, map[string]bool{"127.0.0.2": true, "127.0.0.3": true}) || !f.since.Equal(now) || f.sinceN != 2 {
		t.Errorf("since the pod was at its share: addresses %v since %v, %d sent GOAWAY; want .2 and .3, %v, 2", f.sinceFrom, f.since, f.sinceN, now)
	}
	f.forgetSheds()
	f.noteShed(now.Add(2*time.Second), []*conn{byIP["127.0.0.2"]})
	if len(f.sinceFrom) != 1 || !f.since.Equal(now.Add(2*time.Second)) || f.sinceN != 1 {
		t.Errorf("after forgetSheds: addresses %v since %v, %d sent GOAWAY; want .2 alone, from the new shed, 1", f.sinceFrom, f.since, f.sinceN)
	}
}

// tcpConns returns a server holding three client connections over real
// TCP on loopback: a young one (20 ms) from 127.0.0.2, a young one from
// 127.0.0.3, and an old one (2 s) from 127.0.0.2, each with calls made.
func tcpConns(t *testing.T, now time.Time) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &Server{conns: map[*conn]struct{}{}}
	for _, c := range []struct {
		from string
		age  time.Duration
	}{{"127.0.0.2", 20 * time.Millisecond}, {"127.0.0.3", 20 * time.Millisecond}, {"127.0.0.2", 2 * time.Second}} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.from)}}
		client, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close(); raw.Close() })
		sc := &conn{raw: raw, opened: now.Add(-c.age)}
		sc.calls.Store(1)
		sc.setFirstCall(sc.opened)
		s.conns[sc] = struct{}{}
	}
	return s
}

// A scale-up's new pods enter the samples kept from before it about as
// often as a fresh sample would hold them, in place of old members, and
// only once.
func TestNextSampleTakesInNewPeers(t *testing.T) {
	var old, grown []string
	for i := range 60 {
		ip := fmt.Sprintf("10.0.%d.%d", i/50, i%50)
		if i < 50 {
			old = append(old, ip)
		}
		grown = append(grown, ip)
	}
	slices.Sort(old) // as peerSet returns them
	slices.Sort(grown)
	isNew := func(ip string) bool { return !slices.Contains(old, ip) }
	const trials = 1000
	in := 0
	for range trials {
		f := newFairShare(&Server{}, FairShare{Sample: 4}.withDefaults())
		before := slices.Clone(f.nextSample(old))
		s := slices.Clone(f.nextSample(grown))
		if len(s) != 4 || len(slices.Compact(slices.Sorted(slices.Values(s)))) != 4 {
			t.Fatalf("sample %v after the growth, want 4 distinct peers", s)
		}
		for _, ip := range s {
			if isNew(ip) {
				in++
			} else if !slices.Contains(before, ip) {
				t.Fatalf("sample %v after the growth, from %v: an old peer %s came in; only new ones may", s, before, ip)
			}
		}
		if next := f.nextSample(grown); !slices.Equal(next, s) {
			t.Fatalf("the round after the growth changed the sample from %v to %v; want it kept", s, next)
		}
	}
	// A fresh sample of 4 of 60 holds 10/60 of new pods: 667 in 1,000
	// samples (about 650 here, as a member is not replaced by a new pod
	// already in the sample).
	if in < 550 || in > 780 {
		t.Errorf("samples held %d new pods in %d draws of 4 right after 50 → 60, want about %d (10 of 60)", in, trials, trials*4*10/60)
	}
}

// The sample of a large fleet keeps its size, changes one peer every
// sampleSwapRounds rounds, drops peers that are gone, and reaches every
// peer in time.
func TestNextSample(t *testing.T) {
	f := newFairShare(&Server{}, FairShare{Sample: 4}.withDefaults())
	peers := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"}
	seen := map[string]bool{}
	prev := f.nextSample(peers)
	changes := 0
	for range 200 * sampleSwapRounds {
		s := f.nextSample(peers)
		if len(s) != 4 {
			t.Fatalf("sample %v, want 4 peers", s)
		}
		kept := 0
		for _, ip := range s {
			seen[ip] = true
			if slices.Contains(prev, ip) {
				kept++
			}
		}
		if kept < 3 {
			t.Fatalf("sample went from %v to %v: more than one peer changed", prev, s)
		}
		if kept == 3 {
			changes++
		}
		prev = slices.Clone(s)
	}
	// A swap draws any peer but the one dropped, so it may draw it back.
	if changes > 200 || changes < 120 { // about 160: 1 in 5 swaps redraws
		t.Errorf("%d rounds changed the sample, want one swap every %d rounds (200, less redraws)", changes, sampleSwapRounds)
	}
	if len(seen) != len(peers) {
		t.Errorf("%d rounds reached %d of %d peers", 200*sampleSwapRounds, len(seen), len(peers))
	}
	gone := peers[:6]
	if s := f.nextSample(gone); len(s) != 4 || slices.ContainsFunc(s, func(ip string) bool { return !slices.Contains(gone, ip) }) {
		t.Errorf("sample %v after peers left, want 4 of %v", s, gone)
	}
	if s := f.nextSample(peers[:3]); !slices.Equal(s, peers[:3]) {
		t.Errorf("sample of a fleet smaller than Sample = %v, want every peer", s)
	}
}

// One query informs both sides: a pod counts the reports of the peers that
// asked it, once each (an asker it also asked counts by its answer), unless
// it asked every peer, when the answers alone are the fleet.
func TestReportsCountAskers(t *testing.T) {
	answers := []*fairsharev1.GetLoadResponse{
		{Instance: "b", Connections: 2, Load: 0.2},
		{Instance: "c", Connections: 4, Load: 0.4, MeanLoad: 0.3, MeanConnections: 3, Estimated: true},
	}
	heard := func() map[string]*fairsharev1.LoadReport {
		return map[string]*fairsharev1.LoadReport{
			"c": {Connections: 99, Load: 9.9}, // asked and answered: its answer counts
			"d": {Connections: 6, Load: 0.6},
		}
	}
	if got := reports(answers, heard(), true); len(got) != 2 {
		t.Errorf("asking every peer: %d reports, want the 2 answers", len(got))
	}
	got := reports(answers, heard(), false)
	if len(got) != 3 {
		t.Fatalf("sampling: %d reports, want 2 answers and 1 asker", len(got))
	}
	// Own 0 conns/0 load; b 2, c 4 (and its estimate 3), d 6: (0+2+4+3+6)/5.
	load, conns := estimate(0, 0, got, false)
	if conns != 3 || math.Abs(load-0.3) > 1e-9 {
		t.Errorf("estimate = %v load, %v conns; want 0.3, 3", load, conns)
	}
	if rest := restConns(got, false); rest != 0 {
		t.Errorf("restConns of a sample = %v, want 0 (not known)", rest)
	}
	// Exact when every peer answered: estimates second hand are ignored.
	load, conns = estimate(0, 0, reports(answers, heard(), true), true)
	if conns != 2 || math.Abs(load-0.2) > 1e-9 {
		t.Errorf("exact estimate = %v load, %v conns; want 0.2, 2", load, conns)
	}
	if rest := restConns(reports(answers, heard(), true), true); rest != 3 {
		t.Errorf("restConns when every peer answered = %v, want 3 (b 2, c 4)", rest)
	}
}

// The estimate's error is the standard error of the sample of loads: it
// shrinks as the sample grows, vanishes when the reports cover the fleet,
// and a spread wider than one connection's load (imbalance, not noise)
// counts as one connection's load.
func TestEstimateError(t *testing.T) {
	four := []float64{3, 4, 5, 4}
	eight := []float64{3, 4, 5, 4, 3, 4, 5, 4}
	small, large := estimateError(four, false, 59, 1), estimateError(eight, false, 59, 1)
	if small <= 0 || large >= small*0.85 || large <= small*0.6 {
		t.Errorf("loads 3, 4, 5, 4 in a fleet of 60: %.3f; twice the sample: %.3f; want a positive error, about 1/√2 of it with twice the sample", small, large)
	}
	if got := estimateError(four, false, 4, 1); got != 0 {
		t.Errorf("four reports from a fleet of 5 (asked and askers cover it): %v, want 0", got)
	}
	if got := estimateError(four, false, 6, 1); got <= 0 || got >= small {
		t.Errorf("four reports from a fleet of 7: %v, want below the %v of a fleet of 60", got, small)
	}
	if got := estimateError(four, true, 59, 1); got != 0 {
		t.Errorf("every peer reported: %v, want 0 (exact)", got)
	}
	if got := estimateError(four[:1], false, 59, 1); got != 0 {
		t.Errorf("one report: %v, want 0", got)
	}
	// A scale-up's new pod at 0 among old pods at 12, or a pod with a
	// heavy client at 50: a spread of several connections' loads.
	for _, loads := range [][]float64{{12, 12, 12, 0, 12, 12, 12, 12}, {4, 4, 50, 4, 5, 4, 3, 4}} {
		if got, bound := estimateError(loads, false, 59, 1), math.Sqrt(8)/9; got > bound {
			t.Errorf("loads %v: %.3f, want at most one connection's load × √8/9, %.3f", loads, got, bound)
		}
	}
}

// The error is taken from the loads the peers report, in their order, not
// from their own estimates of the mean.
func TestLoadsOf(t *testing.T) {
	reports := []*fairsharev1.LoadReport{
		{Load: 3, MeanLoad: 9, Estimated: true, Connections: 4},
		{Load: 5, MeanLoad: 9, Estimated: true, Connections: 4},
		nil,
	}
	if got := loadsOf(reports); !slices.Equal(got, []float64{3, 5, 0}) {
		t.Errorf("loadsOf = %v, want [3 5 0] (each report's Load; a nil report's 0)", got)
	}
}

// The estimate's error does not stop the sheds that a scale-up's imbalance
// calls for: old pods at 12 connections, a new one at 0, one at 8 (the
// reports average 10).
func TestEstimateErrorLetsImbalanceShed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var conns []connLoad
	for i := range 12 {
		conns = append(conns, connLoad{id: i, load: 1, opened: t0})
	}
	reported := []float64{12, 12, 12, 0, 12, 12, 12, 8}
	in := shedInput{now: t0, own: 12, mean: 10, pods: 60, conns: conns, meanErr: estimateError(reported, false, 59, 1), estimated: true}
	// Wanted for steadyWant, as a lasting imbalance is.
	d := decideShed(in, FairShare{}.withDefaults(), shedState{cooldown: time.Second, over: 1, wantSince: t0.Add(-steadyWant)})
	if len(d.shed) == 0 {
		t.Errorf("a pod at 12 of a mean of 10, error %.3f: shed nothing, want a connection", in.meanErr)
	}
}

// A pod sends connections on within growthGrace of its peer set growing
// or of its joining a fleet with clients, and at no other time.
func TestAdmitting(t *testing.T) {
	now := time.Now()
	before := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		name             string
		grewAt, joinedAt time.Time
		want             bool
	}{
		{"neither grew nor joined", time.Time{}, time.Time{}, false},
		{"grew growthGrace less 1 s ago", before(growthGrace - time.Second), time.Time{}, true},
		{"grew growthGrace ago", before(growthGrace), time.Time{}, false},
		{"joined growthGrace less 1 s ago", time.Time{}, before(growthGrace - time.Second), true},
		{"joined growthGrace ago", time.Time{}, before(growthGrace), false},
		{"joined growthGrace + 10 s ago, grew 1 s ago", before(time.Second), before(growthGrace + 10*time.Second), true},
	} {
		f := &fairShare{joinedAt: tc.joinedAt}
		f.shed.grewAt = tc.grewAt
		if got := f.admittingLocked(now); got != tc.want {
			t.Errorf("%s: admitting %v, want %v", tc.name, got, tc.want)
		}
	}
}

// sendOn sends a new connection on only when the pod would hold more than
// its share with it and peers have room; never when it knows nothing yet,
// is alone, backs off, or sent admitBurst from the same address on within
// admitAgain.
func TestSendOn(t *testing.T) {
	now := time.Now()
	byConns := FairShare{Measure: MeasureConnections}.withDefaults()
	byLoad := FairShare{}.withDefaults()
	// At its share (3 of a mean of 7/3), one peer with room.
	base := admitInput{now: now, estimated: true, admitting: true, ownConns: 3, meanConns: 7.0 / 3, ownLoad: 3, meanLoad: 7.0 / 3, room: 1}
	for _, tc := range []struct {
		name string
		cfg  FairShare
		edit func(*admitInput)
		want bool
	}{
		{"at its share, room elsewhere", byConns, func(*admitInput) {}, true},
		{"by load, at its share", byLoad, func(*admitInput) {}, true},
		{"below its share", byConns, func(in *admitInput) { in.ownConns = 2 }, false},
		{"by load, within the hysteresis with it", byLoad, func(in *admitInput) { in.ownLoad, in.ownConns = 1.5, 2 }, false},
		{"by load, its young connections count at the mean per connection", byLoad, func(in *admitInput) { in.ownLoad, in.ownConns, in.young = 1, 2, 1 }, true},
		{"admitted since the round count", byConns, func(in *admitInput) { in.ownConns, in.admitted = 2, 1 }, true},
		{"no room", byConns, func(in *admitInput) { in.room = 0 }, false},
		{"the peer set has not grown, nor the pod joined, within growthGrace", byConns, func(in *admitInput) { in.admitting = false }, false},
		{"no estimate yet", byConns, func(in *admitInput) { in.estimated = false }, false},
		{"alone", byConns, func(in *admitInput) { in.alone = true }, false},
		{"backing off", byConns, func(in *admitInput) { in.backOff = true }, false},
		{"admitBurst from the same address within admitAgain", byConns, func(in *admitInput) { in.sentFrom = admitBurst }, false},
		{"fewer from the same address", byConns, func(in *admitInput) { in.sentFrom = admitBurst - 1 }, true},
		{"within Tolerance", FairShare{Measure: MeasureConnections, Tolerance: 1}.withDefaults(), func(*admitInput) {}, false},
		{"admission off", FairShare{Measure: MeasureConnections, AdmissionOff: true}.withDefaults(), func(*admitInput) {}, false},
		{"by load, no load anywhere", byLoad, func(in *admitInput) { in.ownLoad, in.meanLoad = 0, 0 }, false},
	} {
		in := base
		tc.edit(&in)
		if got := sendOn(in, tc.cfg); got != tc.want {
			t.Errorf("%s: sendOn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Room is what peers that hold a connection or more can take without going
// above their share: by connections up to ceil(mean) + Tolerance; by load,
// the fewer of the whole connections below the mean and of the mean loads
// per connection below mean × (1 + Hysteresis).
func TestRoomIn(t *testing.T) {
	rep := func(conns uint32, load float64) *fairsharev1.LoadReport {
		return &fairsharev1.LoadReport{Connections: conns, Load: load}
	}
	byConns := FairShare{Measure: MeasureConnections}.withDefaults()
	byLoad := FairShare{}.withDefaults() // Hysteresis 0.1
	for _, tc := range []struct {
		name            string
		cfg             FairShare
		reports         []*fairsharev1.LoadReport
		meanLoad, meanC float64
		want            int
	}{
		{"by connections", byConns, []*fairsharev1.LoadReport{rep(1, 0), rep(3, 0), rep(4, 0), rep(5, 0)}, 0, 4, 3 + 1},
		{"a peer that holds none is not counted", byConns, []*fairsharev1.LoadReport{rep(0, 0)}, 0, 4, 0},
		{"by connections, mean 3.2 rounds up", byConns, []*fairsharev1.LoadReport{rep(3, 0)}, 0, 3.2, 1},
		{"within Tolerance", FairShare{Measure: MeasureConnections, Tolerance: 1}.withDefaults(), []*fairsharev1.LoadReport{rep(4, 0)}, 0, 4, 1},
		// Mean 4 connections of load 1 each: room up to 4.4 by load and
		// below 4 by connections.
		{"by load, light peer", byLoad, []*fairsharev1.LoadReport{rep(2, 2)}, 4, 4, 2},
		{"by load, its young connections hold the room", byLoad, []*fairsharev1.LoadReport{rep(4, 0)}, 4, 4, 0},
		{"by load, few heavy connections", byLoad, []*fairsharev1.LoadReport{rep(2, 3.5)}, 4, 4, 0},
		{"by load, at the mean", byLoad, []*fairsharev1.LoadReport{rep(3, 3.5)}, 4, 4, 0},
		{"by load, no load anywhere", byLoad, []*fairsharev1.LoadReport{rep(2, 0)}, 0, 4, 0},
		{"by load, a mean a rounding error below a whole number", byLoad, []*fairsharev1.LoadReport{rep(3, 3)}, 4 - 1e-15, 4 - 1e-15, 1},
	} {
		if got, _ := roomIn(tc.reports, tc.cfg, tc.meanLoad, tc.meanC); got != tc.want {
			t.Errorf("%s: room %d, want %d", tc.name, got, tc.want)
		}
	}
	// Second hand: the most room one peer heard of, not the sum (peers
	// hear of the same new pods), when it is more than the first hand.
	reports := []*fairsharev1.LoadReport{rep(3, 0), rep(4, 0), rep(4, 0)}
	reports[1].Room, reports[2].Room = 5, 3
	if first, room := roomIn(reports, byConns, 0, 4); first != 1 || room != 5 {
		t.Errorf("first hand %d, room %d; want 1 and 5 (the most one peer heard of)", first, room)
	}
	reports[1].Room = 0
	if first, room := roomIn(reports, byConns, 0, 4); first != 1 || room != 3 {
		t.Errorf("first hand %d, room %d; want 1 and 3", first, room)
	}
}

// The last shed's connections without a TCP address (a Unix socket, a
// pipe) count as come back: nothing can tell, and the load decides alone.
func TestCameBackCountsShedsWithoutAddress(t *testing.T) {
	f := newFairShare(&Server{conns: map[*conn]struct{}{}}, FairShare{}.withDefaults())
	if n, _ := f.cameBackAll(time.Now()); n != 0 {
		t.Errorf("no shed pends: %d came back, want 0", n)
	}
	f.shedNoAddr = 2
	if n, _ := f.cameBackAll(time.Now()); n != 2 {
		t.Errorf("a shed of 2 connections without an address: %d came back, want 2", n)
	}
}

// A round in which no peer answered decides nothing, and a shed that waits
// starts its wait again, the rounds in which it helped by count too:
// rounds without a mean are not rounds that wanted it.
func TestRoundWithoutAnswersRestartsTheWait(t *testing.T) {
	s := &Server{conns: map[*conn]struct{}{}, log: slog.New(slog.DiscardHandler)}
	f := newFairShare(s, FairShare{}.withDefaults())
	f.shed.wantSince = time.Now().Add(-time.Second)
	f.shed.helpsSince = f.shed.wantSince
	f.round(t.Context())
	if !f.shed.wantSince.IsZero() || !f.shed.helpsSince.IsZero() {
		t.Errorf("after a round no peer answered: wantSince %v, helpsSince %v; want both zero (the wait starts again)",
			f.shed.wantSince, f.shed.helpsSince)
	}
}

// waited returns the time a waiting shed still has: 5 s from
// its first round within growth, 15 s past growth when only the load
// explains it, and 5 s from the first of the rounds in a row in which it
// helps by count when that is sooner.
func TestWaitedLeavesTheSoonerWait(t *testing.T) {
	now := time.Unix(1000, 0)
	in := shedInput{now: now, perConn: 1}
	for _, tc := range []struct {
		name       string
		in         shedInput
		steady     bool
		want, from time.Duration // before now; from 0: not helping by count
		left       time.Duration
	}{
		{"within growth", in, false, 2 * time.Second, 0, 3 * time.Second},
		{"per connection not known", shedInput{now: now}, true, 2 * time.Second, 0, 3 * time.Second},
		{"load only", in, true, 4 * time.Second, 0, 11 * time.Second},
		{"helping by count, sooner", in, true, 10 * time.Second, 4 * time.Second, time.Second},
		{"helping by count, later", in, true, 14 * time.Second, time.Second, time.Second},
		{"over", in, true, 16 * time.Second, 0, -time.Second},
	} {
		var helpsSince time.Time
		if tc.from > 0 {
			helpsSince = now.Add(-tc.from)
		}
		if got, _ := waited(tc.in, tc.steady, tc.from > 0, now.Add(-tc.want), helpsSince); got != tc.left {
			t.Errorf("%s: waited leaves %v, want %v", tc.name, got, tc.left)
		}
	}
}
