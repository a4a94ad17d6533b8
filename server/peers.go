package server

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotorkit/rotor/internal/lifecycle"
)

// DefaultPeerInterval is how often the peer watcher resolves its name when
// WithPeerDNS is given an interval of 0.
const DefaultPeerInterval = 5 * time.Second

// peerWatcher resolves the headless Service of the server's own pods and
// calls grow when an address appears that it has not seen in the previous
// answer. The first answer only sets the baseline: a new pod does not rotate
// the connections it has just been given.
type peerWatcher struct {
	resolver *net.Resolver
	name     string
	interval time.Duration
	// perPeer, when set, stretches the interval to perPeer times the peers
	// of the last answer, if that is longer (see peerPollPerPeer).
	perPeer time.Duration
	grow    func(added []string, peers int)
	self    func(addr string) bool // reports the server's own addresses
	// failed is called on the first failure after a success, and once
	// when the name has not resolved since the watcher started, for
	// peerNeverResolvedAfter or more (never, since: how long).
	failed func(err error, never bool, since time.Duration)

	mu          sync.Mutex
	peers       []string // sorted; nil before the first answer
	ok          bool
	started     time.Time // the first poll
	warnedNever bool      // failed was called for a name never resolved
}

// peerNeverResolvedAfter is how long a peer watcher's name may stay
// unresolved from the start before the server warns: a mistyped name, or a
// headless Service that does not exist, would otherwise leave fair share
// and the peer watcher idle without a word. A fleet's first pods wait for
// their own readiness before the name has an address, which takes seconds,
// so the warning waits longer than that.
var peerNeverResolvedAfter = 30 * time.Second

// parsePeerTarget splits "dns://SERVER/name", "dns:///name" or "name" into
// the DNS server to ask ("" for the system resolver) and the name.
func parsePeerTarget(target string) (server, name string, err error) {
	if !strings.Contains(target, "://") {
		if target == "" || strings.ContainsAny(target, "/ ") {
			return "", "", fmt.Errorf("want a DNS name or dns://SERVER/name")
		}
		return "", target, nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "dns" {
		return "", "", fmt.Errorf("want a DNS name or dns://SERVER/name")
	}
	name = strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("want dns://SERVER/name with a name after the server")
	}
	if u.Host != "" {
		server = u.Host
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
	}
	return server, name, nil
}

func newPeerWatcher(target string, interval time.Duration) (*peerWatcher, error) {
	server, name, err := parsePeerTarget(target)
	if err != nil {
		return nil, err
	}
	r := net.DefaultResolver
	if server != "" {
		r = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			},
		}
	}
	if interval <= 0 {
		interval = DefaultPeerInterval
	}
	return &peerWatcher{resolver: r, name: name, interval: interval}, nil
}

// peerPollPerPeer is how far each peer stretches the peer watcher's
// interval when fair share runs: Go's resolver sorts an answer by RFC 6724,
// which opens a UDP socket per address (about 20 µs each, measured by
// BenchmarkFairShareExchange's profile), so a poll costs a pod time in
// proportion to the fleet. Stretched, its cost per pod stays about 0.04 %
// of a core whatever the fleet's size: 5 s (DefaultPeerInterval) up to 100
// pods, 50 s at 1,000. Fair share's announcements find new pods within a
// few rounds all the same; the poll is for the pods that left.
// example/balance's fleet table copies it (fleetPollPerPeer) and the wait
// below (pastGrowth).
var peerPollPerPeer = 50 * time.Millisecond

func (w *peerWatcher) run(ctx context.Context) {
	lifecycle.Loop(ctx, 0, func() time.Duration {
		w.poll(ctx)
		return w.wait()
	})
}

// wait is the time until the next poll.
func (w *peerWatcher) wait() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(w.interval, w.perPeer*time.Duration(len(w.peers)))
}

func (w *peerWatcher) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.interval)
	defer cancel()
	now := time.Now()
	w.mu.Lock()
	if w.started.IsZero() {
		w.started = now
	}
	w.mu.Unlock()
	addrs, err := w.resolver.LookupHost(ctx, w.name)
	if err != nil {
		if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
			return
		}
		w.mu.Lock()
		wasOK := w.ok
		w.ok = false
		since := time.Since(w.started)
		never := w.peers == nil && !w.warnedNever && since >= peerNeverResolvedAfter
		w.warnedNever = w.warnedNever || never
		w.mu.Unlock()
		if w.failed != nil && (wasOK || never) {
			w.failed(err, never, since)
		}
		return
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	w.mu.Lock()
	prev := w.peers
	w.peers, w.ok = addrs, true
	w.mu.Unlock()
	if prev == nil {
		return
	}
	var added []string
	for _, a := range addrs {
		// A new pod sees itself join: that is no reason to send away the
		// connections it has just been given.
		if _, found := slices.BinarySearch(prev, a); !found && (w.self == nil || !w.self(a)) {
			added = append(added, a)
		}
	}
	if len(added) > 0 && w.grow != nil {
		w.grow(added, len(addrs))
	}
}

// Peers returns the addresses the peer watcher found in its last successful
// answer, sorted; nil without WithPeerDNS or before the first answer.
func (s *Server) Peers() []string {
	if s.peers == nil {
		return nil
	}
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return slices.Clone(s.peers.peers)
}

// isPeer reports whether ip is one of the peers the watcher resolved.
func (s *Server) isPeer(ip string) bool {
	if s.peers == nil {
		return false
	}
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return slices.Contains(s.peers.peers, ip)
}

// startPeers runs the peer watcher, if configured, until ctx ends.
func (s *Server) startPeers(ctx context.Context) {
	w := s.peers
	if w == nil {
		return
	}
	w.self = s.isLocalAddr
	w.grow = func(added []string, peers int) {
		if s.fair != nil {
			// Fair share moves just the excess within seconds; rotating
			// everything would only add churn.
			s.fair.grew(time.Now())
			s.log.Info("peer set grew; fair share will rebalance", "added", added, "peers", peers)
			return
		}
		s.log.Info("peer set grew; rotating connections", "added", added, "peers", peers)
		s.bg.Go(func() {
			if _, err := s.Rotate(ctx, Rotation{Reason: ReasonPeers}); err != nil && ctx.Err() == nil {
				s.log.Warn("peer rotation stopped", "err", err)
			}
		})
	}
	w.failed = func(err error, never bool, since time.Duration) {
		if never {
			s.log.Warn("peer watcher has not resolved its name since the server started; relying on age rotation (check WithPeerDNS's name, the headless Service of these pods, or whether any of them is ready)",
				"name", w.name, "for", since.Round(100*time.Millisecond).String(), "err", err)
			return
		}
		s.log.Warn("peer watcher cannot resolve its name; relying on age rotation", "name", w.name, "err", err)
	}
	s.bg.Go(func() { w.run(ctx) })
}
