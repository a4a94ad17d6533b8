package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/example/hello"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The load generator runs as a separate process inside the lab's client
// namespace, like a Deployment of client pods: it is this same binary,
// started with these environment variables (the test binary honours them
// too, see TestMain), and it streams one JSON line per second to stdout.
const (
	roleEnv       = "ROTOR_BALANCE_ROLE" // "load" selects the load generator
	loadConfigEnv = "ROTOR_BALANCE_LOAD" // its loadConfig as JSON
)

// loadConfig is what the load generator does.
type loadConfig struct {
	// Target is the gRPC target: "passthrough:///IP:port" for a ClusterIP
	// or nginx, "dns://SERVER/name:port" for a headless Service.
	Target string `json:"target"`
	// Conns is the number of separate grpc.ClientConns, each standing for
	// one client pod.
	Conns int `json:"conns"`
	// Rate is the calls per second of all connections together, spread
	// over them by Weights and evenly over time.
	Rate float64 `json:"rate"`
	// Weights, when set, holds one relative call rate per connection (each
	// more than 0): connection i makes Rate × Weights[i] / sum(Weights)
	// calls a second. nil: every connection makes Rate/Conns.
	Weights []float64 `json:"weights,omitempty"`
	// Heavy, when set, holds one fraction per connection, 0 to 1: the share
	// of its calls that are heavy, asking for HeavyWork work units
	// (hello.WorkKey); the others ask for none. nil: no heavy calls.
	Heavy []float64 `json:"heavy,omitempty"`
	// HeavyWork is the work units of a heavy call, 1 to hello.MaxWork.
	HeavyWork int `json:"heavy_work,omitempty"`
	// HeavyFrom, when positive, is when Heavy begins, from the load's
	// origin: the calls started before it are all light (clients whose
	// calls turn heavy then). 0: from the start. Less than Duration, and
	// only with Heavy.
	HeavyFrom time.Duration `json:"heavy_from,omitempty"`
	// Spread is the TCP connections each client connection keeps per
	// address (server.SpreadConnections); 0 or 1: one.
	Spread int `json:"spread,omitempty"`
	// Policy is the clients' balancing policy: policyRoundRobin (also
	// when empty: server.Config.DialOptions) or policyWRR (plus
	// server.WeightedRoundRobin; the servers must report ORCA load).
	Policy string `json:"policy,omitempty"`
	// Duration is how long calls are started.
	Duration time.Duration `json:"duration"`
	// CallTimeout is each call's deadline.
	CallTimeout time.Duration `json:"call_timeout"`
	// DNSMinInterval, when positive, replaces grpc-go's floor of 30 s
	// between two resolutions of a dns:/// target (a client setting, for
	// experiments: dns.SetMinResolutionInterval is process-wide).
	DNSMinInterval time.Duration `json:"dns_min_interval,omitempty"`
}

func (c loadConfig) validate() error {
	switch {
	case c.Target == "":
		return errors.New("load: no target")
	case c.Conns < 1:
		return fmt.Errorf("load: %d connections; want 1 or more", c.Conns)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("load: rate %v; want more than 0 calls per second", c.Rate)
	case c.Duration <= 0 || c.CallTimeout <= 0:
		return errors.New("load: duration and call timeout must be more than 0")
	case c.Weights != nil && len(c.Weights) != c.Conns:
		return fmt.Errorf("load: %d weights for %d connections; want one per connection", len(c.Weights), c.Conns)
	case c.Heavy != nil && len(c.Heavy) != c.Conns:
		return fmt.Errorf("load: %d heavy fractions for %d connections; want one per connection", len(c.Heavy), c.Conns)
	case c.Heavy != nil && (c.HeavyWork < 1 || c.HeavyWork > hello.MaxWork):
		return fmt.Errorf("load: heavy work %d units; want 1 to %d", c.HeavyWork, hello.MaxWork)
	case c.HeavyFrom < 0 || c.HeavyFrom >= c.Duration:
		return fmt.Errorf("load: heavy calls from %s; want 0 (from the start) to less than the duration, %s", c.HeavyFrom, c.Duration)
	case c.HeavyFrom > 0 && c.Heavy == nil:
		return fmt.Errorf("load: heavy calls from %s, but no heavy fractions; set Heavy, or HeavyFrom to 0", c.HeavyFrom)
	case c.Spread < 0 || c.Spread > 256:
		return fmt.Errorf("load: spread %d; want 0 to 256 TCP connections per client connection", c.Spread)
	case c.Policy != "" && c.Policy != policyRoundRobin && c.Policy != policyWRR:
		return fmt.Errorf("load: policy %q; want %s or %s", c.Policy, policyRoundRobin, policyWRR)
	}
	for i, w := range c.Weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("load: weight %v of connection %d; want more than 0", w, i)
		}
	}
	for i, f := range c.Heavy {
		if !(f >= 0 && f <= 1) {
			return fmt.Errorf("load: heavy fraction %v of connection %d; want 0 to 1", f, i)
		}
	}
	return nil
}

// The clients' balancing policies.
const (
	policyRoundRobin = "round_robin"
	policyWRR        = "weighted_round_robin"
)

// loadLine is one line of the load generator's output.
type loadLine struct {
	// Type is "start" (Origin set), "second" (one per second, in order),
	// "done" (last line) or "error" (Err set; the process then fails).
	Type string `json:"type"`
	// Origin is the Unix time in nanoseconds of the start of second 0.
	Origin int64 `json:"origin,omitempty"`
	// T is the second, counted from Origin, of a "second" line.
	T int `json:"t"`
	// Calls counts the calls started in this second that succeeded, by the
	// pod that answered (the response's from_who).
	Calls map[string]int `json:"calls,omitempty"`
	// Heavy counts the successful heavy calls among Calls, by pod.
	Heavy map[string]int `json:"heavy,omitempty"`
	// Conns counts the successful calls by the TCP connection that carried
	// them, keyed by client connection and local address ("3/198.18.0.2:40512").
	Conns map[string]*connSecond `json:"conns,omitempty"`
	// Failed counts the calls started in this second that failed, by gRPC
	// status code name.
	Failed map[string]int `json:"failed,omitempty"`
	// Dials counts TCP connections opened in this second; DialErrors the
	// attempts that failed.
	Dials      int `json:"dials,omitempty"`
	DialErrors int `json:"dial_errors,omitempty"`
	// Missed counts call slots skipped because a connection's previous call
	// took so long that the generator fell more than a second behind.
	Missed int `json:"missed,omitempty"`
	// CPUMs is the CPU time, in ms, each pod used in this second: the
	// orchestrator adds it from its own samples; the generator leaves it
	// empty.
	CPUMs map[string]float64 `json:"cpu_ms,omitempty"`
	// Latency is the histogram of the successful calls' latencies.
	Latency map[int]uint64 `json:"latency,omitempty"`
	// Err says why the generator failed.
	Err string `json:"err,omitempty"`
}

// collector gathers calls and dials per second. A call counts in the second
// it started (a late one in the run's last); a second is emitted once it has
// passed and its last call has finished, and the run's last second at the
// final flush, so every call is in exactly one line.
type collector struct {
	mu     sync.Mutex
	origin time.Time
	secs   map[int]*secondStats
	next   int // first second not emitted yet
	last   int // last second that has data
	final  int // the run's last second: a call scheduled before the end but started a hair after it counts there
}

// connSecond is what one TCP connection carried in one second.
type connSecond struct {
	Client int    `json:"c"`           // index of the client connection (grpc.ClientConn)
	Pod    string `json:"p"`           // the pod that answered its calls; "*" when several did (nginx)
	Calls  int    `json:"n"`           // successful calls
	Heavy  int    `json:"h,omitempty"` // of which heavy
}

// callInfo is what the collector records of a call besides its outcome.
type callInfo struct {
	client int    // client connection index
	conn   string // the TCP connection's local address; empty if unknown
	pod    string // the response's from_who
	heavy  bool
}

type secondStats struct {
	line     loadLine
	latency  hist
	inflight int
}

func newCollector(origin time.Time, duration time.Duration) *collector {
	final := max(int(math.Ceil(duration.Seconds()))-1, 0)
	return &collector{origin: origin, secs: make(map[int]*secondStats), final: final}
}

// at returns the open second for the current time; l.mu must be held.
func (l *collector) at(now time.Time) *secondStats {
	s := max(min(int(math.Floor(now.Sub(l.origin).Seconds())), l.final), l.next)
	st := l.secs[s]
	if st == nil {
		st = &secondStats{line: loadLine{Type: "second", T: s}}
		l.secs[s] = st
		l.last = max(l.last, s)
	}
	return st
}

func (l *collector) dialed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.at(time.Now())
	if err != nil {
		st.line.DialErrors++
	} else {
		st.line.Dials++
	}
}

func (l *collector) missed(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at(time.Now()).line.Missed += n
}

// begin records the start of a call; pass the result to end.
func (l *collector) begin() (*secondStats, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	st := l.at(now)
	st.inflight++
	return st, now
}

func (l *collector) end(st *secondStats, started time.Time, call callInfo, err error) {
	took := time.Since(started)
	l.mu.Lock()
	defer l.mu.Unlock()
	st.inflight--
	if err != nil {
		if st.line.Failed == nil {
			st.line.Failed = make(map[string]int)
		}
		st.line.Failed[status.Code(err).String()]++
		return
	}
	if st.line.Calls == nil {
		st.line.Calls = make(map[string]int)
	}
	st.line.Calls[call.pod]++
	if call.heavy {
		if st.line.Heavy == nil {
			st.line.Heavy = make(map[string]int)
		}
		st.line.Heavy[call.pod]++
	}
	if call.conn != "" {
		if st.line.Conns == nil {
			st.line.Conns = make(map[string]*connSecond)
		}
		key := fmt.Sprintf("%d/%s", call.client, call.conn)
		c := st.line.Conns[key]
		if c == nil {
			c = &connSecond{Client: call.client, Pod: call.pod}
			st.line.Conns[key] = c
		} else if c.Pod != call.pod {
			c.Pod = "*"
		}
		c.Calls++
		if call.heavy {
			c.Heavy++
		}
	}
	st.latency.add(took)
}

// ready returns the seconds that can be emitted, in order: every second up
// to now whose calls have finished but the run's last, or, with final,
// every second left.
func (l *collector) ready(now time.Time, final bool) []loadLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loadLine
	for s := l.next; ; s++ {
		if final && s > l.last {
			break
		}
		if !final && (s >= l.final || now.Before(l.origin.Add(time.Duration(s+1)*time.Second))) {
			// The run's last second waits for the final flush: a call
			// scheduled before the end may start after it, and l.at
			// counts it there only while that second is still open.
			break
		}
		st := l.secs[s]
		if st == nil {
			out = append(out, loadLine{Type: "second", T: s})
		} else {
			if st.inflight > 0 {
				break
			}
			st.line.Latency = st.latency.counts
			out = append(out, st.line)
			delete(l.secs, s)
		}
		l.next = s + 1
	}
	return out
}

// generateLoad opens cfg.Conns client connections and calls Hello.Hi on
// them at cfg.Rate for cfg.Duration, passing emit a "start" line, one line
// per second and a "done" line. The clients use the options rotor
// recommends (server.ClientOptions: keepalive and round_robin), with
// weighted_round_robin and SpreadConnections when cfg asks for them.
func generateLoad(ctx context.Context, cfg loadConfig, emit func(loadLine) error) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.DNSMinInterval > 0 {
		dns.SetMinResolutionInterval(cfg.DNSMinInterval)
	}
	var col *collector
	var colMu sync.Mutex // col is set once the origin is known; dials may come first
	var early struct{ dials, errs int }
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		colMu.Lock()
		cl := col
		if cl == nil {
			if err != nil {
				early.errs++
			} else {
				early.dials++
			}
		}
		colMu.Unlock()
		if cl != nil {
			cl.dialed(err)
		}
		return c, err
	}
	opts := append(server.Config{}.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dial))
	if cfg.Policy == policyWRR {
		opts = append(opts, server.WeightedRoundRobin())
	}
	if cfg.Spread > 1 {
		spread, err := server.SpreadConnections(cfg.Spread)
		if err != nil {
			return err
		}
		opts = append(opts, spread)
	}
	ccs := make([]*grpc.ClientConn, 0, cfg.Conns)
	defer func() {
		for _, cc := range ccs {
			cc.Close()
		}
	}()
	for range cfg.Conns {
		cc, err := grpc.NewClient(cfg.Target, opts...)
		if err != nil {
			return err
		}
		cc.Connect()
		ccs = append(ccs, cc)
	}

	origin := time.Now().Add(200 * time.Millisecond).Truncate(time.Millisecond)
	colMu.Lock()
	col = newCollector(origin, cfg.Duration)
	first := col.at(origin)
	first.line.Dials, first.line.DialErrors = early.dials, early.errs
	colMu.Unlock()
	if err := emit(loadLine{Type: "start", Origin: origin.UnixNano()}); err != nil {
		return err
	}

	rates := connRates(cfg.Rate, cfg.Conns, cfg.Weights)
	end := origin.Add(cfg.Duration)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, cc := range ccs {
		// A connection's calls come from workers, each calling in turn, so
		// that a busy connection has calls in flight at once as a real
		// client's would; the workers' calls are evenly spaced, and the
		// connections start at their own phases so that the calls of all
		// of them are too.
		workers := int(math.Ceil(rates[i] / maxWorkerRate))
		interval := time.Duration(float64(workers) / rates[i] * float64(time.Second))
		heavy := 0.0
		if cfg.Heavy != nil {
			heavy = cfg.Heavy[i]
		}
		for w := range workers {
			c := caller{
				client: hellov1.NewHelloClient(cc), index: i, col: col, timeout: cfg.CallTimeout,
				heavy: heavySequence(heavy, i, w), heavyWork: cfg.HeavyWork, heavyFrom: origin.Add(cfg.HeavyFrom),
				jitter: rand.New(rand.NewPCG(uint64(i), uint64(w))),
			}
			phase := float64(w)/float64(workers) + float64(i)/float64(len(ccs)*workers)
			start := origin.Add(time.Duration(phase * float64(interval)))
			wg.Go(func() { c.loop(ctx, start, end, interval) })
		}
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			for _, line := range col.ready(now, false) {
				if err := emit(line); err != nil {
					return err
				}
			}
			continue
		case <-done:
		}
		break
	}
	for _, line := range col.ready(time.Now(), true) {
		if err := emit(line); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return emit(loadLine{Type: "done"})
}

// maxWorkerRate is the most calls a second one worker of a client
// connection makes (one call at a time, 5 ms apart): faster connections get
// more workers, so a call that takes a few milliseconds does not hold back
// the ones after it.
const maxWorkerRate = 200

// connRates returns each connection's calls per second: rate split by
// weights, or evenly when weights is nil.
func connRates(rate float64, conns int, weights []float64) []float64 {
	out := make([]float64, conns)
	total := 0.0
	for i := range out {
		out[i] = 1
		if weights != nil {
			out[i] = weights[i]
		}
		total += out[i]
	}
	for i := range out {
		out[i] *= rate / total
	}
	return out
}

// caller is one worker of a client connection.
type caller struct {
	client    hellov1.HelloClient
	index     int // of the client connection
	col       *collector
	timeout   time.Duration
	heavy     func() bool // reports whether the next call is heavy
	heavyWork int
	heavyFrom time.Time  // calls started before it are light
	jitter    *rand.Rand // delays each call within its slot
}

// loop makes one call every interval from start until end, each at a
// random point of the first half of its slot: callers that were exactly
// periodic would line up with a per-call round robin (nginx hands call k to
// pod k mod 5: 20 connections calling in turn would each always reach the
// same pod). A call that takes longer than the interval delays the next
// ones, which then catch up; slots more than a second late are skipped.
func (c caller) loop(ctx context.Context, start, end time.Time, interval time.Duration) {
	req := &hellov1.HiRequest{ToWho: "balance", Message: "hi"}
	work := strconv.Itoa(c.heavyWork)
	timer := time.NewTimer(0)
	<-timer.C
	for n := 0; ; n++ {
		at := start.Add(time.Duration(n)*interval + time.Duration(c.jitter.Float64()*float64(interval)/2))
		if !at.Before(end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		} else if !time.Now().Before(end) {
			return // a slow call ran past the end: the run is over
		} else if -wait > time.Second {
			skip := int(-wait / interval)
			c.col.missed(skip)
			n += skip - 1
			continue
		}
		st, started := c.col.begin()
		// Heavy by when the call starts, the second the collector counts
		// it in, so that no light call counts at or after heavyFrom.
		call := callInfo{client: c.index, heavy: !started.Before(c.heavyFrom) && c.heavy()}
		callCtx, cancel := context.WithTimeout(ctx, c.timeout)
		if call.heavy {
			callCtx = metadata.AppendToOutgoingContext(callCtx, hello.WorkKey, work)
		}
		var p peer.Peer
		resp, err := c.client.Hi(callCtx, req, grpc.Peer(&p))
		cancel()
		call.pod = resp.GetFromWho()
		if p.LocalAddr != nil {
			call.conn = p.LocalAddr.String()
		}
		c.col.end(st, started, call, err)
	}
}

// loadMain is the load generator process: its config comes from the
// environment, its lines go to stdout. SIGTERM or SIGINT stop it early.
func loadMain() int {
	var cfg loadConfig
	if err := json.Unmarshal([]byte(os.Getenv(loadConfigEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "balance load: %s: %v\n", loadConfigEnv, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	err := generateLoad(ctx, cfg, func(line loadLine) error {
		if err := enc.Encode(line); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		_ = enc.Encode(loadLine{Type: "error", Err: err.Error()})
		_ = w.Flush()
		fmt.Fprintln(os.Stderr, "balance load:", err)
		return 1
	}
	return 0
}

// labLoad is the load generator running in the lab's client namespace.
type labLoad struct {
	cmd    *exec.Cmd
	origin time.Time  // the load's t = 0
	done   chan error // receives the process's end once
	lines  []loadLine // its per-second lines; read them after done
}

// startLabLoad starts the load generator in the lab's client namespace and
// waits for its start line; onSecond, when not nil, sees each per-second
// line as it comes. Cancelling ctx ends the process.
func startLabLoad(ctx context.Context, cmd *exec.Cmd, cfg loadConfig, onSecond func(loadLine)) (*labLoad, error) {
	l := &labLoad{cmd: cmd, done: make(chan error, 1)}
	origins := make(chan time.Time, 1)
	go func() {
		l.done <- loadProcess(l.cmd, cfg, func(line loadLine) {
			switch line.Type {
			case "start":
				origins <- time.Unix(0, line.Origin)
			case "second":
				l.lines = append(l.lines, line)
				if onSecond != nil {
					onSecond(line)
				}
			}
		})
	}()
	select {
	case l.origin = <-origins:
		return l, nil
	case err := <-l.done:
		return nil, fmt.Errorf("load generator did not start: %v", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pid is the load process's PID (it has started: its start line came).
func (l *labLoad) pid() int { return l.cmd.Process.Pid }

// loadProcess runs the load generator as cmd (a command that runs this
// binary, such as one from kubelab.Lab.ClientCommand) and passes every line
// it prints to onLine, from one goroutine, in order. It returns when the
// process has exited.
func loadProcess(cmd *exec.Cmd, cfg loadConfig, onLine func(loadLine)) error {
	js, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cmd.Env = append(os.Environ(), roleEnv+"=load", loadConfigEnv+"="+string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start load generator: %w", err)
	}
	var done, failed bool
	var lineErr string
	scan := bufio.NewScanner(out)
	scan.Buffer(make([]byte, 64<<10), 16<<20)
	for scan.Scan() {
		var line loadLine
		if err := json.Unmarshal(scan.Bytes(), &line); err != nil {
			continue // not ours: a library printed to stdout
		}
		switch line.Type {
		case "done":
			done = true
		case "error":
			failed, lineErr = true, line.Err
		}
		onLine(line)
	}
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	switch {
	case failed:
		return fmt.Errorf("load generator: %s", lineErr)
	case werr != nil:
		return fmt.Errorf("load generator: %w: %s", werr, bytes.TrimSpace(stderr.Bytes()))
	case !done:
		return fmt.Errorf("load generator ended without its last line: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
