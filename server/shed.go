package server

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// maxFairShareCooldown bounds the back-off after futile sheds, futileSheds
// is how many in a row start it, and growthGrace is how long after the peer
// set grew no shed is judged futile (nor, later, one that began before it
// grew): a new pod is in the fleet mean as soon as it announces itself,
// but kube-proxy sends it connections only once its endpoint is ready, and
// until then shed clients land on the old pods.
// example/balance's fleet table copies growthGrace (fleetGrowthGrace).
const (
	maxFairShareCooldown = time.Minute
	futileSheds          = 3
	growthGrace          = 30 * time.Second
)

// shedState is what a pod remembers between fair-share rounds.
type shedState struct {
	lastShed   time.Time
	shedN      int           // how many connections the last shed sent GOAWAY to; 0 when none pends
	shedConns  int           // the pod's client connections when it began (shedInput.judgedConns)
	shedRest   float64       // the rest of the fleet's mean connections then (see shedInput.restConns); 0 when not known
	cooldown   time.Duration // FairShare.Cooldown, doubled after futile sheds
	futile     int           // sheds in a row whose clients came back (see futileShed)
	grewAt     time.Time     // when the peer set last grew
	over       int           // rounds in a row above its share
	under      int           // rounds in a row within its share
	wantSince  time.Time     // the first of the rounds in a row that wanted a shed that waits (see steadyWant); zero when the last round did not
	helpsSince time.Time     // the first of those rounds in a row in which the shed would help by count (see waited); zero when the last did not
	waitLeft   time.Duration // at the last round that wanted a shed that waits, how long it still had to wait (see waited): for the Debug line of a wait no longer wanted
	waitedShed bool          // the last shed waited (steadyWant or loadOnlyWant), or went without a wait as its connections came straight back from one that had: see keptBack for when its clients go again without a wait
}

// overRounds is how many rounds in a row a pod must be above its share
// before it sheds, and within it before it forgets its back-off: a load that
// is high, or low, for one round only is noise (a burst, a slow second, the
// moment between a shed and the clients' return), and a balanced fleet must
// not move.
const overRounds = 2

// steadyWant is how long a shed by load must have been wanted in every
// round before the pod makes it, in a round whose mean is estimated (a
// fleet of more than Sample + 1 pods: shedInput.estimated) more than
// growthGrace after the peer set last grew, or when it never grew, when
// the shed would help by count (in every one of those rounds: see
// waited), and within growthGrace for a shed below the mean count
// (growthShed): the load measure's time constant, loadWindow. Past growth
// a shed that would not help by count, with an estimated mean or an exact
// one (see waitsSteady), waits three times as long (loadOnlyWant). A round
// that does not want a shed, or in which it would not wait, starts the
// wait again, and so does a shed (but a client of a shed that waited that
// came straight back goes again without one: see keptBack); a round in
// which no peer answered makes no decision and also starts it again.
//
// In a fleet whose mean is estimated a shed counts on a random landing,
// which helps little (pods/(pods − 1) is near 1), so the rule's edge is
// thin (see heaviest):
// in the emulated lab, 50 → 60 pods at 4 connections each, 31 of the 35
// sheds past the scale-up's growth came from pods at 5 whose connections
// read a few per cent costlier than the fleet's, about as much as the
// host's CPU moves a load from moment to moment. A slower node, which a
// shed should answer, reads costlier for longer than that. A shed whose
// excess is clear of such noise, by load and by the pod's count of
// connections, does not wait (clearExcess): a pod two connections above a
// mean of 4, where two shed clients landed at once, sheds at once, as
// before; when it waited, one held 7 connections for 7 s. The wait cut
// the connections a fair fleet moves past growth several fold, with time
// to fair unchanged (example/balance/fair-share-runs.md has the runs).
// Since then a pod whose count of connections explains its load sheds
// past growth only when a shed helps by count (countExplains,
// countHelps), and then, unless its excess is clear, after the wait too.
//
// Within growthGrace of growth a scale-up's imbalance is no noise, its new
// pods must fill within seconds, and admission's room (roomIn) sends a
// shed where it helps: no wait, down to the fleet's estimated mean count
// of connections, rounded down; below it a shed waits steadyWant (see
// growthShed). A scale-down is no growth: its sheds wait as past growth.
const steadyWant = loadWindow

// shedInput is what one round knows: this pod's load and the fleet mean,
// in the unit of the measure (connections, or seconds of load per
// second), and the connections it may shed.
type shedInput struct {
	now  time.Time
	own  float64
	mean float64
	// ownConns is the pod's client connections that have called, young
	// ones included (see fairShare.measureConns), counted as the peers
	// count theirs; clearExcess counts it. waiting is the clients back from
	// its sheds since it was last at its share that have not called yet
	// (see fairShare.cameBackAll). restConns is the peers' mean when every
	// peer was asked, 0 otherwise (see restConns). With either measure,
	// judgedConns (ownConns and waiting) and restConns judge whether a
	// shed's clients came back (see futileShed).
	ownConns  int
	waiting   int
	restConns float64
	pods      int        // the fleet's size, this pod included
	conns     []connLoad // client connections old enough to move, not draining
	// returning counts the clients of the pod's sheds that came back, as
	// headless round_robin clients do, and are left out of own: those
	// back from its sheds since it was last at its share that have not
	// called yet (see fairShare.cameBackAll), and with MeasureLoad those
	// whose rate is not known yet (see conn.rateKnown) that were opened
	// from a TCP address the last shed sent GOAWAY to, soon after it (see
	// fairShare.cameBack). A round with any is not a round within the
	// pod's share (see decideShed).
	returning int
	// cameBack counts the connections opened since the last shed began,
	// at any age, from the addresses it sent GOAWAY to (see
	// fairShare.cameBackAll). A shed is futile only when at least half as
	// many came back as it sent away: a count that did not drop because
	// other clients arrived (a rollout's old pods ending, other pods'
	// sheds) is no sign that its clients return.
	cameBack int
	// room is how many connections the peers heard from in this round can
	// take below their share, with admission on (see roomIn); 0 without,
	// and outside growthGrace of the peer set growing.
	room int
	// perConn is the fleet's mean load per connection, the unit room is
	// counted in (see roomOf); 0 when not known. Young connections count
	// in the connections but not yet in the load (conn.rateKnown), so
	// while many move it reads low, as room does.
	perConn float64
	// meanConns is the fleet's mean client connections per pod, this
	// pod's included, as estimated (in either measure); 0 when not known.
	meanConns float64
	// meanErr is, with MeasureLoad, the standard error of mean where it is
	// estimated from a sample of loads, in the same unit, for a fleet
	// balanced within about a connection per pod (see estimateError). 0
	// when every peer was asked or the reports are as many as the peers
	// (the askers fill in: fleets up to about 2 × Sample + 1 pods), with
	// fewer than two reports, when perConn is 0, and with
	// MeasureConnections.
	meanErr float64
	// estimated: the mean is a sample's estimate, not every peer was asked
	// (fleets of more than Sample + 1 pods). With MeasureLoad a shed then
	// waits past growth (steadyWant, or loadOnlyWant: see waited), and
	// within growth below the mean count (growthShed).
	estimated bool
}

// measured returns in with own and mean in the unit of cfg's Measure,
// ownConns, perConn, estimated, and with MeasureLoad meanErr, from
// the pod's own load and client connections (those that have called), the
// fleet's means of both, and the loads the
// peers reported that the means were estimated from, of a fleet of peers
// peers besides this pod (everyone: every peer was asked).
func (in shedInput) measured(cfg FairShare, ownLoad float64, ownConns int, meanLoad, meanConns float64,
	reported []float64, everyone bool, peers int) shedInput {
	in.own, in.mean = ownLoad, meanLoad
	in.perConn = loadPerConn(meanLoad, meanConns)
	in.ownConns, in.meanConns = ownConns, meanConns
	in.estimated = !everyone
	if cfg.Measure == MeasureConnections {
		in.own, in.mean = float64(ownConns), meanConns
		return in
	}
	in.meanErr = estimateError(reported, everyone, peers, in.perConn)
	return in
}

// judgedConns is the count futileShed judges a shed by: the pod's client
// connections that have called and its shed clients back that have not
// called yet. The peers, and the pod's reports, count connections from
// their first call; a client already waiting when a later shed began
// counts in that shed's shedConns too, while one that opened from that
// shed's addresses before it, and had not called, counts only after it,
// which leans towards futile.
func (in shedInput) judgedConns() int { return in.ownConns + in.waiting }

// estimateError returns the standard error of the fleet's mean load that
// estimate takes from a sample of peers peers: the standard deviation of
// the m reported loads, taken at most perConn, times √m/(m + 1)
// (the mean averages them with this pod's own load, which is known), times
// the finite population correction √((peers − m)/(peers − 1)). 0 when
// every peer was asked, when the loads are as many as the peers (asked
// and askers cover the fleet), with fewer than two, or when perConn is 0.
//
// The margin it gives (see heaviest) is for a fleet balanced within about
// a connection per pod, whose pods' loads spread by about one connection's
// load: a wider spread is imbalance (a scale-up's new pods at 0, a pod
// with a heavy client), which sheds must fix, not noise, and uncapped it
// stopped them. It leaves out the reports' own estimates, which also count
// and make the error smaller, and also the estimate's lag and the samples
// kept over rounds, which make it larger. In the emulated lab of 60 pods at
// 4 connections each it read 0.13 and 0.17 of a connection's load (median
// at the pods' sheds, two runs; 0.14–0.19 before the cap; both with
// 1/√(m + 1) in place of √m/(m + 1), which is √((m + 1)/m) times as much:
// 6–12 % more for 8 to 4 reports), about 4 % of the mean; the estimates
// themselves were up to 10 % off.
func estimateError(loads []float64, everyone bool, peers int, perConn float64) float64 {
	m := len(loads)
	if everyone || m < 2 || m >= peers {
		return 0
	}
	var sum, sq float64
	for _, l := range loads {
		sum += l
	}
	mean := sum / float64(m)
	for _, l := range loads {
		sq += (l - mean) * (l - mean)
	}
	sd := min(math.Sqrt(sq/float64(m-1)), perConn)
	fpc := math.Sqrt(float64(peers-m) / float64(peers-1))
	return sd * math.Sqrt(float64(m)) / float64(m+1) * fpc
}

// connLoad is one connection's load, for the shed decision.
type connLoad struct {
	id     int // the caller's handle
	load   float64
	opened time.Time
	back   bool // it came straight back from the pod's last shed (see fairShare.cameBack, keptBack)
}

// shedDecision is the outcome of one round.
type shedDecision struct {
	shed    []int     // ids of the connections to send GOAWAY now
	backOff bool      // this round began (or extended) a back-off
	ended   bool      // this round ended a back-off: its last shed worked, or the pod is within its share
	wants   bool      // this round wanted a shed, made now or not (within its cooldown, waiting, …)
	next    shedState // the state for the next round
}

// decideShed is fair share's policy, a pure function of one round. The pod
// sheds when it has held more than its share for overRounds rounds in a
// row, and not within its cooldown of the last shed:
//
//   - by connections: above ceil(mean) + Tolerance, it sheds the excess,
//     oldest first;
//   - by load: above mean × (1 + Hysteresis), it sheds connections, heaviest
//     first, each light enough that the pod it lands on ends, on average,
//     clearly below where this pod was, by more than the standard error of
//     an estimated mean (see heaviest); a connection too
//     heavy for that is never shed (moving it only moves the hot spot), nor
//     is one that carries no load (moving it changes nothing); with room
//     (admission, within growthGrace), down to within Hysteresis of the
//     mean, no more connections than the room, those heavier than
//     (1 + Hysteresis) × perConn only while c ≤ left·(1 + Hysteresis);
//     more than growthGrace after the peer set last grew (or when it
//     never grew), in a round whose mean is estimated, or exact where a
//     shed would not help by count (waitsSteady), none while the pod's
//     count of connections explains its load and a shed would not help by
//     count (countExplains: the pod is then within its share), and a shed
//     whose excess is not clear of the noise (clearExcess) only once every
//     round has wanted it for steadyWant, or for loadOnlyWant when it
//     would not help by count (see waited); within growthGrace, with an
//     estimated mean, at once down to the fleet's mean count of
//     connections rounded down, and below it after steadyWant
//     (growthShed).
//
// A shed counts as futile (see futileShed) when its clients came straight
// back, as a headless Service's round_robin clients do: the pod's
// connections did not drop by half as many as it sent GOAWAY to, against
// the rest of the fleet's, while at least half as many came from its
// addresses (cameBack). One such shed happens by chance on a ClusterIP,
// when its clients or other pods' land here; several in a row seldom do,
// but in a fleet of 2, where a client lands back half the time, three in
// a row come about once in eight (README.md). After futileSheds in a row
// the cooldown doubles each time, up to maxFairShareCooldown. Within
// growthGrace of the peer set growing no shed is judged, nor one that
// began before it grew. A pod at or below its share for overRounds rounds
// resets everything, but for a round in which clients of its sheds have
// come back and do not count yet (returning): that round cannot tell
// whether the shed worked.
func decideShed(in shedInput, cfg FairShare, st shedState) shedDecision {
	d := shedDecision{next: st}
	// Only a round that wants a shed that waits keeps wantSince and
	// helpsSince (below).
	d.next.wantSince, d.next.helpsSince = time.Time{}, time.Time{}
	target := math.Ceil(in.mean-1e-9) + float64(cfg.Tolerance) // by connections
	within := in.own <= target
	helps := countHelps(in, cfg.Hysteresis)
	steady := waitsSteady(in, cfg, st, helps)
	byCount := false
	if cfg.Measure == MeasureLoad {
		within = in.mean <= 0 || in.own <= in.mean*(1+cfg.Hysteresis)
		// Past growth, a pod whose count explains its load is judged by
		// that count (see countExplains).
		byCount = !within && steady && countExplains(in, cfg.Hysteresis) && !helps
	}
	if within || byCount {
		// A pod judged by its count may be where its last shed left it
		// while that shed's clients are on their way back: it keeps the
		// shed to judge until they had the time (cameBackWindow).
		if st.shedN > 0 && (in.returning > 0 || byCount && in.now.Sub(st.lastShed) < cameBackWindow(cfg)) {
			d.next.over = 0
			return d
		}
		return d.reset(cfg)
	}
	var want []int
	if cfg.Measure == MeasureConnections {
		want = oldest(in.conns, int(in.own-target))
	} else {
		want = heaviest(in, cfg.Hysteresis)
	}
	d.next.over++
	d.next.under = 0
	waits := steady
	if cfg.Measure == MeasureLoad && !steady && in.estimated {
		want, waits = growthShed(in, want)
	}
	d.wants = len(want) > 0
	didWait := false
	if len(want) > 0 && waits && !clearExcess(in, want, cfg.Hysteresis) {
		d.next.wantSince = cmp.Or(st.wantSince, in.now)
		d.next.waitLeft, d.next.helpsSince = waited(in, steady, helps, d.next.wantSince, st.helpsSince)
		if d.next.waitLeft > 0 {
			if want = keptBack(in, st, steady, want); len(want) == 0 {
				return d
			}
		}
		didWait = true
	}
	if d.next.over < overRounds || in.now.Sub(st.lastShed) < st.cooldown || len(want) == 0 {
		return d
	}
	// Within growthGrace of the peer set growing no shed is judged, nor
	// one from before it grew: the mean it began at was another fleet's.
	if st.shedN > 0 && in.now.Sub(st.grewAt) >= growthGrace && st.lastShed.After(st.grewAt) {
		if futileShed(in, st) {
			d.next.futile++
		} else {
			d.ended = st.futile >= futileSheds
			d.next.futile, d.next.cooldown = 0, cfg.Cooldown
		}
		if d.next.futile >= futileSheds {
			d.next.cooldown = min(2*d.next.cooldown, maxFairShareCooldown)
			d.backOff = true
		}
	}
	d.shed = want
	d.next.waitedShed = didWait
	d.next.wantSince, d.next.helpsSince = time.Time{}, time.Time{}
	d.next.lastShed, d.next.shedN, d.next.shedConns, d.next.shedRest = in.now, len(want), in.judgedConns(), in.restConns
	return d
}

// waitsSteady reports whether a shed this round must first have been
// wanted for a while (steadyWant, or loadOnlyWant when it would not help
// by count: see waited), unless its excess is clear (clearExcess): by
// load, more than growthGrace after the peer set last grew or when it
// never grew (past growth), with an estimated mean, or with an exact one
// (every peer asked: fleets of up to Sample + 1 pods) when a shed would
// not help by count (helps, countHelps this round; not while perConn is
// not known). Within growth, growthShed decides whether a shed below the
// mean count waits. With an exact mean clearExcess never shortens the
// wait (a pod clear by count is one whose shed helps by count). A pod
// that joined the fleet counts as past growth from its first round,
// unless it learns of peers joinWindow after it (see growLocked).
//
// So, with an exact mean past growth, as with an estimated one, a pod whose
// count explains its load (countExplains) is judged by that count: unless
// a shed helps by count it is within its share. A pod at ceil(mean) for a
// mean that is not whole (21 connections on 5 pods: a pod at 5 for 4.2)
// stays there even when its connections read a little costlier, where it
// used to shed one and start a walk no placement ends; so a pod may hold
// up to (1 + Hysteresis)·ceil(mean)/mean of the mean load.
//
// An exact mean is no estimate, but a pod's load per connection is a
// reading: on the real control plane (TestRealCluster, 20 clients on 5
// pods, every pod at 4 connections) a pod at 4 whose connections read
// 22–28 % above the fleet's per connection shed one, in 4 of 8 runs,
// 57–84 s after growth; the client landed on a pod at 4, and the walk of
// that fifth connection from pod to pod (a pod at 3 to fill, one landing
// in five) held the fleet at up to 1.11 in calls for the next 25 s, and
// once at 1.20 in CI (example/balance/fair-share-runs.md has the runs). A
// pod whose shed helps by count (a pod at 5 for a mean of 4 in a fleet of
// 5) sheds at once, as before: its count is no reading, and a random
// landing helps (pods/(pods − 1) in a small fleet).
func waitsSteady(in shedInput, cfg FairShare, st shedState, helps bool) bool {
	growing := !st.grewAt.IsZero() && in.now.Sub(st.grewAt) < growthGrace
	if cfg.Measure != MeasureLoad || growing {
		return false
	}
	return in.estimated || in.perConn > 0 && !helps
}

// loadOnlyWant is how long, past growth, a shed that would not help by
// count (countHelps is false: in a fleet of tens of pods with the default
// Hysteresis, a pod at ceil(mean) + 1 or less for a whole mean) must have
// been wanted in every round before the pod makes it: three times
// steadyWant, 15 s. Only the pod's load reading explains such a shed
// (its connections read costlier than the fleet's), and a load reading
// moves with the host: in the emulated lab of 50 → 60 pods, left alone
// for 533 s past growth (no age wave), pods at 5 whose connections read
// over Hysteresis above the fleet's for 5 s shed 3 times in each of two
// runs, though nothing in the fleet had changed, and each shed only moved
// the pod at 5 to where its client landed; with 15 s, in two runs beside
// them, none and one, by a pod at 4 whose connections read 1.41 times the
// fleet's, and none in each of three runs since
// (example/balance/fair-share-runs.md). How close the host's noise comes
// to it, from fair share's Debug line of a shed that waited and was no
// longer wanted: in two more such runs, past growth, 86 waits ended
// without a shed (median 0.5 s, to the round that no longer wanted it);
// the 3 by pods at 4, which only the load explains, after 0.5 s each;
// the longest, 4.0 s, by pods at 5, whose wait is 15 s too unless their
// sample reads the mean low enough for a shed to help by count, then 5 s
// (the line did not yet say which: it now gives left;
// runs-2026-12-06/balanced-fleet-waits.txt). A load that stays high, a
// heavy client or a slower node, moves 15 s after it began, 10 s later
// than with steadyWant, and a connection whose client lands back on the
// pod a second or two after that, once its rate is known, without a new wait
// (keptBack; example/balance/testdata/runs-2026-12-05/late-heavy-client.txt
// and runs-2026-12-06/late-heavy-client-kept-wait.txt have the lab's runs
// of a client that turns heavy, before and with it).
// Within growth such a shed waits steadyWant (see growthShed); a shed that
// helps by count waits steadyWant at most (see waited).
const loadOnlyWant = 3 * steadyWant

// waited returns how long a shed that waits, wanted in every round since
// wantSince (this one included), still has to be wanted: zero or less when
// it has been wanted long enough. Past growth (steady: see waitsSteady)
// that is loadOnlyWant from wantSince, or steadyWant from the first of the
// rounds in a row in which it would help by count (helps: countHelps this
// round) when that comes sooner; steadyWant from wantSince while perConn
// is not known, and within growth (growthShed). It also returns that first
// round in which the shed helps, this one included, from helpsSince, the
// last round's; zero when it does not help, does not wait as past growth,
// or perConn is not known. The rounds in which it helps must be in a row:
// with an estimated mean whether it helps is itself a reading (a pod at 5
// for a mean of 4 helps by count when its sample reads the mean below
// about 3.9), and one round's low estimate would otherwise cut a wait of
// 15 s to 5 s. What is left also goes to fair share's Debug line of a wait
// no longer wanted (shedState.waitLeft).
func waited(in shedInput, steady, helps bool, wantSince, helpsSince time.Time) (left time.Duration, helpsFrom time.Time) {
	if !steady || in.perConn <= 0 {
		return steadyWant - in.now.Sub(wantSince), time.Time{}
	}
	left = loadOnlyWant - in.now.Sub(wantSince)
	if helps {
		helpsFrom = cmp.Or(helpsSince, in.now)
		left = min(left, steadyWant-in.now.Sub(helpsFrom))
	}
	return left, helpsFrom
}

// keptBack returns the connections of want that came straight back from
// the pod's last shed (connLoad.back: opened from an address it sent
// GOAWAY to, within cameBackWindow of it), when that shed waited
// (waitedShed) and still pends, and this round waits as past growth
// (steady); nil otherwise. They go without a new wait, once their rate is
// known (rateMinAge) and overRounds and the cooldown allow: the pod reads
// what that shed waited for again, and past growth, with admission off, a
// shed client lands back on its pod one time in pods at random, where a
// new wait held it for another loadOnlyWant (a heavy client's neighbour
// moved 32–33 s after the client's load began, in place of 16 s, in the
// lab's late-heavy-client runs; with keptBack, 17 s). The rest of want is
// not shed that round, and waits afresh after the shed, as after any shed.
// Clients that share one address (SNAT) cannot be told apart: any
// connection from it opened within cameBackWindow of the shed counts. A
// headless Service's round_robin clients come back every time, so past
// growth their pod would send its GOAWAYs seconds apart in place of 15 s or
// more, and back off after futileSheds of them (see futileShed): derived
// from the rule, not measured (in the lab's skewed-cost-headless every shed
// came within growth, where keptBack does not act:
// example/balance/testdata/runs-2026-12-06/skewed-cost-headless-fair-share.txt).
func keptBack(in shedInput, st shedState, steady bool, want []int) []int {
	if !steady || !st.waitedShed || st.shedN == 0 {
		return nil
	}
	var back []int
	for _, id := range want {
		if i := slices.IndexFunc(in.conns, func(c connLoad) bool { return c.id == id }); i >= 0 && in.conns[i].back {
			back = append(back, id)
		}
	}
	return back
}

// growthShed returns, for a round within growthGrace of growth whose mean
// is estimated, with MeasureLoad, what the round may shed at once: want
// (ids heaviest first, from heaviest) cut to the connections above the
// fleet's estimated mean count of connections rounded down, counted as
// the peers count theirs (ownConns, meanConns); that much a scale-up's
// imbalance explains. The connections cut off are not shed this round; a
// later round, at that count, wants them again. waits is true only when
// nothing goes at once, the pod being at or below that count: then all of
// want waits for steadyWant, not loadOnlyWant as past growth: growth's
// imbalance is real, only this reading is unsure (clearExcess cannot let
// it go sooner: such a pod is not clear of the mean by count). want
// unchanged, not waiting, when meanConns is not known (0).
//
// Below that count only the load reading explains a shed, and within
// growth, where every moved client's connection is young, a load reading
// is at its least sure: a connection's first reading is not capped (see
// conn.rates), and on a busy host one that waited for a CPU read several
// times the others'. In the emulated lab of 100 → 110 pods, without this
// wait, 0–3 sheds a run kept such a connection and shed the rest, down to
// 1 or 2 for a mean of 4, and past growth nothing refilled the pod. A
// heavy client's neighbours, which do have to go, go after the wait (its
// reading stays); a reading one CPU wait lifted keeps about a third of its
// excess 5 s later (the moving average's e⁻¹).
//
// The mean count is a sample's estimate (about 10 % off, and low while
// connections move: see FairShare), so for a whole mean of 4 it rounds
// down to 3 or 4 from round to round, and a pod at 4 may go to 3 at once.
func growthShed(in shedInput, want []int) (now []int, waits bool) {
	if in.meanConns <= 0 {
		return want, false
	}
	byCount := in.ownConns - int(math.Floor(in.meanConns+1e-9))
	switch {
	case byCount <= 0:
		return want, true
	case len(want) > byCount:
		return want[:byCount], false
	}
	return want, false
}

// clearExcess reports whether a shed's excess is clear of the noise, so
// that it need not wait for steadyWant. It must be clear by load: the
// heaviest of the connections to shed (want, ids from in.conns), which
// heaviest picked first, helps with a margin of hysteresis × mean in
// place of heaviest's hysteresis × its load,
//
//	c + hysteresis·mean < (own − mean − meanErr)·pods/(pods−1)
//
// and by connections: the same with one connection, and the pod's
// connections that have called (in.ownConns, as the peers count theirs),
// at the fleet's mean load per connection (left out while perConn is not
// known, 0):
//
//	perConn + hysteresis·mean < (ownConns·perConn − mean − meanErr)·pods/(pods−1)
//
// In connections, for a mean of M: ownConns − M − meanErr/perConn must be
// more than (1 + hysteresis·M)·(pods−1)/pods. With the default Hysteresis
// (0.1) in a fleet of tens of pods, a pod at 6 or 7 for a mean of 4, where
// two shed clients landed at once, clears it; a pod at 5 does not,
// whatever its load reads: it waits, and past growth, while its count
// explains its load, sheds nothing (countExplains). In small fleets or
// with a smaller Hysteresis it can (5 of 4 clears it with Hysteresis 0.01
// in a fleet of 6). The count is what a busy host's noise cannot move: by
// load alone a pod at 5 cleared it once its connections read about 9 %
// costlier than the fleet's, which on a busy host many did, and shed at
// once (example/balance/fair-share-runs.md has the runs). A load that
// stays high, a heavy client or a slower node, still moves after
// loadOnlyWant.
func clearExcess(in shedInput, want []int, hysteresis float64) bool {
	if in.pods < 2 {
		return false
	}
	spread := float64(in.pods) / float64(in.pods-1)
	if in.perConn > 0 && !clearByCount(in, hysteresis) {
		return false
	}
	heaviestLoad := math.Inf(-1)
	for _, c := range in.conns {
		if slices.Contains(want, c.id) {
			heaviestLoad = max(heaviestLoad, c.load)
		}
	}
	return heaviestLoad+hysteresis*in.mean < (in.own-in.mean-in.meanErr)*spread
}

// clearByCount reports whether the pod's connections that have called,
// at the fleet's mean load per connection (perConn, which must be known),
// are clear of the mean by one connection and the margin clearExcess
// asks, hysteresis × mean: with the default Hysteresis in a fleet of tens
// of pods, 6 or more for a mean of 4. False for a fleet of one.
func clearByCount(in shedInput, hysteresis float64) bool {
	return countClears(in, hysteresis*in.mean)
}

// countHelps reports whether a shed helps by count: a connection at the
// fleet's mean load per connection (perConn, which must be known) that
// lands on a pod at the mean leaves that pod below this one, counted at
// perConn, by the margin heaviest asks of a connection and the mean's
// error:
//
//	(1 + hysteresis)·perConn < (ownConns·perConn − mean − meanErr)·pods/(pods−1)
//
// In connections, for a mean of M: ownConns − M − meanErr/perConn must be
// more than (1 + hysteresis)·(pods−1)/pods. With the default Hysteresis in
// a fleet of tens of pods that is 6 for a mean of 4 or 4.5, 12 for 10, and
// never ceil(M) + 1 for a whole M. False for a fleet of one.
func countHelps(in shedInput, hysteresis float64) bool {
	return countClears(in, hysteresis*in.perConn)
}

// countClears reports whether the pod's connections that have called
// (in.ownConns, as the peers count theirs), each at the fleet's mean load
// per connection (perConn, which must be known), less the mean and its
// error, scaled by pods/(pods−1) as heaviest scales a pod's excess, are
// more than one connection and margin:
//
//	perConn + margin < (ownConns·perConn − mean − meanErr)·pods/(pods−1)
//
// clearByCount and countHelps differ only in margin. False for a fleet of
// one.
func countClears(in shedInput, margin float64) bool {
	if in.pods < 2 {
		return false
	}
	spread := float64(in.pods) / float64(in.pods-1)
	return in.perConn+margin < (float64(in.ownConns)*in.perConn-in.mean-in.meanErr)*spread
}

// countExplains reports whether the pod's load is what its count of
// connections explains: at most ownConns × perConn × (1 + hysteresis).
// False while perConn is not known (0).
//
// Past growth, with an estimated mean or an exact one (see waitsSteady),
// such a pod is judged by its count: unless a shed helps by count
// (countHelps), it is within its share and sheds nothing; its back-off and
// pending shed are forgotten as for any pod within its share, once the
// clients of that shed had the time to come back (cameBackWindow). With
// an estimated mean a shed that helps by count waits for steadyWant unless
// its excess is clear (clearExcess); with an exact one it does not. A pod at
// ceil(mean) + 1 for a whole mean, in a fleet of tens of pods with the
// default Hysteresis, holds one connection above it, and a random landing
// cannot even that out: its connection lands, most likely, on a pod at the
// mean, which then holds the one above. By load, a pod at 5 for a mean of 4
// whose connections read a few per cent high for steadyWant moved one; its
// connections read so by the host's CPU from moment to moment, not by what
// its clients cost. A pod whose connections stay costlier than Hysteresis
// over the fleet's, a heavy client or a slower node, is judged by load,
// and its shed, which would not help by count, waits for loadOnlyWant.
func countExplains(in shedInput, hysteresis float64) bool {
	return in.perConn > 0 && in.own <= float64(in.ownConns)*in.perConn*(1+hysteresis)
}

// futileShed reports whether the last shed (in st) was futile, its
// clients come back: at least half as many connections came from its
// addresses as it sent away (cameBack), and the pod's client connections
// did not drop by half as many as it sent GOAWAY to, scaled by how the rest
// of the fleet's moved since:
//
//	judgedConns > (shedConns − shedN/2) × restConns/shedRest
//
// Where the rest's mean is not known (0, at the shed or now: in fleets
// larger than Sample + 1 pods, whose means are estimated) the count as it
// is decides.
//
// Connections, with either Measure: whether clients came back is a matter
// of connections, which count from their first call (for this judgement
// only, the sheds' clients count once they are back: see
// fairShare.cameBackAll), while a connection's load counts only once its
// rate can be read (conn.rateKnown) and reads as the host lets handlers
// run. Judged by the load as it was or against the rest's mean load,
// TestFairShareBacksOffWhenClientsComeBack failed beside the example's lab
// tests (example/balance/fair-share-runs.md has the runs); judged by its
// share of the fleet mean load, a pod of 2 that shed hardly lowered its
// share while the clients it moved were young where they landed.
//
// The rest's scale is for clients that share one address (SNAT): cameBack
// then cannot tell a shed's clients from others, such as a rollout's,
// which land on every pod. As a ratio it also keeps clients leaving every
// pod from reading as a shed that worked; a pod above the rest's mean is
// credited a little more than its even part of such arrivals.
func futileShed(in shedInput, st shedState) bool {
	if 2*in.cameBack < st.shedN {
		return false
	}
	want := float64(st.shedConns) - float64(st.shedN)/2
	if st.shedRest > 0 && in.restConns > 0 {
		want *= in.restConns / st.shedRest
	}
	return float64(in.judgedConns()) > want
}

// cameBackWindow is how soon after a shed's round began a connection from
// one of its addresses counts as its client come straight back (see
// fairShare.cameBack): the round's load queries, which its GOAWAYs follow,
// take up to Interval, its GOAWAYs' Spread, and rateMinAge from the dial.
func cameBackWindow(cfg FairShare) time.Duration {
	return cfg.Interval + on(cfg.Spread) + rateMinAge
}

// reset is the decision of a pod at or below its share: after overRounds
// rounds of it, its last shed worked.
func (d shedDecision) reset(cfg FairShare) shedDecision {
	d.next.over = 0
	d.next.under++
	if d.next.under >= overRounds {
		d.ended = d.next.futile >= futileSheds
		d.next.shedN, d.next.shedConns, d.next.shedRest, d.next.futile, d.next.cooldown = 0, 0, 0, 0, cfg.Cooldown
	}
	return d
}

// oldest returns the ids of the n oldest connections.
func oldest(conns []connLoad, n int) []int {
	sorted := slices.Clone(conns)
	slices.SortFunc(sorted, func(a, b connLoad) int { return a.opened.Compare(b.opened) })
	var ids []int
	for _, c := range sorted[:min(n, len(sorted))] {
		ids = append(ids, c.id)
	}
	return ids
}

// heaviest picks, heaviest first, the connections to shed from a pod whose
// load own is above the fleet's mean, in a fleet of pods pods. A shed
// connection lands on a pod kube-proxy picks at random among the others,
// which are on average (own − mean)/(pods−1) below the mean, since this
// pod holds that much above it. Moving a connection of load c helps when
// that pod then ends, on average, below where this pod was, with a margin
// of Hysteresis × c against the noise of the measure:
//
//	mean − left/(pods−1) + c·(1 + Hysteresis) < mean + left
//	c·(1 + Hysteresis) < left·pods/(pods−1)
//
// with left the excess not yet shed this round. So 5, 5, 4, 3, 3 equal
// connections move towards 4 each, while 21 on 5 pods (one pod must hold
// 5) move nothing. When the mean is a sample's estimate (fleets of more
// than Sample + 1 pods), the rule takes left less the estimate's standard
// error, meanErr (see estimateError). In the emulated lab of 60 pods at 4
// connections each the pods' estimates ran from 3.7 to 4.4, and a pod at
// 5 whose estimate read low and whose load read high by more than 0.08 of
// a connection together shed its fifth connection, which made the pod it
// landed on, at 4, the next at 5. The margin takes out about one standard
// error of that (there about 4 % of the mean), not all of it
// (example/balance/fair-share-runs.md has the runs); such a shed also
// waits for steadyWant, or loadOnlyWant (see waited), and past growth a
// pod whose count explains its load makes it only when it helps by count
// (see decideShed). A connection heavier than the mean makes whichever pod
// holds it the busiest, so it moves only when as much load stays behind (a
// pod that holds two of a few heavy clients sheds one); otherwise the pod
// sheds lighter ones and keeps it.
// Connections without load are not candidates.
//
// With room (admission on, and peers below their share by whole
// connections: see roomIn), a shed connection does not stay on the pod it
// lands on while that pod is at its share: admission sends it on until it
// reaches one with room. Room is counted in the fleet's mean load per
// connection, perConn: a pod with room ends within its share with one more
// of those. So a connection within Hysteresis of perConn (or lighter)
// moves when this pod keeps within Hysteresis of the mean, c ≤ left +
// Hysteresis·mean, and no more connections than room: in a fleet of
// 50 → 60 pods the old pods hold 4 or 5 connections for a mean of 4, and
// those at 5 move one each, which the rule without room, made for random
// landings, never does (60/59 < 1.1). With connections of equal load both
// pods then end within the band, and neither sheds again; one up to
// Hysteresis heavier than perConn can leave the pod it lands on that much
// above. The band is of the mean, not of c, because the mean is a
// sample's estimate, a few percent off: by c ≤ left·(1 + Hysteresis) a
// pod at 5 moves its fifth connection only while its estimate is at most
// 5 − 1/1.1 = 4.09, within about 2 % of 4. A heavier connection moves
// only by that stricter rule or not at all: the pod it lands on could end
// above its share and send it back.
func heaviest(in shedInput, hysteresis float64) []int {
	own, mean, room, perConn, pods := in.own, in.mean, in.room, in.perConn, in.pods
	if pods < 2 {
		return nil
	}
	spread := float64(pods) / float64(pods-1)
	sorted := slices.Clone(in.conns)
	slices.SortFunc(sorted, func(a, b connLoad) int {
		if c := -cmpFloat(a.load, b.load); c != 0 {
			return c
		}
		return a.opened.Compare(b.opened)
	})
	var ids []int
	left := own - mean
	for _, c := range sorted {
		if room > 0 && len(ids) >= room {
			break
		}
		helps := c.load*(1+hysteresis) < (left-in.meanErr)*spread
		if room > 0 {
			helps = c.load <= left*(1+hysteresis) || c.load <= perConn*(1+hysteresis) && c.load <= left+hysteresis*mean
		}
		if c.load <= 0 || !helps || c.load > mean && own-c.load < c.load {
			continue
		}
		ids = append(ids, c.id)
		left -= c.load
		own -= c.load
	}
	return ids
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
