package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// A RefusalObserver is an Observer that also wants to know of each
// connection the server refused as soon as it accepted it, and why
// (ReasonMaxConnections). A refused connection is never reported to
// ConnOpened or ConnClosed.
type RefusalObserver interface {
	ConnRefused(reason string)
}

// refusalLogEvery bounds the refusal warnings: a flood of refused
// connections logs one line per interval with the count, not one per
// connection.
const refusalLogEvery = 10 * time.Second

// admission counts the connections refused for MaxConnections, for the log.
type admission struct {
	refused   atomic.Int64 // since the last warning
	lastWarn  atomic.Int64 // unix nanoseconds
	warnMutex sync.Mutex
}

// refused reports a connection refused at accept because MaxConnections
// were open: to the observer, and to the log at most once per
// refusalLogEvery.
func (s *Server) refused() {
	if ro, ok := s.obs.(RefusalObserver); ok {
		ro.ConnRefused(string(ReasonMaxConnections))
	}
	a := &s.refusals
	a.refused.Add(1)
	now := time.Now().UnixNano()
	if now-a.lastWarn.Load() < int64(refusalLogEvery) {
		return
	}
	a.warnMutex.Lock()
	defer a.warnMutex.Unlock()
	if now-a.lastWarn.Load() < int64(refusalLogEvery) {
		return
	}
	a.lastWarn.Store(now)
	s.log.Warn("refusing connections: MaxConnections are open", "max_connections", s.cfg.MaxConnections,
		"refused_since_last_warning", a.refused.Swap(0))
}
