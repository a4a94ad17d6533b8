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
	At  float64 `json:"at_s"` // when client 0's calls turned heavy, from the origin
	Pod string  `json:"pod"`  // the pod client 0's calls went to in the second before At
	// Neighbours counts the other client connections whose calls went to
	// Pod in that second.
	Neighbours int `json:"neighbours"`
	// Moved holds, for each neighbour that left Pod, the time from At to
	// the start of the first second in which its calls went to another
	// pod, in order; the neighbours not in it stayed on Pod to the end.
	Moved []float64 `json:"moved_s,omitempty"`
	// HeavyMoved is true when client 0's calls went to another pod after At.
	HeavyMoved bool `json:"heavy_moved,omitempty"`
}

// analyzeHeavy returns the run's heavySummary, or nil when it has no
// "heavy" event or client 0 made no calls in the second before it.
func (r *run) analyzeHeavy() *heavySummary {
	i := slices.IndexFunc(r.Events, func(e event) bool { return e.Kind == "heavy" })
	if i < 0 {
		return nil
	}
	at := r.Events[i].At
	first := int(math.Ceil(at)) // the first second of heavy calls
	// Each client's pod in the second before: its connection's with the
	// most calls in it, should it have moved within the second.
	podOf := map[int]string{}
	most := map[int]int{}
	for _, c := range r.Conns {
		if n := c.Calls.at(c.From, first-1); n > most[c.Client] {
			podOf[c.Client], most[c.Client] = c.Pod, n
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
// heavy at 60 s on p2 with 3 neighbours; they moved off after 15 s, 31 s,
// 46 s; 0 stayed; client 0 stayed".
func (h heavySummary) text(podName func(string) string) string {
	var moved []string
	for _, m := range h.Moved {
		moved = append(moved, fmt.Sprintf("%.0f s", m))
	}
	line := fmt.Sprintf("client 0's calls heavy at %.0f s on %s with %d neighbours; ", h.At, podName(h.Pod), h.Neighbours)
	if len(moved) > 0 {
		line += "they moved off after " + strings.Join(moved, ", ") + "; "
	}
	line += fmt.Sprintf("%d stayed; client 0 ", h.Neighbours-len(h.Moved))
	if h.HeavyMoved {
		return line + "moved too"
	}
	return line + "stayed"
}
