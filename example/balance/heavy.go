package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// heavySummary is what a late-heavy-client run records of client 0, whose
// calls turned heavy at At, and of the client connections that shared its
// pod then: how long fair share took to move them off it.
type heavySummary struct {
	At  float64 `json:"at_s"` // when client 0's calls turned heavy, in seconds from the origin (a whole second)
	Pod string  `json:"pod"`  // the pod client 0's calls went to in the second before At
	// Neighbours counts the other client connections whose calls went to
	// Pod in that second (on their newest TCP connection then).
	Neighbours int `json:"neighbours"`
	// Moved holds, for each neighbour that left Pod, the seconds from At
	// to the start of the first second from At in which its calls went to
	// another pod, in order; the neighbours not in it stayed on Pod to the
	// end. A neighbour whose client landed back on Pod counts from the
	// first second its calls went elsewhere.
	Moved []float64 `json:"moved_s,omitempty"`
	// HeavyMoved is true when client 0's calls went to another pod after At.
	HeavyMoved bool `json:"heavy_moved,omitempty"`
}

// analyzeHeavy returns the run's heavySummary, or nil when it has no
// eventHeavy event, client 0 made no calls in the second before it, or the
// clients spread their calls over several TCP connections (-spread-k):
// then a client is on several pods at once.
func (r *run) analyzeHeavy() *heavySummary {
	ev, ok := r.firstEvent(eventHeavy)
	if !ok || r.Spread > 1 {
		return nil
	}
	at := ev.At
	first := int(math.Ceil(at)) // the first second of heavy calls
	// Each client's pod in the second before: that of its newest
	// connection with calls in it, should it have moved within the second.
	podOf := map[int]string{}
	newest := map[int]int{}
	for _, c := range r.Conns {
		if prev, ok := newest[c.Client]; c.Calls.at(c.From, first-1) > 0 && (!ok || c.From > prev) {
			podOf[c.Client], newest[c.Client] = c.Pod, c.From
		}
	}
	pod, ok := podOf[0]
	if !ok {
		return nil
	}
	h := &heavySummary{At: at, Pod: pod}
	// elsewhere returns the first second from first in which client's calls
	// went to a pod other than pod; ok is false when none did.
	elsewhere := func(client int) (sec int, ok bool) {
		sec = math.MaxInt
		for _, c := range r.Conns {
			if c.Client != client || c.Pod == pod {
				continue
			}
			for t := max(first, c.From); t < c.From+len(c.Calls); t++ {
				if c.Calls[t-c.From] > 0 {
					sec, ok = min(sec, t), true
					break
				}
			}
		}
		return sec, ok
	}
	for client, p := range podOf {
		if client == 0 || p != pod {
			continue
		}
		h.Neighbours++
		if sec, ok := elsewhere(client); ok {
			h.Moved = append(h.Moved, float64(sec)-at)
		}
	}
	slices.Sort(h.Moved)
	_, h.HeavyMoved = elsewhere(0)
	return h
}

// text is the summary in words, podName naming a pod: "client 0's calls
// heavy at 60 s on p2 with 3 neighbours; they moved off after 16 s, 16 s,
// 17 s; none stayed; client 0 stayed".
func (h heavySummary) text(podName func(string) string) string {
	var moved []string
	for _, m := range h.Moved {
		moved = append(moved, fmt.Sprintf("%.0f s", m))
	}
	neighbours := fmt.Sprintf("%d neighbours", h.Neighbours)
	if h.Neighbours == 1 {
		neighbours = "1 neighbour"
	}
	line := fmt.Sprintf("client 0's calls heavy at %.0f s on %s with %s; ", h.At, podName(h.Pod), neighbours)
	if len(moved) > 0 {
		line += "they moved off after " + strings.Join(moved, ", ") + "; "
	}
	if stayed := h.Neighbours - len(h.Moved); stayed == 0 {
		line += "none stayed; client 0 "
	} else {
		line += fmt.Sprintf("%d stayed; client 0 ", stayed)
	}
	if h.HeavyMoved {
		return line + "moved too"
	}
	return line + "stayed"
}
