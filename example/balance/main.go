// Command balance measures how gRPC calls spread over the pods of a
// Kubernetes Deployment with and without rotor, in the kube-proxy lab
// (internal/kubelab): network namespaces, kube-proxy's iptables rules for a
// ClusterIP Service, a DNS server for the headless Service and nginx as a
// per-request (L7) reference.
//
// Every pod runs the example server (example/server, built at start); the
// clients are a separate process in the lab's client namespace (this
// program again), with 20 separate connections calling Hello.Hi at a
// steady rate. Each run is a scenario in a mode:
//
//	seed-clusterip   2 → 5 pods at -scale-at, clients through the ClusterIP
//	seed-headless    the same through the headless Service, dns:/// + round_robin
//	rolling-restart  5 pods replaced one by one (new pod ready, old pod SIGTERM)
//	rollout-headless 1 pod replaced by a rollout, headless clients up > 30 s, kit's shutdown timings
//	rolling-restart-headless  3 pods replaced 5 s apart the same way
//	l7-reference     2 → 5 pods behind nginx grpc_pass, per-request balancing
//	overhead         plain grpc.NewServer vs rotor vs rotor + default chain, loopback
//
//	default          the example server's defaults (age 30 s)
//	none             no rotation (-max-connection-age off)
//	age              age rotation (-max-connection-age 10s)
//	peers            peer watcher: a grown headless Service rotates every connection
//	fair-share       peer watcher + fair-share shedding (-fair-share), for ClusterIP
//
// It prints a table and writes table.txt, result.json and plot.svg to -out.
// It needs root and the lab's tools (ip, iptables, conntrack, dnsmasq, nginx);
// run it from the repository:
//
//	go run ./example/balance -out docs/balance
//	go run ./example/balance -scenario seed-clusterip -modes none,age -short
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
)

func main() {
	if os.Getenv(roleEnv) == "load" {
		os.Exit(loadMain())
	}
	if err := balance(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "balance:", err)
		os.Exit(1)
	}
}

var allScenarios = []string{"seed-clusterip", "seed-headless", "rolling-restart", "l7-reference", "rollout-headless", "rolling-restart-headless", "overhead"}

// options are the command line.
type options struct {
	scenarios []string
	modes     []string
	p         params
	overhead  overheadConfig
	out       string
	serverBin string
	from      string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("balance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarioFlag := fs.String("scenario", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: "+strings.Join(allScenarios, ", "))
	modesFlag := fs.String("modes", "default,none,age,peers,fair-share", "modes to run each lab scenario in: default, none, age, peers, fair-share")
	short := fs.Bool("short", false, "short runs for tests: 15 s (headless 36 s), scale at 5 s, age 2 s, 200 calls/s")
	out := fs.String("out", "balance-out", "directory for table.txt, result.json and plot.svg; empty: print only")
	serverBin := fs.String("server-bin", "", "example server binary to run in the pods; empty: go build ./example/server")
	dur := fs.Duration("duration", 0, "length of each run (default 70s, -short 15s)")
	scaleAt := fs.Duration("scale-at", 0, "when the scale event (or the rolling restart) starts (default 15s, -short 5s)")
	rate := fs.Float64("rate", 0, "calls per second, all connections together (default 1000, -short 200)")
	conns := fs.Int("conns", 0, "client connections (default 20)")
	age := fs.Duration("age", 0, "max connection age of mode age (default 10s, -short 2s)")
	grace := fs.Duration("grace", 0, "max connection age grace (default 5s, -short 1s)")
	spread := fs.Duration("spread", 0, "rotate spread of mode peers (default 2s, -short 1s)")
	reps := fs.Int("overhead-reps", 0, "overhead: repetitions per server (default 9, -short 3)")
	odur := fs.Duration("overhead-duration", 0, "overhead: length of one measurement (default 2s, -short 300ms)")
	ocon := fs.Int("overhead-concurrency", 0, "overhead: calls in flight (default 16)")
	dnsMin := fs.Duration("dns-min-interval", 0, "clients: shortest time between two DNS resolutions (default grpc-go's 30s; a client-side experiment)")
	from := fs.String("from", "", "re-analyse a result.json and write its table and plot again, without running anything")
	logs := fs.String("logs", "", "copy the pods' logs of every run into this directory")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := options{p: defaultParams(*short), overhead: defaultOverhead(*short), out: *out, serverBin: *serverBin}
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&o.p.Duration, *dur)
	set(&o.p.ScaleAt, *scaleAt)
	set(&o.p.Age, *age)
	set(&o.p.Grace, *grace)
	set(&o.p.Spread, *spread)
	set(&o.overhead.Duration, *odur)
	if *rate > 0 {
		o.p.Rate = *rate
	}
	if *conns > 0 {
		o.p.Conns = *conns
	}
	if *reps > 0 {
		o.overhead.Reps = *reps
	}
	if *ocon > 0 {
		o.overhead.Concurrency = *ocon
	}
	o.p.LogsDir = *logs
	o.from = *from
	o.p.DNSMinInterval = *dnsMin
	if o.p.DrainTimeout < o.p.Grace {
		o.p.DrainTimeout = o.p.Grace
	}
	for _, s := range splitList(*scenarioFlag) {
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenario %q: want some of %s", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, m := range splitList(*modesFlag) {
		if _, ok := findMode(m); !ok {
			return o, fmt.Errorf("-modes %q: want some of default, none, age, peers, fair-share", m)
		}
		o.modes = append(o.modes, m)
	}
	if len(o.scenarios) == 0 {
		return o, errors.New("-scenario names no scenario")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func balance(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.from != "" {
		return reanalyse(o, stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := func(s string) { fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05"), s) }

	res := &result{Started: time.Now().UTC(), Params: o.p, Host: hostLine()}
	if slices.ContainsFunc(o.scenarios, func(s string) bool { return s != "overhead" }) {
		if err := kubelab.Available(); err != nil {
			return err
		}
		bins := binaries{server: o.serverBin}
		if bins.server == "" {
			dir, err := os.MkdirTemp("", "rotor-balance-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			progress("building the example server")
			if bins.server, err = buildServer(ctx, dir); err != nil {
				return err
			}
		}
		if bins.load, err = selfExecutable(); err != nil {
			return err
		}
		res.Runs = runAll(ctx, o, bins, progress)
	}
	if slices.Contains(o.scenarios, "overhead") && ctx.Err() == nil {
		progress("overhead benchmark")
		oh, err := runOverhead(ctx, o.overhead, progress)
		if err != nil {
			return err
		}
		res.Overhead = oh
	}
	writeTable(stdout, res)
	if o.out != "" {
		if err := writeOutputs(o.out, res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nWrote %s, %s and %s.\n", filepath.Join(o.out, "table.txt"), filepath.Join(o.out, "result.json"), filepath.Join(o.out, "plot.svg"))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, r := range res.Runs {
		if r.Error != "" {
			return fmt.Errorf("%s/%s failed", r.Scenario, r.Mode)
		}
	}
	return nil
}

// reanalyse reads a result.json, recomputes every run's summary and writes
// the table and plot again.
func reanalyse(o options, stdout io.Writer) error {
	b, err := os.ReadFile(o.from)
	if err != nil {
		return err
	}
	var res result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", o.from, err)
	}
	for i := range res.Runs {
		res.Runs[i].refill()
	}
	writeTable(stdout, &res)
	if o.out != "" {
		return writeOutputs(o.out, &res)
	}
	return nil
}

// runAll runs every chosen lab scenario in every chosen mode, one lab at a
// time. A failed run is recorded and the next one still runs.
func runAll(ctx context.Context, o options, bins binaries, progress func(string)) []run {
	var runs []run
	for _, name := range o.scenarios {
		sc, ok := findScenario(name)
		if !ok {
			continue // overhead
		}
		for _, mname := range o.modes {
			m, _ := findMode(mname)
			if ctx.Err() != nil {
				return runs
			}
			if m.needsFlag != "" && !serverHasFlag(bins.server, m.needsFlag) {
				runs = append(runs, run{Scenario: sc.name, Mode: m.name, Skipped: fmt.Sprintf("the server has no -%s flag yet", m.needsFlag)})
				continue
			}
			progress(fmt.Sprintf("%s/%s: %s, %s", sc.name, m.name, sc.about, m.about))
			r, err := runScenario(ctx, sc, m, o.p, bins, progress)
			if err != nil {
				r.Error = err.Error()
				progress(fmt.Sprintf("%s/%s FAILED: %v", sc.name, m.name, err))
			} else {
				progress(summaryLine(r))
			}
			runs = append(runs, r)
		}
	}
	return runs
}

// buildServer builds the example server into dir.
func buildServer(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the example server needs the go command in PATH (or pass -server-bin): %w", err)
	}
	bin := filepath.Join(dir, "server")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/rotorkit/rotor/example/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the example server (run balance from the rotor module, or pass -server-bin): %v\n%s", err, out)
	}
	return bin, nil
}

func writeOutputs(dir string, res *result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var table strings.Builder
	writeTable(&table, res)
	if err := os.WriteFile(filepath.Join(dir, "table.txt"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if len(res.Runs) == 0 {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, "plot.svg"))
	if err != nil {
		return err
	}
	title := fmt.Sprintf("rotor in the kube-proxy lab: %d connections, %.0f calls/s", res.Params.Conns, res.Params.Rate)
	if err := writePlot(f, res.Runs, title); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hostLine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}
