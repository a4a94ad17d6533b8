package main

import (
	"math"
	"time"
)

// Latencies are counted in logarithmic buckets, 2 % wide, from 1 µs to about
// a minute: fine enough that a quantile is off by at most 1 %, small enough
// to merge per-second histograms from another process cheaply.
const (
	histMin     = time.Microsecond
	histGrowth  = 1.02
	histBuckets = 900
)

var logGrowth = math.Log(histGrowth)

// hist is a latency histogram. The zero value is empty and ready to use.
type hist struct {
	counts map[int]uint64 // bucket → calls; sparse, so that it travels as JSON
	n      uint64
}

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	b := int(math.Log(float64(d)/float64(histMin)) / logGrowth)
	return min(b, histBuckets-1)
}

// bucketValue is the geometric middle of bucket b.
func bucketValue(b int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(histGrowth, float64(b)+0.5))
}

func (h *hist) add(d time.Duration) {
	if h.counts == nil {
		h.counts = make(map[int]uint64)
	}
	h.counts[bucketOf(d)]++
	h.n++
}

func (h *hist) merge(o hist) {
	for b, c := range o.counts {
		if h.counts == nil {
			h.counts = make(map[int]uint64)
		}
		h.counts[b] += c
		h.n += c
	}
}

// quantile returns the latency below which a fraction q of the calls fell,
// or 0 for an empty histogram.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b := range histBuckets {
		seen += h.counts[b]
		if seen >= rank {
			return bucketValue(b)
		}
	}
	return bucketValue(histBuckets - 1)
}
