package server

import (
	"testing"
	"time"
)

// rateConn drives one connection's counters as the interceptor does
// (countCall, addBusy) and reads its load as fair share's rounds do.
type rateConn struct {
	c       *conn
	now     time.Time
	perCall float64 // CallCost, in seconds
}

func newRateConn(perCall float64) *rateConn {
	t0 := time.Unix(1000, 0)
	return &rateConn{c: &conn{srv: &Server{}, opened: t0}, now: t0, perCall: perCall}
}

// round advances one 500 ms round in which began calls began and a handler
// returned after each of durations, and returns the connection's load
// (CallCost per call plus handler time, in seconds per second).
func (r *rateConn) round(began int, durations ...time.Duration) float64 {
	for range began {
		r.c.countCall(r.now)
	}
	for _, d := range durations {
		r.c.addBusy(d)
	}
	r.now = r.now.Add(500 * time.Millisecond)
	n, b := r.c.rates(r.now, r.perCall)
	return n*r.perCall + b
}

// steady runs rounds of one 50 µs call each (2 calls/s) for 20 s and
// returns the last round's load.
func (r *rateConn) steady() float64 {
	var l float64
	for range 40 {
		l = r.round(1, 50*time.Microsecond)
	}
	return l
}

const defaultCallCost = 100e-6 // FairShare.CallCost's default, in seconds

// A handler that waited 30 ms for a CPU, once or twice a second apart, does
// not make its connection read as several times its load, where without
// the cap it reads as twenty times.
func TestRatesCapHandlerTimeSpikes(t *testing.T) {
	// CallCost 1 s: a cap of 4 s per handler, none in effect.
	uncapped := newRateConn(1)
	before := uncapped.steady() - 2*1 // less CallCost's part
	if got := uncapped.round(1, 30*time.Millisecond) - 2*1; got < 10*before {
		t.Errorf("without the cap, one wait of 30 ms: handler time %.6f, %.1f × the %.6f before; want over 10 ×", got, got/before, before)
	}

	r := newRateConn(defaultCallCost)
	before = r.steady()
	if got := r.round(1, 30*time.Millisecond); got > 1.5*before {
		t.Errorf("one wait of 30 ms: load %.6f, %.2f × the %.6f before; want at most 1.5 ×", got, got/before, before)
	}
	r.round(1, 50*time.Microsecond)
	if got := r.round(1, 30*time.Millisecond); got > 2.5*before {
		t.Errorf("a second wait of 30 ms 1 s after the first: load %.6f, %.2f × the %.6f before; want at most 2.5 ×", got, got/before, before)
	}
}

// A cost that stays is followed: every call of a connection becomes 40
// times as costly (read at 0.8 within 10 s), or a thousand times (within
// 15 s).
func TestRatesFollowACostThatStays(t *testing.T) {
	for _, step := range []struct {
		each   time.Duration
		within int // rounds of 500 ms
	}{{2 * time.Millisecond, 20}, {50 * time.Millisecond, 30}} {
		r := newRateConn(defaultCallCost)
		r.steady()
		var got float64
		for range step.within {
			got = r.round(1, step.each)
		}
		if want := 2 * (defaultCallCost + step.each.Seconds()); got < 0.8*want {
			t.Errorf("%s after every call began to cost %s: load %.6f, want at least 0.8 × %.6f",
				time.Duration(step.within)*500*time.Millisecond, step.each, got, want)
		}
	}
}

// A handler's time counts in the round it returns, calls begun or not; and
// a costly call that is rare among cheap ones counts in part, about as
// conn.rates says.
func TestRatesCountHandlersWhenTheyReturn(t *testing.T) {
	// mean runs rounds for 100 s, calls(k) giving round k's calls begun and
	// handler times, and returns the mean load over the last 50 s.
	mean := func(calls func(k int) (int, []time.Duration)) float64 {
		r := newRateConn(defaultCallCost)
		var sum float64
		for k := range 200 {
			began, durations := calls(k)
			if l := r.round(began, durations...); k >= 100 {
				sum += l
			}
		}
		return sum / 100
	}
	us50 := 50 * time.Microsecond

	// A 2 s handler every 5 s, alone on its connection: it begins in one
	// round and returns four rounds later, and counts whole.
	alone := mean(func(k int) (int, []time.Duration) {
		switch k % 10 {
		case 0:
			return 1, nil
		case 4:
			if k > 4 {
				return 0, []time.Duration{2 * time.Second}
			}
		}
		return 0, nil
	})
	if want := 0.2*defaultCallCost + 0.4; alone < 0.8*want || alone > 1.2*want {
		t.Errorf("a 2 s handler every 5 s: load %.3f, want %.3f", alone, want)
	}

	// The same when the handler's time is read a round before its count
	// (addBusy adds the time first; a round can fall between the two).
	split := newRateConn(defaultCallCost)
	var sum float64
	for k := range 200 {
		switch {
		case k%10 == 0:
			split.c.countCall(split.now)
		case k%10 == 4 && k > 4:
			split.c.busy.Add(int64(2 * time.Second))
		case k%10 == 5 && k > 5:
			split.c.handled.Add(1)
		}
		split.now = split.now.Add(500 * time.Millisecond)
		n, b := split.c.rates(split.now, split.perCall)
		if k >= 100 {
			sum += n*split.perCall + b
		}
	}
	if got, want := sum/100, 0.2*defaultCallCost+0.4; got < 0.8*want || got > 1.2*want {
		t.Errorf("a 2 s handler every 5 s, its time read a round before its count: load %.3f, want %.3f", got, want)
	}

	// The same among 2 cheap calls a second: about half of it.
	mixed := mean(func(k int) (int, []time.Duration) {
		d := []time.Duration{us50}
		if k%10 == 4 && k > 4 {
			d = append(d, 2*time.Second)
		}
		return 1, d
	})
	mixedWant := 2*(defaultCallCost+us50.Seconds()) + 0.4

	// One call in ten at 20 ms among calls of 50 µs, at 2 calls/s.
	tenth := mean(func(k int) (int, []time.Duration) {
		if k%10 == 9 {
			return 1, []time.Duration{20 * time.Millisecond}
		}
		return 1, []time.Duration{us50}
	})
	tenthWant := 2*defaultCallCost + 0.2*20e-3 + 1.8*us50.Seconds()

	// One call in a hundred at 20 ms, at 20 calls/s.
	hundredth := mean(func(k int) (int, []time.Duration) {
		d := make([]time.Duration, 10)
		for i := range d {
			d[i] = us50
		}
		if k%10 == 9 {
			d[0] = 20 * time.Millisecond
		}
		return 10, d
	})
	hundredthWant := 20*defaultCallCost + 0.2*20e-3 + 19.8*us50.Seconds()

	t.Logf("mixed %.2f tenth %.2f hundredth %.2f alone %.2f", mixed/mixedWant, tenth/tenthWant, hundredth/hundredthWant, alone/(0.2*defaultCallCost+0.4))
	// The figures conn.rates gives, within what "about" covers.
	for _, c := range []struct {
		name              string
		got, want, lo, hi float64
	}{
		{"a 2 s handler every 5 s among 2 cheap calls a second (about half)", mixed, mixedWant, 0.3, 0.7},
		{"one call in ten at 20 ms, 2 calls/s (0.3)", tenth, tenthWant, 0.2, 0.45},
		{"one call in a hundred at 20 ms, 20 calls/s (0.6)", hundredth, hundredthWant, 0.45, 0.75},
	} {
		if f := c.got / c.want; f < c.lo || f > c.hi {
			t.Errorf("%s: load %.2f of what the calls cost, want %.2f to %.2f as conn.rates says", c.name, f, c.lo, c.hi)
		}
	}
}

// A connection's first rate leaves out the call the client dialled for: a
// client at a steady 2 calls/s, first read 1 to 1.45 s after its first
// call, reads at most its rate and no less than two thirds of it, where
// counting every call over that time read 1.03 to 1.5 times its rate (and
// its pod looked up to half a connection above its share).
//
// So does a connection that was open 5 s before its first call (a client
// that dialled ahead): its rate is taken from that call on.
func TestRatesFirstRoundLeavesOutTheDialCall(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dialAhead time.Duration // from the dial to the first call
	}{
		{"dialled with its first call", 0},
		{"dialled 5 s ahead of its first call", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for age := time.Second; age < 1500*time.Millisecond; age += 50 * time.Millisecond {
				r := newRateConn(defaultCallCost)
				first := r.now.Add(tc.dialAhead)
				for at := time.Duration(0); at <= age; at += 500 * time.Millisecond {
					r.c.countCall(first.Add(at))
					r.c.addBusy(50 * time.Microsecond)
				}
				n, b := r.c.rates(first.Add(age), r.perCall)
				want := 2 * (defaultCallCost + 50e-6)
				if got := n*r.perCall + b; got > want*(1+1e-9) || got < want*2/3 {
					t.Errorf("first read %s after the first call: load %.6f, %.2f × the %.6f of 2 calls/s; want 0.67 to 1 ×", age, got, got/want, want)
				}
			}
		})
	}
}
