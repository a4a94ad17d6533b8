package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// RefusedMaxConnections is the reason a RefusalObserver is given for a
// connection refused because Config.MaxConnections were open.
const RefusedMaxConnections = "max_connections"

// A RefusalObserver is an Observer that also wants to know of each
// connection the server refused as soon as it accepted it, and why
// (RefusedMaxConnections). A refused connection is never reported to
// ConnOpened or ConnClosed.
type RefusalObserver interface {
	ConnRefused(reason string)
}

// refusalLogEvery bounds the refusal warnings: a flood of refused
// connections logs one line per interval with the count, not one per
// connection.
const refusalLogEvery = 10 * time.Second

// admission enforces MaxConnections in the accept loop.
type admission struct {
	// mu makes the count and the registration of a connection one step
	// across listeners, so the cap is exact.
	mu sync.Mutex

	refused   atomic.Int64 // since the last warning
	lastWarn  atomic.Int64 // unix nanoseconds
	warnMutex sync.Mutex
}

// serveAdmitted serves rc unless Config.MaxConnections connections are open
// already, in which case it closes rc at once: before any TLS or HTTP/2, so
// the client fails fast and can try elsewhere, and a flood costs no
// grpc.Server.
func (s *Server) serveAdmitted(rc net.Conn) {
	limit := s.set.cfg.MaxConnections
	if limit <= 0 {
		s.serveConn(rc)
		return
	}
	s.admit.mu.Lock()
	defer s.admit.mu.Unlock()
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	if open < limit {
		s.serveConn(rc) // registers rc in s.conns before it returns
		return
	}
	rc.Close()
	if ro, ok := s.obs.(RefusalObserver); ok {
		ro.ConnRefused(RefusedMaxConnections)
	}
	s.warnRefused(limit)
}

func (s *Server) warnRefused(limit int) {
	a := &s.admit
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
	s.log.Warn("rotor: refusing connections: MaxConnections are open", "max_connections", limit,
		"refused_since_last_warning", a.refused.Swap(0))
}
