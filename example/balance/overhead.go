package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/cputime"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The overhead benchmark is a scenario of this command rather than a
// testing.B: it has to run three servers back to back, interleaved
// repetition by repetition, and report medians and ratios against the first
// one, in one run on a noisy machine; go test's benchmarks run one after
// the other and leave the comparison to benchstat across separate runs.

// overheadConfig says how the overhead benchmark measures.
type overheadConfig struct {
	Reps        int           `json:"reps"`        // repetitions of each server, interleaved
	Duration    time.Duration `json:"duration"`    // of one measurement
	Conns       int           `json:"conns"`       // client connections per server
	Concurrency int           `json:"concurrency"` // calls in flight, closed loop
}

func defaultOverhead(short bool) overheadConfig {
	if short {
		return overheadConfig{Reps: 3, Duration: 300 * time.Millisecond, Conns: 4, Concurrency: 16}
	}
	// Many short slices rather than a few long ones: on a shared machine
	// the neighbours' load changes by the second, and a triplet of short
	// slices sees much the same neighbours.
	return overheadConfig{Reps: 21, Duration: 700 * time.Millisecond, Conns: 4, Concurrency: 16}
}

type overheadSample struct {
	Server      string  `json:"server"`
	Rep         int     `json:"rep"`
	CallsPerSec float64 `json:"calls_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// CPUPerCallUs is the process's CPU time (user + system, client and
	// server together) per call, in µs: unlike throughput it does not
	// drop when a neighbour takes the CPU.
	CPUPerCallUs float64 `json:"cpu_per_call_us"`
}

// overheadMedian is one server's medians, and the medians of its
// per-repetition ratios to the baseline measured just before it.
type overheadMedian struct {
	Server          string  `json:"server"`
	CallsPerSec     float64 `json:"calls_per_s"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	P50Ratio        float64 `json:"p50_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
	CPUPerCallUs    float64 `json:"cpu_per_call_us"`
	CPURatio        float64 `json:"cpu_ratio"`
}

type overheadResult struct {
	Config     overheadConfig   `json:"config"`
	GOMAXPROCS int              `json:"gomaxprocs"`
	Samples    []overheadSample `json:"samples"`
	Medians    []overheadMedian `json:"medians"`
}

// benchServer is one of the servers compared, listening on loopback.
type benchServer struct {
	name string
	addr string
	stop func()
}

func startBenchServers() ([]benchServer, error) {
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	var servers []benchServer
	listen := func(name string, serve func(net.Listener) error, stop func()) error {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = serve(lis) }()
		servers = append(servers, benchServer{name: name, addr: lis.Addr().String(), stop: stop})
		return nil
	}
	stopAll := func() {
		for _, s := range servers {
			s.stop()
		}
	}

	plain := grpc.NewServer()
	hellov1.RegisterHelloServer(plain, &hello.Service{Name: "plain"})
	if err := listen("plain grpc.NewServer", plain.Serve, plain.Stop); err != nil {
		return nil, err
	}

	rotor, err := server.New(server.WithMaxConnectionAge(30*time.Second), server.WithLogger(quiet))
	if err != nil {
		stopAll()
		return nil, err
	}
	hellov1.RegisterHelloServer(rotor, &hello.Service{Name: "rotor"})
	if err := listen("rotor, age 30s", rotor.Serve, func() { _ = rotor.Close() }); err != nil {
		stopAll()
		return nil, err
	}

	// The default chain, logging to nowhere: its cost is formatting the
	// line, not the terminal it would go to.
	chain, err := interceptors.NewChain(interceptors.WithRegisterer(prometheus.NewRegistry()), interceptors.WithLogger(quiet))
	if err != nil {
		stopAll()
		return nil, err
	}
	full, err := server.New(server.WithMaxConnectionAge(30*time.Second), server.WithLogger(quiet),
		server.WithUnaryInterceptors(chain.Unary()...), server.WithStreamInterceptors(chain.Stream()...))
	if err != nil {
		stopAll()
		return nil, err
	}
	hellov1.RegisterHelloServer(full, &hello.Service{Name: "rotor+chain"})
	chain.InitializeMetrics(full)
	if err := listen("rotor, age 30s + default chain", full.Serve, func() { _ = full.Close() }); err != nil {
		stopAll()
		return nil, err
	}

	// The same, traced with OpenTelemetry, 1 % and all of the calls
	// sampled (overhead_tracing.go).
	for _, sample := range []float64{0.01, 1} {
		traced, stop, err := tracedChainServer(quiet, sample)
		if err != nil {
			stopAll()
			return nil, err
		}
		if err := listen(fmt.Sprintf("rotor, age 30s + default chain + tracing %g %%", sample*100), traced.Serve, stop); err != nil {
			stop()
			stopAll()
			return nil, err
		}
	}

	// Fair share on: the peer watcher resolves "localhost", so the server
	// polls itself every second (and, alone, never sheds); what is measured
	// is the per-call bookkeeping and the exchange running beside the load.
	fair, err := server.New(server.WithMaxConnectionAge(5*time.Minute), server.WithLogger(quiet),
		server.WithPeerDNS("localhost", time.Second), server.WithFairShare(server.FairShare{}))
	if err != nil {
		stopAll()
		return nil, err
	}
	hellov1.RegisterHelloServer(fair, &hello.Service{Name: "rotor+fair-share"})
	if err := listen("rotor, age 5m + fair share", fair.Serve, func() { _ = fair.Close() }); err != nil {
		stopAll()
		return nil, err
	}
	return servers, nil
}

// runOverhead measures the servers as A B C A B C …, each for cfg.Duration.
func runOverhead(ctx context.Context, cfg overheadConfig, progress func(string)) (*overheadResult, error) {
	if cfg.Reps < 1 || cfg.Duration <= 0 || cfg.Conns < 1 || cfg.Concurrency < 1 {
		return nil, fmt.Errorf("overhead: reps, duration, conns and concurrency must be positive")
	}
	servers, err := startBenchServers()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	clients := make([][]hellov1.HelloClient, len(servers))
	for i, s := range servers {
		for range cfg.Conns {
			cc, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			defer cc.Close()
			clients[i] = append(clients[i], hellov1.NewHelloClient(cc))
		}
		// Warm up: connections, buffers, the scheduler.
		if _, err := measure(ctx, clients[i], cfg.Concurrency, cfg.Duration/2); err != nil {
			return nil, fmt.Errorf("overhead: %s: %w", s.name, err)
		}
	}
	res := &overheadResult{Config: cfg, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	for rep := range cfg.Reps {
		for i, s := range servers {
			runtime.GC()
			sm, err := measure(ctx, clients[i], cfg.Concurrency, cfg.Duration)
			if err != nil {
				return nil, fmt.Errorf("overhead: %s: %w", s.name, err)
			}
			sm.Server, sm.Rep = s.name, rep
			res.Samples = append(res.Samples, sm)
		}
		if progress != nil {
			progress(fmt.Sprintf("overhead: repetition %d of %d done", rep+1, cfg.Reps))
		}
	}
	res.Medians = overheadMedians(res.Samples, servers)
	return res, nil
}

// measure runs a closed loop of concurrency callers over clients for d.
func measure(ctx context.Context, clients []hellov1.HelloClient, concurrency int, d time.Duration) (overheadSample, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &hellov1.HiRequest{ToWho: "bench", Message: "hi"}
	hists := make([]hist, concurrency)
	errs := make([]error, concurrency)
	cpu0 := cputime.Process()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for g := range concurrency {
		client := clients[g%len(clients)]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				t := time.Now()
				if _, err := client.Hi(ctx, req); err != nil {
					errs[g] = err
					return
				}
				hists[g].add(time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cputime.Process() - cpu0
	var all hist
	for g := range hists {
		if errs[g] != nil {
			return overheadSample{}, errs[g]
		}
		all.merge(hists[g])
	}
	return overheadSample{
		CallsPerSec:  float64(all.n) / elapsed.Seconds(),
		P50Ms:        ms(all.quantile(0.5)),
		P99Ms:        ms(all.quantile(0.99)),
		CPUPerCallUs: float64(cpu) / 1e3 / float64(max(all.n, 1)),
	}, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// overheadMedians summarises the samples. Ratios are paired: each
// repetition of a server against the baseline's repetition measured just
// before it, so that slow drifts of the machine cancel out.
func overheadMedians(samples []overheadSample, servers []benchServer) []overheadMedian {
	bySrv := map[string][]overheadSample{}
	for _, s := range samples {
		bySrv[s.Server] = append(bySrv[s.Server], s)
	}
	base := bySrv[servers[0].name]
	var out []overheadMedian
	for _, srv := range servers {
		ss := bySrv[srv.name]
		var tput, p50, p99, cpu, rt, r50, r99, rc []float64
		for i, s := range ss {
			tput, p50, p99, cpu = append(tput, s.CallsPerSec), append(p50, s.P50Ms), append(p99, s.P99Ms), append(cpu, s.CPUPerCallUs)
			if b := base[min(i, len(base)-1)]; b.CallsPerSec > 0 && b.P50Ms > 0 && b.P99Ms > 0 && b.CPUPerCallUs > 0 {
				rt = append(rt, s.CallsPerSec/b.CallsPerSec)
				r50 = append(r50, s.P50Ms/b.P50Ms)
				r99 = append(r99, s.P99Ms/b.P99Ms)
				rc = append(rc, s.CPUPerCallUs/b.CPUPerCallUs)
			}
		}
		round := func(x float64) float64 { return float64(int(x*1000+0.5)) / 1000 }
		out = append(out, overheadMedian{
			Server:      srv.name,
			CallsPerSec: float64(int(median(tput) + 0.5)),
			P50Ms:       round(median(p50)), P99Ms: round(median(p99)),
			ThroughputRatio: round(median(rt)), P50Ratio: round(median(r50)), P99Ratio: round(median(r99)),
			CPUPerCallUs: round(median(cpu)), CPURatio: round(median(rc)),
		})
	}
	return out
}

func writeOverhead(w io.Writer, o *overheadResult) {
	c := o.Config
	tw := newTable(w, "server\tcalls/s\tp50 ms\tp99 ms\tCPU µs/call\tthroughput ratio\tp50 ratio\tp99 ratio\tCPU ratio\t",
		fmt.Sprintf("Overhead over loopback: %d interleaved repetitions of %s per server, %d calls in flight over %d connections, GOMAXPROCS %d.",
			c.Reps, c.Duration, c.Concurrency, c.Conns, o.GOMAXPROCS),
		"Medians; ratios are medians of each repetition against the plain server's run just before it. CPU µs/call: the process's",
		"CPU time (client and server) per call, which a busy neighbour inflates far less than it cuts throughput.")
	for _, m := range o.Medians {
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", m.Server, m.CallsPerSec, m.P50Ms, m.P99Ms, m.CPUPerCallUs,
			m.ThroughputRatio, m.P50Ratio, m.P99Ratio, m.CPURatio)
	}
	tw.Flush()
}
