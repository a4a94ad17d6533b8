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
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/kubelab"
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
	// evenly over them and over time.
	Rate float64 `json:"rate"`
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
	}
	return nil
}

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
	// Latency is the histogram of the successful calls' latencies.
	Latency map[int]uint64 `json:"latency,omitempty"`
	// Err says why the generator failed.
	Err string `json:"err,omitempty"`
}

// collector gathers calls and dials per second. A call counts in the second
// it started; a second is emitted once it has passed and its last call has
// finished, so every call is in exactly one line.
type collector struct {
	mu     sync.Mutex
	origin time.Time
	secs   map[int]*secondStats
	next   int // first second not emitted yet
	last   int // last second that has data
	final  int // the run's last second: a call scheduled before the end but started a hair after it counts there
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

func (l *collector) end(st *secondStats, started time.Time, pod string, err error) {
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
	st.line.Calls[pod]++
	st.latency.add(took)
}

// ready returns the seconds that can be emitted, in order: every second up
// to now whose calls have finished, or, with final, every second left.
func (l *collector) ready(now time.Time, final bool) []loadLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loadLine
	for s := l.next; ; s++ {
		if final && s > l.last {
			break
		}
		if !final && now.Before(l.origin.Add(time.Duration(s+1)*time.Second)) {
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
// recommends (server.ClientOptions: keepalive and round_robin).
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

	interval := time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
	end := origin.Add(cfg.Duration)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, cc := range ccs {
		// Each connection starts at its own phase, so the calls of all of
		// them are evenly spaced.
		start := origin.Add(interval * time.Duration(i) / time.Duration(len(ccs)))
		wg.Go(func() { callLoop(ctx, hellov1.NewHelloClient(cc), col, start, end, interval, cfg.CallTimeout) })
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

// callLoop makes one call every interval on one connection from start until
// end. A call that takes longer than the interval delays the next ones,
// which then catch up; slots more than a second late are skipped.
func callLoop(ctx context.Context, client hellov1.HelloClient, col *collector, start, end time.Time, interval, timeout time.Duration) {
	req := &hellov1.HiRequest{ToWho: "balance", Message: "hi"}
	timer := time.NewTimer(0)
	<-timer.C
	for n := 0; ; n++ {
		at := start.Add(time.Duration(n) * interval)
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
			col.missed(skip)
			n += skip - 1
			continue
		}
		st, started := col.begin()
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := client.Hi(callCtx, req)
		cancel()
		col.end(st, started, resp.GetFromWho(), err)
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
func startLabLoad(ctx context.Context, lab *kubelab.Lab, bin string, cfg loadConfig, onSecond func(loadLine)) (*labLoad, error) {
	l := &labLoad{cmd: lab.ClientCommand(ctx, bin), done: make(chan error, 1)}
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
