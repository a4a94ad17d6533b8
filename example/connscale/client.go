package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/cputime"
	"github.com/rotorkit/rotor/internal/lifecycle"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

const (
	// setupConcurrency bounds the connections one client opens at once
	// while it sets up (not in a burst), so that the server's accept queue
	// never overflows into SYN retries that only slow the setup down.
	setupConcurrency = 100
	// callTimeout bounds one Hi call; a call that takes longer fails.
	callTimeout = 10 * time.Second
	// readyTimeout bounds how long a connection may take to become Ready.
	readyTimeout = time.Minute
	// maxSamples is how many error messages a client keeps, to show.
	maxSamples = 5
)

// callCounts counts a client's Hi calls since it started.
type callCounts struct {
	CPU     time.Duration    `json:"cpu"`   // the client processes' CPU time
	Dials   int64            `json:"dials"` // connections dialled (a rotation makes one)
	OK      int64            `json:"ok"`
	Failed  int64            `json:"failed"`
	Codes   map[string]int64 `json:"codes,omitempty"` // failures by gRPC code
	Samples []string         `json:"samples,omitempty"`
}

func (c *callCounts) add(o callCounts) {
	c.CPU += o.CPU
	c.Dials += o.Dials
	c.OK += o.OK
	c.Failed += o.Failed
	if len(o.Codes) > 0 && c.Codes == nil {
		c.Codes = make(map[string]int64)
	}
	for k, v := range o.Codes {
		c.Codes[k] += v
	}
	for _, s := range o.Samples {
		if len(c.Samples) < maxSamples {
			c.Samples = append(c.Samples, s)
		}
	}
}

// clientReply answers every client command.
type clientReply struct {
	childErr
	Connected int        `json:"connected,omitempty"` // connect: connections that made their first call
	Calls     callCounts `json:"calls,omitzero"`
	// Ready holds, for a burst, when each connection became Ready, after
	// the burst's start; -1 for one that did not within readyTimeout.
	Ready []time.Duration `json:"ready,omitempty"`
}

// clientChild holds one client process's connections.
type clientChild struct {
	spec  childSpec
	conns []*grpc.ClientConn // nil where not open

	dials atomic.Int64

	mu      sync.Mutex
	counts  callCounts
	stop    context.CancelFunc // stops the callers; nil when none run
	callers sync.WaitGroup
}

func startClient(spec childSpec) (func(request) any, any, error) {
	if spec.Count <= 0 || spec.Total <= 0 || spec.Sources <= 0 || spec.Sources > 250 {
		return nil, nil, fmt.Errorf("client spec %+v: want positive count and total, and 1 to 250 sources", spec)
	}
	c := &clientChild{spec: spec, conns: make([]*grpc.ClientConn, spec.Count)}
	return c.serve, childErr{}, nil
}

func (c *clientChild) serve(req request) any {
	switch req.Cmd {
	case "connect":
		n, err := c.connect(req.At, req.Ramp, req.Active)
		return clientReply{childErr: errOf(err), Connected: n}
	case "active":
		c.startCallers(req.At)
		return clientReply{}
	case "counts":
		return clientReply{Calls: c.snapshot()}
	case "stop":
		c.stopCallers()
		return clientReply{Calls: c.snapshot()}
	case "close":
		c.stopCallers()
		c.closeAll()
		return clientReply{}
	case "prepare":
		return clientReply{childErr: errOf(c.prepare())}
	case "burst":
		return clientReply{Ready: c.burst(req.At)}
	}
	return clientReply{childErr: childErr{Err: fmt.Sprintf("unknown command %q", req.Cmd)}}
}

// newConn returns an idle ClientConn for the connection of global index i,
// dialling from its loopback source address.
func (c *clientChild) newConn(i int) (*grpc.ClientConn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%c.spec.Sources))}}
	opts := append(server.DefaultConfig().DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c.dials.Add(1)
			return d.DialContext(ctx, "tcp", addr)
		}),
	)
	return grpc.NewClient("passthrough:///"+c.spec.Target, opts...)
}

// connect opens every connection and makes one call on each (waiting for
// the connection to be ready). With a ramp, connection i opens at
// at + ramp·i/total; without, as fast as setupConcurrency allows. With
// active, each connection starts calling once a second after its first
// call. It returns how many connections made their first call.
func (c *clientChild) connect(at time.Time, ramp time.Duration, active bool) (int, error) {
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, setupConcurrency)
		ok   atomic.Int64
		errs = make([]error, len(c.conns))
	)
	ctx := context.Background()
	if active {
		ctx = c.callerContext()
	}
	for k := range c.conns {
		i := c.spec.First + k
		wg.Go(func() {
			if ramp > 0 {
				time.Sleep(time.Until(at.Add(time.Duration(int64(ramp) * int64(i) / int64(c.spec.Total)))))
			} else {
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			cc, err := c.newConn(i)
			if err != nil {
				errs[k] = err
				return
			}
			c.conns[k] = cc
			cctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			if _, err := hellov1.NewHelloClient(cc).Hi(cctx, &hellov1.HiRequest{ToWho: "connscale"}, grpc.WaitForReady(true)); err != nil {
				errs[k] = fmt.Errorf("connection %d: first call: %w", i, err)
				return
			}
			ok.Add(1)
			if active {
				c.callers.Add(1)
				go c.call(ctx, cc, c.firstSlot(i, at))
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), errors.Join(firstErrs(errs, 3)...)
}

// startCallers makes every open connection call once a second, connection
// i at i/total of each second after at.
func (c *clientChild) startCallers(at time.Time) {
	ctx := c.callerContext()
	for k, cc := range c.conns {
		if cc == nil {
			continue
		}
		c.callers.Add(1)
		go c.call(ctx, cc, c.firstSlot(c.spec.First+k, at))
	}
}

// callerContext returns the context that stops the callers, making one if
// none run.
func (c *clientChild) callerContext() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	if c.stop != nil {
		prev := c.stop
		c.stop = func() { prev(); cancel() }
	} else {
		c.stop = cancel
	}
	return ctx
}

// firstSlot returns connection i's first call time: its phase, i/total of
// a second, after at, in the first second that has not begun yet.
func (c *clientChild) firstSlot(i int, at time.Time) time.Time {
	return nextSlot(at.Add(time.Duration(int64(time.Second) * int64(i) / int64(c.spec.Total))))
}

// nextSlot returns t if it has not passed, or else the first of t + 1 s,
// t + 2 s, … that has not.
func nextSlot(t time.Time) time.Time {
	if late := time.Since(t); late > 0 {
		t = t.Add(late.Truncate(time.Second) + time.Second)
	}
	return t
}

// call calls Hi on cc at next and every second after, until ctx ends; a
// slot missed (a call that took longer than a second) is skipped, not made
// up. The call's own context is not ctx: stopping the callers lets calls in
// flight finish rather than fail them.
func (c *clientChild) call(ctx context.Context, cc *grpc.ClientConn, next time.Time) {
	defer c.callers.Done()
	hc := hellov1.NewHelloClient(cc)
	lifecycle.Loop(ctx, time.Until(next), func() time.Duration {
		cctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := hc.Hi(cctx, &hellov1.HiRequest{ToWho: "connscale"})
		cancel()
		c.count(err)
		next = nextSlot(next.Add(time.Second))
		return time.Until(next)
	})
}

func (c *clientChild) count(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.counts.OK++
		return
	}
	c.counts.Failed++
	if c.counts.Codes == nil {
		c.counts.Codes = make(map[string]int64)
	}
	c.counts.Codes[status.Code(err).String()]++
	if len(c.counts.Samples) < maxSamples {
		c.counts.Samples = append(c.counts.Samples, err.Error())
	}
}

func (c *clientChild) snapshot() callCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.counts
	s.Dials = c.dials.Load()
	s.CPU = cputime.Process()
	s.Codes = maps.Clone(s.Codes)
	s.Samples = append([]string(nil), s.Samples...)
	return s
}

// stopCallers stops every caller and waits for their calls in flight.
func (c *clientChild) stopCallers() {
	c.mu.Lock()
	stop := c.stop
	c.stop = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	c.callers.Wait()
}

func (c *clientChild) closeAll() {
	for k, cc := range c.conns {
		if cc != nil {
			_ = cc.Close()
			c.conns[k] = nil
		}
	}
}

// prepare makes a new idle ClientConn for every connection (closing the
// old ones), so that a burst measures connecting, not NewClient.
func (c *clientChild) prepare() error {
	c.stopCallers()
	c.closeAll()
	for k := range c.conns {
		cc, err := c.newConn(c.spec.First + k)
		if err != nil {
			return err
		}
		c.conns[k] = cc
	}
	return nil
}

// burst waits until at, then connects every (prepared) connection at once,
// and returns when each became Ready, after at.
func (c *clientChild) burst(at time.Time) []time.Duration {
	ready := make([]time.Duration, len(c.conns))
	time.Sleep(time.Until(at))
	var wg sync.WaitGroup
	for k, cc := range c.conns {
		wg.Go(func() {
			ready[k] = -1
			if cc == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			cc.Connect()
			for {
				s := cc.GetState()
				if s == connectivity.Ready {
					ready[k] = time.Since(at)
					return
				}
				if !cc.WaitForStateChange(ctx, s) {
					return
				}
			}
		})
	}
	wg.Wait()
	return ready
}

// firstErrs returns the first n errors of errs that are not nil, and a
// count of the rest.
func firstErrs(errs []error, n int) []error {
	var out []error
	more := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case len(out) < n:
			out = append(out, err)
		default:
			more++
		}
	}
	if more > 0 {
		out = append(out, fmt.Errorf("and %d more", more))
	}
	return out
}
