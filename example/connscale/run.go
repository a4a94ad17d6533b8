package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorkit/rotor/server"
)

// config says how big a run is and how long its parts last.
type config struct {
	N         int             // client connections
	PerClient int             // most connections one client process holds
	Sources   int             // loopback source addresses the clients dial from
	Settle    time.Duration   // wait after connecting, before the idle measurement
	Warm      time.Duration   // calls run this long before the active measurement
	CPUWindow time.Duration   // server CPU is measured over this
	Spread    time.Duration   // the mass rotate's spread
	Ages      []time.Duration // MaxConnectionAge of each age-rotation run of rotor
	PlainAges []time.Duration // the same for plain grpc-go's own MaxConnectionAge
	Bursts    int             // mass reconnect rounds per server
	// Readings is how many times each memory measurement reads the
	// server, 1 s apart; the report gives their median, field by field,
	// and their range.
	Readings int
	Profiles string // directory for the servers' heap profiles; "" none
	// CPUProfiles is a directory for CPU profiles of the servers over
	// their CPU windows and first mass reconnect; "" none. Profiling costs
	// CPU itself: keep it out of a run whose figures count.
	CPUProfiles string
}

func defaultConfig() config {
	return config{
		N:         10000,
		PerClient: 9000,
		Sources:   16,
		Settle:    3 * time.Second,
		Warm:      10 * time.Second,
		CPUWindow: 60 * time.Second,
		Spread:    5 * time.Second,
		Ages:      []time.Duration{30 * time.Second, 5 * time.Minute},
		PlainAges: []time.Duration{30 * time.Second},
		Bursts:    3,
		Readings:  5,
	}
}

func (c config) validate() error {
	var errs []error
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("-n %d: want at least 1", c.N))
	}
	// A process may hold 20,000 descriptors: a client's connections, and a
	// server's as many as the clients' plus those draining.
	if c.PerClient < 1 || c.PerClient > 9000 {
		errs = append(errs, fmt.Errorf("-per-client %d: want 1 to 9000", c.PerClient))
	}
	// Old and new connections together must stay under the server's
	// descriptor limit: a mass rotate is spread.
	if c.Spread <= 0 || c.Spread > 10*time.Minute {
		errs = append(errs, fmt.Errorf("-spread %v: want more than 0, at most 10m", c.Spread))
	}
	if c.Sources < 1 || c.Sources > 250 {
		errs = append(errs, fmt.Errorf("-sources %d: want 1 to 250", c.Sources))
	}
	if c.CPUWindow < time.Second {
		errs = append(errs, fmt.Errorf("-cpu-window %v: want at least 1s", c.CPUWindow))
	}
	if c.Bursts < 1 {
		errs = append(errs, fmt.Errorf("-bursts %d: want at least 1", c.Bursts))
	}
	if c.Readings < 1 || c.Readings > 60 {
		errs = append(errs, fmt.Errorf("-readings %d: want 1 to 60", c.Readings))
	}
	for _, a := range slices.Concat(c.Ages, c.PlainAges) {
		if a < time.Second {
			errs = append(errs, fmt.Errorf("-ages: %v: want at least 1s (MaxConnectionAge's floor)", a))
		}
	}
	return errors.Join(errs...)
}

// A report is what one run measured.
type report struct {
	cfg     config
	clients int
	servers []*serverResult // plain, then rotor
	ages    []ageResult
	took    time.Duration
}

// serverResult is what one memory server (age Off) measured.
type serverResult struct {
	mode               string
	base, idle, active memSample // idle and active: the median of their readings
	// idleReadings and activeReadings are every reading of the idle and
	// the 1 call/s measurement.
	idleReadings, activeReadings []memSample
	idleCPU                      cpuWindow    // idle, over a third of the CPU window
	cpu                          cpuWindow    // at 1 call/s each
	calls                        callCounts   // of the active phase, mass rotate included
	bursts                       []burstStats // mass reconnect rounds
	rotate                       *rotateStats // rotor only
}

// cpuWindow is the server's CPU over a window.
type cpuWindow struct {
	window     time.Duration
	core       float64 // CPU time / wall time: 1 is one core
	se         float64 // standard error of core, from the window's six parts
	rotations  int64   // connections the clients dialled in the window
	calls      int64   // calls the clients made in the window
	clientCore float64 // the client processes' CPU time / wall time
	// otherCore is the rest of the host's busy time / wall time (the
	// parent, and whatever else runs on the host): how disturbed the
	// window was. NaN where /proc/stat cannot be read.
	otherCore float64
}

func (w cpuWindow) callRate() float64 { return float64(w.calls) / w.window.Seconds() }

type burstStats struct {
	ready               int           // connections Ready within readyTimeout
	p50, p90, p99, last time.Duration // when they were, after the burst's start
}

// rate is the connections established per second, to the last.
func (b burstStats) rate() float64 {
	if b.last <= 0 {
		return 0
	}
	return float64(b.ready) / b.last.Seconds()
}

// rate90 is the connections established per second, to the first 90 %
// of them: the server's pace while connections queue, without the tail of
// connections whose SYN the full accept queue dropped, which the client's
// kernel sends again after 1 s, then 3 s (a kernel timer, not a server
// property).
func (b burstStats) rate90() float64 {
	if b.p90 <= 0 {
		return 0
	}
	return math.Ceil(0.9*float64(b.ready)) / b.p90.Seconds()
}

type rotateStats struct {
	rotated     int
	sent        time.Duration // until POST /rotate answered: every GOAWAY sent
	reconnected time.Duration // until every rotated connection was replaced and none was left draining
	clients     int           // client connections then
	calls       callCounts    // from the POST to 2 s after all were back
}

// ageResult is what one age-rotation run measured.
type ageResult struct {
	mode  string
	age   time.Duration
	cpu   cpuWindow
	calls callCounts
}

// logger writes the run's progress.
type logger struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "connscale %7.1fs: %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

// run measures everything cfg asks for; progress and the children's
// errors go to logw.
func run(ctx context.Context, cfg config, logw io.Writer) (*report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lg := &logger{w: logw, start: time.Now()}
	rep := &report{cfg: cfg, clients: len(split(cfg.N, cfg.PerClient))}
	for _, mode := range []string{"plain", "rotor"} {
		res, err := measureServer(ctx, cfg, lg, mode)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		rep.servers = append(rep.servers, res)
	}
	for _, mode := range []string{"plain", "rotor"} {
		ages := cfg.Ages
		if mode == "plain" {
			ages = cfg.PlainAges
		}
		for _, age := range ages {
			res, err := measureAge(ctx, cfg, lg, mode, age)
			if err != nil {
				return nil, fmt.Errorf("%s, age %v: %w", mode, age, err)
			}
			rep.ages = append(rep.ages, res)
		}
	}
	rep.took = time.Since(lg.start)
	return rep, nil
}

// measureServer measures one server with MaxConnectionAge Off: items 1, 2
// and 3, and, for rotor, 5.
func measureServer(ctx context.Context, cfg config, lg *logger, mode string) (*serverResult, error) {
	f, err := startFleet(ctx, cfg, lg, mode, server.Off)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	res := &serverResult{mode: mode}
	if res.base, err = f.mem(ctx); err != nil {
		return nil, err
	}
	lg.printf("%s: baseline RSS %s, %d goroutines; connecting %d", mode, kib(float64(res.base.RSS)), res.base.Goroutines, cfg.N)
	if err := f.connect(ctx, request{Cmd: "connect"}); err != nil {
		return nil, err
	}
	if res.idle, res.idleReadings, err = f.memAfter(ctx, cfg.Settle, mode+": idle"); err != nil {
		return nil, err
	}
	if err := f.heapProfile(ctx, lg, mode+"-idle"); err != nil {
		return nil, err
	}

	if res.idleCPU, err = f.cpuWindow(ctx, cfg.CPUWindow/3); err != nil {
		return nil, err
	}
	lg.printf("%s: idle: server CPU %.2f %% of a core", mode, 100*res.idleCPU.core)

	at := time.Now().Add(200 * time.Millisecond)
	if err := f.each(ctx, func(c *child) error { return c.call(ctx, request{Cmd: "active", At: at}, nil) }); err != nil {
		return nil, err
	}
	if res.active, res.activeReadings, err = f.memAfter(ctx, cfg.Warm, mode+": 1 call/s"); err != nil {
		return nil, err
	}
	if err := f.heapProfile(ctx, lg, mode+"-active"); err != nil {
		return nil, err
	}
	// Pages debug.FreeOSMemory gave back fault in again for a moment.
	if err := sleep(ctx, min(5*time.Second, cfg.Warm)); err != nil {
		return nil, err
	}
	if res.cpu, err = profiled(ctx, f, mode+"-active", func() (cpuWindow, error) { return f.cpuWindow(ctx, cfg.CPUWindow) }); err != nil {
		return nil, err
	}
	lg.printf("%s: 1 call/s: server CPU %.1f %% of a core, %.0f calls/s", mode, 100*res.cpu.core, res.cpu.callRate())
	if mode == "rotor" {
		if res.rotate, err = f.massRotate(ctx); err != nil {
			return nil, err
		}
		r := res.rotate
		lg.printf("rotor: mass rotate: %d rotated, sent in %v, all back in %v, %d of %d calls failed",
			r.rotated, r.sent.Round(time.Millisecond), r.reconnected.Round(time.Millisecond), r.calls.Failed, r.calls.OK+r.calls.Failed)
	}
	if res.calls, err = f.calls(ctx, "stop"); err != nil {
		return nil, err
	}
	for i := range cfg.Bursts {
		burst := f.burst
		if i == 0 {
			burst = func(ctx context.Context) (burstStats, error) {
				return profiled(ctx, f, mode+"-burst", func() (burstStats, error) { return f.burst(ctx) })
			}
		}
		b, err := burst(ctx)
		if err != nil {
			return nil, err
		}
		lg.printf("%s: mass reconnect: %d ready, 90 %% after %v, last after %v: %.0f conns/s to 90 %%, %.0f to all", mode, b.ready, b.p90.Round(time.Millisecond), b.last.Round(time.Millisecond), b.rate90(), b.rate())
		res.bursts = append(res.bursts, b)
	}
	return res, nil
}

// measureAge measures a server's CPU with MaxConnectionAge age and every
// connection calling once a second (item 4): rotor's rotation, or, for
// reference, plain grpc-go's own. The connections open evenly over one age,
// so that from 1.1 age on (the jitter is ±10 %, in both) as many rotate
// each second as in a steady state.
func measureAge(ctx context.Context, cfg config, lg *logger, mode string, age time.Duration) (ageResult, error) {
	res := ageResult{mode: mode, age: age}
	f, err := startFleet(ctx, cfg, lg, mode, age)
	if err != nil {
		return res, err
	}
	defer f.stop()
	t0 := time.Now().Add(time.Second)
	lg.printf("%s, age %v: opening %d connections over %v", mode, age, cfg.N, age)
	if err := f.connect(ctx, request{Cmd: "connect", At: t0, Ramp: age, Active: true}); err != nil {
		return res, err
	}
	if err := sleep(ctx, time.Until(t0.Add(age+age/10+time.Second))); err != nil {
		return res, err
	}
	name := fmt.Sprintf("%s-age-%v", mode, age)
	if res.cpu, err = profiled(ctx, f, name, func() (cpuWindow, error) { return f.cpuWindow(ctx, cfg.CPUWindow) }); err != nil {
		return res, err
	}
	if res.calls, err = f.calls(ctx, "stop"); err != nil {
		return res, err
	}
	lg.printf("%s, age %v: server CPU %.1f %% of a core, %.0f calls/s, %d rotations in %v, %d of %d calls failed",
		mode, age, 100*res.cpu.core, res.cpu.callRate(), res.cpu.rotations, res.cpu.window.Round(time.Second), res.calls.Failed, res.calls.OK+res.calls.Failed)
	return res, nil
}

// heapProfile writes the server's heap profile to name.pprof in
// f.cfg.Profiles, if that is set.
func (f *fleet) heapProfile(ctx context.Context, lg *logger, name string) error {
	if f.cfg.Profiles == "" {
		return nil
	}
	path, err := filepath.Abs(filepath.Join(f.cfg.Profiles, name+".pprof"))
	if err != nil {
		return err
	}
	if err := f.srv.call(ctx, request{Cmd: "heap", Path: path}, nil); err != nil {
		return err
	}
	lg.printf("%s: heap profile in %s", name, path)
	return nil
}

// profiled runs fn under a CPU profile of the server, name.cpu.pprof in
// f.cfg.CPUProfiles, if that is set.
func profiled[T any](ctx context.Context, f *fleet, name string, fn func() (T, error)) (T, error) {
	if f.cfg.CPUProfiles == "" {
		return fn()
	}
	var zero T
	path, err := filepath.Abs(filepath.Join(f.cfg.CPUProfiles, name+".cpu.pprof"))
	if err != nil {
		return zero, err
	}
	if err := f.srv.call(ctx, request{Cmd: "cpuprofile", Path: path}, nil); err != nil {
		return zero, err
	}
	v, err := fn()
	if perr := f.srv.call(ctx, request{Cmd: "cpuprofile"}, nil); err == nil && perr != nil {
		return zero, perr
	}
	f.lg.printf("CPU profile in %s", path)
	return v, err
}

// A fleet is one server child and its client children.
type fleet struct {
	cfg     config
	lg      *logger
	srv     *child
	clients []*child
	admin   string // rotor's admin address
}

func startFleet(ctx context.Context, cfg config, lg *logger, mode string, age time.Duration) (f *fleet, err error) {
	f = &fleet{cfg: cfg, lg: lg}
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	f.srv, err = startChild(mode+" server", childSpec{Role: "server", Mode: mode, Age: age}, lg.w)
	if err != nil {
		return f, err
	}
	var hello serverReply
	if err := f.srv.read(ctx, &hello); err != nil {
		return f, fmt.Errorf("%s: %w", f.srv.name, err)
	}
	f.admin = hello.Admin
	first := 0
	for i, n := range split(cfg.N, cfg.PerClient) {
		spec := childSpec{Role: "client", Target: hello.Addr, First: first, Count: n, Total: cfg.N, Sources: cfg.Sources}
		c, err := startChild(fmt.Sprintf("client %d", i), spec, lg.w)
		if err != nil {
			return f, err
		}
		f.clients = append(f.clients, c)
		if err := c.read(ctx, nil); err != nil {
			return f, fmt.Errorf("%s: %w", c.name, err)
		}
		first += n
	}
	return f, nil
}

// stop stops every child of f, killing those that do not quit.
func (f *fleet) stop() {
	var wg sync.WaitGroup
	for _, c := range f.clients {
		wg.Go(c.stop)
	}
	wg.Wait()
	if f.srv != nil {
		f.srv.stop()
	}
}

// each runs fn for every client at once.
func (f *fleet) each(ctx context.Context, fn func(*child) error) error {
	errs := make([]error, len(f.clients))
	var wg sync.WaitGroup
	for i, c := range f.clients {
		wg.Go(func() { errs[i] = fn(c) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *fleet) mem(ctx context.Context) (memSample, error) {
	var r serverReply
	err := f.srv.call(ctx, request{Cmd: "mem"}, &r)
	return r.Mem, err
}

// memAfter waits d, then reads the server's memory f.cfg.Readings times,
// 1 s apart, logs each reading under label, and returns their median,
// field by field (medianSample), and the readings.
func (f *fleet) memAfter(ctx context.Context, d time.Duration, label string) (memSample, []memSample, error) {
	if err := sleep(ctx, d); err != nil {
		return memSample{}, nil, err
	}
	var readings []memSample
	for i := range f.cfg.Readings {
		if i > 0 {
			if err := sleep(ctx, time.Second); err != nil {
				return memSample{}, nil, err
			}
		}
		m, err := f.mem(ctx)
		if err != nil {
			return m, nil, err
		}
		f.lg.printf("%s: reading %d: %d connections, RSS %s, heap in use %s, %d goroutines", label, i+1, m.Conns, kib(float64(m.RSS)), kib(float64(m.HeapInuse)), m.Goroutines)
		readings = append(readings, m)
	}
	return medianSample(readings), readings, nil
}

// medianSample returns the median of each field of readings (the upper of
// the two middle ones for an even count), so that one reading taken while
// buffers were held does not decide a figure; but for Conns, the fewest
// connections any reading counted, so that one that lost some shows.
func medianSample(readings []memSample) memSample {
	mid := func(v []int64) int64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	field := func(get func(memSample) int64) int64 {
		v := make([]int64, len(readings))
		for i, m := range readings {
			v[i] = get(m)
		}
		return mid(v)
	}
	return memSample{
		RSS:        field(func(m memSample) int64 { return m.RSS }),
		HeapInuse:  uint64(field(func(m memSample) int64 { return int64(m.HeapInuse) })),
		StackInuse: uint64(field(func(m memSample) int64 { return int64(m.StackInuse) })),
		Goroutines: int(field(func(m memSample) int64 { return int64(m.Goroutines) })),
		Conns: slices.MinFunc(readings, func(a, b memSample) int {
			return cmp.Compare(a.Conns, b.Conns)
		}).Conns,
	}
}

func (f *fleet) stats(ctx context.Context) (serverReply, error) {
	var r serverReply
	err := f.srv.call(ctx, request{Cmd: "stats"}, &r)
	return r, err
}

// connect sends req (a "connect") to every client, and fails unless every
// connection made its first call.
func (f *fleet) connect(ctx context.Context, req request) error {
	var (
		mu        sync.Mutex
		connected int
	)
	err := f.each(ctx, func(c *child) error {
		var r clientReply
		err := c.call(ctx, req, &r)
		mu.Lock()
		connected += r.Connected
		mu.Unlock()
		return err
	})
	if err == nil && connected != f.cfg.N {
		err = fmt.Errorf("%d of %d connections made their first call", connected, f.cfg.N)
	}
	return err
}

// calls sends cmd ("counts" or "stop") to every client and adds up their
// call counts.
func (f *fleet) calls(ctx context.Context, cmd string) (callCounts, error) {
	var (
		mu  sync.Mutex
		sum callCounts
	)
	err := f.each(ctx, func(c *child) error {
		var r clientReply
		if err := c.call(ctx, request{Cmd: cmd}, &r); err != nil {
			return err
		}
		mu.Lock()
		sum.add(r.Calls)
		mu.Unlock()
		return nil
	})
	return sum, err
}

// cpuWindow measures the server's CPU over d, in six parts for the
// standard error.
func (f *fleet) cpuWindow(ctx context.Context, d time.Duration) (cpuWindow, error) {
	const parts = 6
	c0, err := f.calls(ctx, "counts")
	if err != nil {
		return cpuWindow{}, err
	}
	s0, err := f.stats(ctx)
	if err != nil {
		return cpuWindow{}, err
	}
	busy0, busyErr := hostBusy()
	start := time.Now()
	prev, prevAt := s0, start
	var cores []float64
	for i := 1; i <= parts; i++ {
		if err := sleep(ctx, time.Until(start.Add(d*time.Duration(i)/parts))); err != nil {
			return cpuWindow{}, err
		}
		s, err := f.stats(ctx)
		if err != nil {
			return cpuWindow{}, err
		}
		now := time.Now()
		cores = append(cores, float64(s.CPU-prev.CPU)/float64(now.Sub(prevAt)))
		prev, prevAt = s, now
	}
	busy1, busyErr1 := hostBusy()
	c1, err := f.calls(ctx, "counts")
	if err != nil {
		return cpuWindow{}, err
	}
	w := cpuWindow{
		window:     prevAt.Sub(start),
		core:       float64(prev.CPU-s0.CPU) / float64(prevAt.Sub(start)),
		rotations:  c1.Dials - c0.Dials,
		calls:      c1.OK + c1.Failed - c0.OK - c0.Failed,
		clientCore: float64(c1.CPU-c0.CPU) / float64(prevAt.Sub(start)),
		otherCore:  math.NaN(),
	}
	if busyErr == nil && busyErr1 == nil {
		w.otherCore = float64(busy1-busy0)/float64(prevAt.Sub(start)) - w.core - w.clientCore
	}
	var mean, ss float64
	for _, c := range cores {
		mean += c / parts
	}
	for _, c := range cores {
		ss += (c - mean) * (c - mean)
	}
	w.se = math.Sqrt(ss/(parts-1)) / math.Sqrt(parts)
	return w, nil
}

// hostBusy returns the time the host's CPUs have been busy (not idle,
// not waiting for I/O), from /proc/stat, in 10 ms steps.
func hostBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat begins %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is counted in user already.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

// massRotate asks rotor's admin handler to rotate every connection over
// cfg.Spread while the clients call, and waits until every rotated
// connection is replaced and none is left draining (item 5).
func (f *fleet) massRotate(ctx context.Context) (*rotateStats, error) {
	before, err := f.calls(ctx, "counts")
	if err != nil {
		return nil, err
	}
	st0, err := f.stats(ctx)
	if err != nil {
		return nil, err
	}
	type posted struct {
		rotated int
		took    time.Duration
		err     error
	}
	done := make(chan posted, 1)
	start := time.Now()
	go func() {
		n, err := postRotate(ctx, f.admin, f.cfg.Spread)
		done <- posted{n, time.Since(start), err}
	}()
	res := &rotateStats{}
	var p *posted
	deadline := start.Add(f.cfg.Spread + 2*time.Minute)
	for {
		if p == nil {
			select {
			case r := <-done:
				if r.err != nil {
					return nil, fmt.Errorf("POST /rotate: %w", r.err)
				}
				p = &r
				res.rotated, res.sent = r.rotated, r.took
			default:
			}
		}
		st, err := f.stats(ctx)
		if err != nil {
			return nil, err
		}
		back := st.Opened - st0.Opened
		if p != nil && back >= int64(p.rotated) && st.Stats.Draining == 0 {
			res.reconnected, res.clients = time.Since(start), st.Stats.Clients
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mass rotate: after %v, %d connections opened since, %d still draining", time.Since(start).Round(time.Second), back, st.Stats.Draining)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// Calls made just after the last reconnect count too.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	after, err := f.calls(ctx, "counts")
	if err != nil {
		return nil, err
	}
	res.calls = after.minus(before)
	return res, nil
}

// postRotate POSTs /rotate with the given spread and returns how many
// connections were rotated.
func postRotate(ctx context.Context, admin string, spread time.Duration) (int, error) {
	u := "http://" + admin + "/rotate?" + url.Values{"spread": {spread.String()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return 0, err
	}
	// Not kept alive: the server counts every open socket as a connection
	// of its clients.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Rotated int    `json:"rotated"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	return body.Rotated, nil
}

// burst closes every connection and, once the server holds none, connects
// them all at one instant (item 3).
func (f *fleet) burst(ctx context.Context) (burstStats, error) {
	if err := f.each(ctx, func(c *child) error { return c.call(ctx, request{Cmd: "close"}, nil) }); err != nil {
		return burstStats{}, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var st serverReply
		if err := f.srv.call(ctx, request{Cmd: "conns"}, &st); err != nil {
			return burstStats{}, err
		}
		if st.Conns <= 0 {
			break
		}
		if time.Now().After(deadline) {
			return burstStats{}, fmt.Errorf("the server still holds %d connections a minute after the clients closed theirs", st.Conns)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return burstStats{}, err
		}
	}
	if err := f.each(ctx, func(c *child) error { return c.call(ctx, request{Cmd: "prepare"}, nil) }); err != nil {
		return burstStats{}, err
	}
	at := time.Now().Add(500 * time.Millisecond)
	var (
		mu    sync.Mutex
		ready []time.Duration
	)
	err := f.each(ctx, func(c *child) error {
		var r clientReply
		if err := c.call(ctx, request{Cmd: "burst", At: at}, &r); err != nil {
			return err
		}
		mu.Lock()
		ready = append(ready, r.Ready...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return burstStats{}, err
	}
	return burstOf(ready), nil
}

// burstOf sums up a burst's Ready times (-1: never).
func burstOf(ready []time.Duration) burstStats {
	ok := slices.DeleteFunc(slices.Clone(ready), func(d time.Duration) bool { return d < 0 })
	if len(ok) == 0 {
		return burstStats{}
	}
	slices.Sort(ok)
	at := func(q float64) time.Duration { return ok[int(math.Ceil(q*float64(len(ok))))-1] }
	return burstStats{ready: len(ok), p50: at(0.5), p90: at(0.9), p99: at(0.99), last: ok[len(ok)-1]}
}

// minus returns the calls of c that were not yet in before.
func (c callCounts) minus(before callCounts) callCounts {
	d := callCounts{CPU: c.CPU - before.CPU, Dials: c.Dials - before.Dials, OK: c.OK - before.OK, Failed: c.Failed - before.Failed}
	for k, v := range c.Codes {
		if n := v - before.Codes[k]; n > 0 {
			if d.Codes == nil {
				d.Codes = make(map[string]int64)
			}
			d.Codes[k] = n
		}
	}
	if len(c.Samples) > len(before.Samples) {
		d.Samples = c.Samples[len(before.Samples):]
	}
	return d
}

// split divides n connections into the fewest clients of at most per
// connections each, as evenly as it can.
func split(n, per int) []int {
	k := (n + per - 1) / per
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
