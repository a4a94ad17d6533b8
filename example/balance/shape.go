package main

import "math"

// A load shape is how a scenario's calls spread over its client
// connections and what they cost.
type loadShape string

const (
	// uniformLoad: every connection makes the same number of calls, none
	// with work (the seed scenarios).
	uniformLoad loadShape = ""
	// zipfLoad: connection i (from 1) makes calls in proportion to 1/i
	// (Zipf, s = zipfS): with 20 connections the busiest makes 27.8 % of
	// the calls and the quietest 1.4 %, like a gateway Deployment beside
	// cron jobs.
	zipfLoad loadShape = "zipf"
	// costLoad: even call rates, but heavyCallShare of the calls are heavy,
	// costing heavyCost times a light call's server CPU; they all come from
	// heavyConnShare of the connections (heavyFractions), so that even
	// connection counts are uneven load.
	costLoad loadShape = "cost"
	// lateHeavyLoad: even call rates and light calls, until the scenario's
	// event, from which connection 0 makes every call heavy (a client whose
	// calls turn costly in a balanced fleet; see lateHeavyFractions).
	lateHeavyLoad loadShape = "late-heavy"
)

// hasHeavy reports whether the shape has heavy calls: its load counts in
// cost units (a light call 1, a heavy one heavyCost).
func (s loadShape) hasHeavy() bool { return s == costLoad || s == lateHeavyLoad }

// zipfS is the exponent of zipfLoad.
const zipfS = 1.0

// The mix of costLoad.
const (
	heavyCallShare = 0.10 // of all calls
	heavyConnShare = 0.20 // of the connections make all the heavy calls
	// heavyCost is a heavy call's cost in light calls: the load unit
	// "cost" counts a light call as 1 and a heavy one as heavyCost. The
	// work units that make it so on a given host are measured by the
	// call-cost scenario (-heavy-work).
	heavyCost = 20.0
)

// zipfWeights returns n relative rates, 1/i^s for i = 1…n.
func zipfWeights(n int, s float64) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
	}
	return w
}

// heavyFractions returns, for n connections, the share of each one's calls
// that are heavy: the first round(n × heavyConnShare) connections (at least
// one) share all the heavy calls, heavyCallShare of all the calls when the
// rates are even; the others make light calls only. With 20 connections,
// 4 make half of their calls heavy.
func heavyFractions(n int) []float64 {
	heavyConns := max(1, int(math.Round(float64(n)*heavyConnShare)))
	f := min(1, heavyCallShare*float64(n)/float64(heavyConns))
	out := make([]float64, n)
	for i := range heavyConns {
		out[i] = f
	}
	return out
}

// lateHeavyFractions returns lateHeavyLoad's heavy fractions for n
// connections: 1 for connection 0, 0 for the others.
func lateHeavyFractions(n int) []float64 {
	out := make([]float64, n)
	out[0] = 1
	return out
}

// goldenFraction is (√5 − 1) / 2: its multiples modulo 1 spread as evenly
// as any sequence can.
var goldenFraction = (math.Sqrt(5) - 1) / 2

// heavySequence returns a function that says, call by call, whether the
// next call of a caller is heavy: a fraction f of any run of calls, spread
// evenly (a Weyl sequence, n × golden ratio modulo 1, below f), and never
// periodic, so that heavy calls do not line up with a round_robin client's
// turn over 2 or 5 pods. conn and worker only shift the sequence's start.
// Not safe for concurrent use.
func heavySequence(f float64, conn, worker int) func() bool {
	x := math.Mod(float64(conn)*math.Sqrt2+float64(worker)*math.Sqrt(3), 1)
	return func() bool {
		x += goldenFraction
		x -= math.Floor(x)
		return x < f
	}
}
