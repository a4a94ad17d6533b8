package server

import (
	"slices"
	"testing"
	"time"
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
	tests := []struct {
		name string
		in   shedInput
		cfg  FairShare
		st   shedState
		want []int
	}{
		{"balanced: within the band", shedInput{now: t0, own: 1.05, mean: 1, conns: conns(0.5, 0.55)}, load, fresh, nil},
		{"idle fleet", shedInput{now: t0, own: 0, mean: 0, conns: conns(0, 0)}, load, fresh, nil},
		{"twice the mean: heaviest first, down to the mean",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.3, 0.4, 0.2, 0.6)}, load, fresh, []int{4, 0}},
		{"a connection heavier than the mean stays",
			shedInput{now: t0, own: 3, mean: 1, conns: conns(2.2, 0.5, 0.3)}, load, fresh, []int{1, 2}},
		{"only heavy connections: nothing to move",
			shedInput{now: t0, own: 3, mean: 1, conns: conns(1.5, 1.5)}, load, fresh, nil},
		{"idle connections move nothing",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0, 0, 2)}, load, fresh, nil},
		{"never below the band: a second 0.3 would leave 0.8 for a mean of 1",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.9, 0.9, 0.3)}, load, fresh, []int{0}},
		{"within the cooldown",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.5, 0.5, 0.5)}, load,
			shedState{lastShed: t0.Add(-100 * time.Millisecond), cooldown: time.Second, over: 1}, nil},
		{"above its share for one round only",
			shedInput{now: t0, own: 2, mean: 1, conns: conns(0.5, 0.5, 0.5, 0.5)}, load, shedState{cooldown: time.Second}, nil},
		{"by connections: the excess over ceil(mean), oldest first",
			shedInput{now: t0, own: 6, mean: 3.2, conns: conns(0, 0, 0, 0, 0, 0)}, byConns, fresh, []int{0, 1}},
		{"by connections: at ceil(mean)",
			shedInput{now: t0, own: 4, mean: 3.2, conns: conns(0, 0, 0, 0)}, byConns, fresh, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideShed(tt.in, tt.cfg, tt.st)
			if !slices.Equal(d.shed, tt.want) {
				t.Errorf("shed %v, want %v", d.shed, tt.want)
			}
		})
	}
}

// Sheds that do not lower the load (clients come back) back off: after
// three in a row the cooldown doubles each time; within growthGrace of the
// peer set growing they do not count.
func TestDecideShedBacksOffFutileSheds(t *testing.T) {
	cfg := FairShare{Cooldown: time.Second}.withDefaults()
	in := shedInput{own: 2, mean: 1, conns: []connLoad{{id: 0, load: 0.5}, {id: 1, load: 0.5}, {id: 2, load: 1}}}
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
	within := shedInput{now: t0.Add(time.Hour), own: 1.05, mean: 1, conns: in.conns}
	d := decideShed(within, cfg, st)
	if d.next.cooldown == cfg.Cooldown {
		t.Error("one round within its share reset the back-off; a dip between a shed and the clients' return must not")
	}
	if d = decideShed(within, cfg, d.next); d.next.cooldown != cfg.Cooldown || d.next.futile != 0 {
		t.Errorf("after two rounds within its share: cooldown %v futile %d, want reset", d.next.cooldown, d.next.futile)
	}
}
