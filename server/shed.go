package server

import (
	"math"
	"time"
)

// maxFairShareCooldown bounds the back-off after futile sheds, and
// futileSheds is how many in a row start it.
const (
	maxFairShareCooldown = time.Minute
	futileSheds          = 3
)

// shedState is what a pod remembers between fair-share rounds.
type shedState struct {
	lastShed time.Time
	shedOwn  int           // own load when the last shed began; 0 when none pends
	cooldown time.Duration // FairShare.Cooldown, doubled after futile sheds
	futile   int           // sheds in a row that did not lower the load
}

// shedDecision is the outcome of one round.
type shedDecision struct {
	shed    int       // connections to send GOAWAY now
	backOff bool      // this round began (or extended) a back-off
	next    shedState // the state for the next round
}

// decideShed is fair share's policy, a pure function of one round: a pod
// holding own client connections in a fleet whose mean is mean sheds its
// excess over ceil(mean) + Tolerance, unless it shed less than its cooldown
// ago. A shed that did not lower its load counts as futile (its clients
// came straight back, as a headless Service's round_robin clients do; one
// such shed happens by chance on a ClusterIP when other pods' sheds land
// here, several in a row do not): after futileSheds in a row the cooldown
// doubles each time, up to maxFairShareCooldown. A pod at or below the
// target resets everything.
func decideShed(now time.Time, own int, mean float64, cfg FairShare, st shedState) shedDecision {
	target := int(math.Ceil(mean-1e-9)) + cfg.Tolerance
	d := shedDecision{next: st}
	switch {
	case own <= target:
		d.next.shedOwn, d.next.futile, d.next.cooldown = 0, 0, cfg.Cooldown
		return d
	case now.Sub(st.lastShed) < st.cooldown:
		return d
	}
	if st.shedOwn > 0 {
		if own >= st.shedOwn {
			d.next.futile++
		} else {
			d.next.futile, d.next.cooldown = 0, cfg.Cooldown
		}
		if d.next.futile >= futileSheds {
			d.next.cooldown = min(2*d.next.cooldown, maxFairShareCooldown)
			d.backOff = true
		}
	}
	d.shed = own - target
	d.next.lastShed, d.next.shedOwn = now, own
	return d
}
