// Command balance measures how gRPC calls and their load spread over the
// pods of a Kubernetes Deployment with and without rotor, in the kube-proxy
// lab (internal/kubelab): network namespaces, kube-proxy's iptables rules
// for a ClusterIP Service, a DNS server for the headless Service and nginx
// as a per-request (L7) reference.
//
// Every pod runs the example server (example/server, built at start); the
// clients are a separate process in the lab's client namespace (this
// program again), with 20 separate connections calling Hello.Hi at a
// steady rate (1,000 calls/s in all). Each run is a scenario in a mode:
//
//	seed-clusterip   2 → 5 pods at -scale-at, clients through the ClusterIP
//	seed-headless    the same through the headless Service, dns:/// + round_robin
//	rolling-restart  5 pods replaced one by one (new pod ready, old pod SIGTERM)
//	rollout-headless 1 pod replaced by a rollout, headless clients up > 30 s, kit's shutdown timings
//	rolling-restart-headless  3 pods replaced 5 s apart the same way
//	l7-reference     2 → 5 pods behind nginx grpc_pass, per-request balancing
//	skewed-clients   as seed-clusterip, the clients' call rates Zipf (s = 1): the busiest makes 27.8 %
//	skewed-clients-l7  the same behind nginx
//	call-cost        one pod: the server CPU of a light and of a heavy call (calibrates -heavy-work)
//	skewed-cost      as seed-clusterip at 40 % of -rate, 10 % of the calls heavy (20 light calls' CPU), from 4 of 20 connections
//	skewed-cost-headless  the same through the headless Service, round_robin and weighted_round_robin (+ -orca)
//	skewed-cost-l7   the same behind nginx
//	one-heavy-client 5 pods, ONE client connection making every call, over k = 1, 5, 10 TCP connections
//	overhead         plain grpc.NewServer vs rotor vs rotor + default chain, loopback
//	late-heavy-client
//	                 5 pods, 20 even connections at 40 % of -rate; at 60 s client 0's calls all turn heavy; 150 s; only when named
//	fleet            50 → 60 pods (-fleet-pods, -fleet-add), 4 client connections per pod at 2 calls/s (-fleet-rate); only when named
//
//	default          the example server's defaults (age 30 s)
//	none             no rotation (-max-connection-age off)
//	age              age rotation (-max-connection-age 10s)
//	peers            peer watcher: a grown headless Service rotates every connection
//	fair-share       peer watcher + fair-share shedding (-fair-share), for ClusterIP
//	fair-share-sheds fair share without admission (-fair-share-admission=false)
//
// A heavy call carries the gRPC metadata rotor-work (hello.WorkKey) with
// -heavy-work units of CPU work; a call-cost run earlier in the same
// invocation replaces the default with what makes a heavy call cost 20
// light ones on this host. -spread-k and -policy replace the scenarios' own
// client variants (server.SpreadConnections k; round_robin or
// weighted_round_robin).
//
// Besides how the calls spread, every run reports the load: each pod's
// share of the calls and of its server's CPU time (sampled every second
// from /proc), the lower bound of any placement of whole connections,
// max(heaviest connection, mean pod) / mean pod from the clients' measured
// per-connection loads, and the imbalance over the last 30 s and as the
// 90th percentile of every second's, measured and over the bound.
//
// -cluster real runs the same scenarios on a real Kubernetes control plane
// (internal/cluster: kube-apiserver, controllers, scheduler and kube-proxy
// v1.37.2 in -proxy-mode iptables or nftables, CoreDNS, etcd, built by
// tools/kube-build.sh) with example/k8s applied as it is and the server
// Deployment changed through the API; see real.go. It skips the l7
// scenarios and call-cost, and reports no per-pod CPU.
//
// It prints tables and writes table.txt, result.json and plot.svg to -out.
// It needs root and the lab's tools (ip, iptables, conntrack, dnsmasq, nginx);
// run it from the repository:
//
//	go run ./example/balance -out docs/balance
//	go run ./example/balance -scenario seed-clusterip -modes none,age -short
//	go run ./example/balance -scenario call-cost,skewed-cost -modes fair-share
//	go run ./example/balance -cluster real -scenario seed-clusterip -modes none,fair-share
//	go run ./example/balance -scenario fleet -fleet-pods 100 -modes fair-share,peers
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/example/internal/realcluster"
	"github.com/rotorkit/rotor/internal/cluster"
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

var allScenarios = []string{"seed-clusterip", "seed-headless", "rolling-restart", "l7-reference", "rollout-headless", "rolling-restart-headless",
	"skewed-clients", "skewed-clients-l7", "call-cost", "skewed-cost", "skewed-cost-headless", "skewed-cost-l7", "one-heavy-client", "overhead"}

// namedScenarios run only when -scenario names them: a fleet is hundreds
// of processes, sized for the host by its own flags; late-heavy-client
// runs 150 s, to reach past fair share's growth.
var namedScenarios = []string{"late-heavy-client", "fleet"}

// options are the command line.
type options struct {
	scenarios []string
	modes     []string
	p         params
	overhead  overheadConfig
	out       string
	serverBin string
	manifests string // -manifests
	from      string
	// heavyWorkSet is true when -heavy-work was given: a call-cost run
	// then does not replace it.
	heavyWorkSet bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("balance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarioFlag := fs.String("scenario", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: "+strings.Join(allScenarios, ", ")+"; and, only when named, "+strings.Join(namedScenarios, ", "))
	modesFlag := fs.String("modes", "default,none,age,peers,fair-share", "modes to run each lab scenario in: default, none, age, peers, fair-share, fair-share-sheds")
	short := fs.Bool("short", false, "short runs for tests: 15 s (headless 36 s), scale at 5 s, age 2 s, 200 calls/s")
	out := fs.String("out", "balance-out", "directory for table.txt, result.json and plot.svg; empty: print only")
	serverBin := fs.String("server-bin", "", "example server binary to run in the pods; empty: go build ./example/server")
	dur := fs.Duration("duration", 0, fmt.Sprintf("length of each run (default 70s, -short 15s; late-heavy-client runs %s)", lateHeavyLength))
	scaleAt := fs.Duration("scale-at", 0, fmt.Sprintf("when the scale event (or the rolling restart) starts (default 15s, -short 5s; late-heavy-client's client turns heavy at %s)", lateHeavyAt))
	rate := fs.Float64("rate", 0, "calls per second, all connections together (default 1000, -short 200)")
	conns := fs.Int("conns", 0, "client connections (default 20)")
	age := fs.Duration("age", 0, "max connection age of mode age (default 10s, -short 2s)")
	grace := fs.Duration("grace", 0, "max connection age grace (default 5s, -short 1s)")
	peerAge := fs.Duration("peer-age", 0, "max connection age of modes peers, fair-share and fair-share-sheds (default 5m): long, so that the watcher or fair share moves the connections; at least 1s (under 1m fair-share servers warn); over -duration / 0.9 for no age rotation in the run (the age is jittered ±10 %)")
	spread := fs.Duration("spread", 0, "rotate spread of mode peers (default 2s, -short 1s)")
	reps := fs.Int("overhead-reps", 0, "overhead: repetitions per server (default 9, -short 3)")
	odur := fs.Duration("overhead-duration", 0, "overhead: length of one measurement (default 2s, -short 300ms)")
	ocon := fs.Int("overhead-concurrency", 0, "overhead: calls in flight (default 16)")
	dnsMin := fs.Duration("dns-min-interval", 0, "clients: shortest time between two DNS resolutions (default grpc-go's 30s; a client-side experiment)")
	from := fs.String("from", "", "re-analyse a result.json and write its table and plot again, without running anything")
	logs := fs.String("logs", "", "copy the pods' logs of every run into a directory per run under this one")
	serverLogLevel := fs.String("server-log-level", "", "every pod's server -log-level: debug, info, warn or error (default: the server's, info); debug logs fair share's sheds that waited and were no longer wanted (keep them with -logs)")
	spreadK := fs.String("spread-k", "", "TCP connections per client connection (server.SpreadConnections), comma-separated, one run each, for every scenario (default: 1,5,10 for one-heavy-client, 1 for the others)")
	policy := fs.String("policy", "", "client balancing policies, comma-separated, one run each, for every scenario: round_robin, weighted_round_robin (servers then run with -orca) (default: both for skewed-cost-headless, round_robin for the others)")
	clusterFlag := fs.String("cluster", clusterEmulated, "where the pods run: emulated (internal/kubelab: the lab's own kube-proxy rules, dnsmasq, nginx) or real (a Kubernetes v1.37.2 control plane, kube-proxy, CoreDNS and etcd built by tools/kube-build.sh, with example/k8s applied)")
	proxyMode := fs.String("proxy-mode", string(cluster.ProxyIPTables), "kube-proxy's mode with -cluster real: iptables or nftables")
	manifests := fs.String("manifests", "", "example/k8s, the manifests -cluster real applies (default: example/k8s, ../k8s or k8s, whichever holds kustomization.yaml)")
	fleet := bindFleetFlags(fs)
	heavyWork := fs.Int("heavy-work", 0, fmt.Sprintf("work units (rotor-work metadata) of a heavy call in the skewed-cost scenarios, 1 to %d (default %d, or what a call-cost run before them measured)", hello.MaxWork, defaultHeavyWork))
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
	if *peerAge < 0 || (*peerAge > 0 && *peerAge < time.Second) {
		return o, fmt.Errorf("-peer-age %v: want at least 1s (the server's shortest max connection age), or 0 for the default %v", *peerAge, o.p.PeerAge)
	}
	set(&o.p.PeerAge, *peerAge)
	set(&o.p.Spread, *spread)
	set(&o.overhead.Duration, *odur)
	if err := fleet.apply(fs, &o.p); err != nil {
		return o, err
	}
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
	if *heavyWork != 0 {
		if *heavyWork < 1 || *heavyWork > hello.MaxWork {
			return o, fmt.Errorf("-heavy-work %d: want 1 to %d work units", *heavyWork, hello.MaxWork)
		}
		o.p.HeavyWork, o.heavyWorkSet = *heavyWork, true
	}
	for _, f := range splitList(*spreadK) {
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 || k > 256 {
			return o, fmt.Errorf("-spread-k %q: want numbers of TCP connections from 1 to 256, such as 1,5,10", f)
		}
		o.p.Spreads = append(o.p.Spreads, k)
	}
	for _, f := range splitList(*policy) {
		if f != policyRoundRobin && f != policyWRR {
			return o, fmt.Errorf("-policy %q: want %s or %s", f, policyRoundRobin, policyWRR)
		}
		o.p.Policies = append(o.p.Policies, f)
	}
	o.p.LogsDir = *logs
	if *serverLogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*serverLogLevel)); err != nil {
			return o, fmt.Errorf("-server-log-level %q: want debug, info, warn or error", *serverLogLevel)
		}
		o.p.ServerLogLevel = *serverLogLevel
	}
	switch *clusterFlag {
	case clusterEmulated:
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, f := range []string{"proxy-mode", "manifests"} {
			if set[f] {
				return o, fmt.Errorf("-%s goes with -cluster real", f)
			}
		}
	case clusterReal:
		o.p.Cluster = clusterReal
		switch m := cluster.ProxyMode(*proxyMode); m {
		case cluster.ProxyIPTables, cluster.ProxyNFTables:
			o.p.ProxyMode = m
		default:
			return o, fmt.Errorf("-proxy-mode %q: want iptables or nftables (this kernel has no IPVS)", *proxyMode)
		}
		o.manifests = *manifests
	default:
		return o, fmt.Errorf("-cluster %q: want emulated or real", *clusterFlag)
	}
	o.from = *from
	o.p.DNSMinInterval = *dnsMin
	if o.p.DrainTimeout < o.p.Grace {
		o.p.DrainTimeout = o.p.Grace
	}
	for _, s := range splitList(*scenarioFlag) {
		if !slices.Contains(allScenarios, s) && !slices.Contains(namedScenarios, s) {
			return o, fmt.Errorf("-scenario %q: want some of %s", s, strings.Join(append(slices.Clone(allScenarios), namedScenarios...), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, m := range splitList(*modesFlag) {
		if _, ok := findMode(m); !ok {
			return o, fmt.Errorf("-modes %q: want some of default, none, age, peers, fair-share, fair-share-sheds", m)
		}
		o.modes = append(o.modes, m)
	}
	if len(o.scenarios) == 0 {
		return o, errors.New("-scenario names no scenario")
	}
	if o.p.Cluster == clusterReal && slices.Contains(o.scenarios, "fleet") {
		return o, errors.New("-scenario fleet runs in the emulated lab only (up to 245 pods as network namespaces of this host): leave out -cluster real")
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

	res := &result{Started: time.Now().UTC(), Host: hostLine()}
	if slices.ContainsFunc(o.scenarios, func(s string) bool { return s != "overhead" }) {
		bins := binaries{server: o.serverBin}
		dir, err := os.MkdirTemp("", "rotor-balance-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if o.p.Cluster == clusterReal {
			if err := checkReal(o.p.ProxyMode); err != nil {
				return err
			}
			if bins.manifests, err = findManifests(o.manifests); err != nil {
				return err
			}
			progress("building the example client, the node agent and (unless -server-bin) the example server")
			if bins.real, err = realcluster.Build(ctx, dir, bins.server); err != nil {
				return err
			}
			bins.server = bins.real.Server
		} else if err := kubelab.Available(); err != nil {
			return err
		}
		if bins.server == "" {
			progress("building the example server")
			if bins.server, err = buildServer(ctx, dir); err != nil {
				return err
			}
		}
		if bins.load, err = selfExecutable(); err != nil {
			return err
		}
		res.Runs, res.CallCost = runAll(ctx, &o, bins, progress)
	}
	res.Params = o.p
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

// runAll runs every chosen lab scenario, in each of its variants, in every
// chosen mode, one lab at a time. A failed run is recorded and the next one
// still runs. A call-cost run sets o.p.HeavyWork for the runs after it,
// unless -heavy-work was given.
func runAll(ctx context.Context, o *options, bins binaries, progress func(string)) ([]run, *callCostResult) {
	var runs []run
	var cost *callCostResult
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		if name == "call-cost" && o.p.Cluster == clusterReal {
			progress("call-cost: skipped: it runs in the emulated lab only (-cluster emulated)")
			continue
		}
		if name == "call-cost" {
			progress("call-cost: the server CPU of a light and of a heavy call, one pod")
			c, err := runCallCost(ctx, o.p, bins, progress)
			if err != nil {
				progress(fmt.Sprintf("call-cost FAILED: %v", err))
				continue
			}
			cost = c
			if !o.heavyWorkSet && c.WorkForTarget > 0 {
				o.p.HeavyWork = c.WorkForTarget
				progress(fmt.Sprintf("call-cost: heavy calls of the runs that follow do %d work units", c.WorkForTarget))
			}
			continue
		}
		sc, ok := findScenario(name)
		if !ok {
			continue // overhead
		}
		for _, v := range sc.variants(o.p) {
			for _, mname := range o.modes {
				m, _ := findMode(mname)
				if ctx.Err() != nil {
					return runs, cost
				}
				name := label(v.name, v.spread, v.policy) + "/" + m.name
				why := o.p.unsupported(v)
				if missing := slices.DeleteFunc(serverNeeds(v, m, o.p), func(f string) bool { return serverHasFlag(bins.server, f) }); len(missing) > 0 {
					why = fmt.Sprintf("the server has no -%s flag yet", missing[0])
				}
				if why != "" {
					r := run{Scenario: v.name, Mode: m.name, Skipped: why}
					if v.spread > 1 {
						r.Spread = v.spread
					}
					if v.policy != policyRoundRobin {
						r.Policy = v.policy
					}
					runs = append(runs, r)
					continue
				}
				progress(fmt.Sprintf("%s: %s, %s", name, v.about, m.about))
				r, err := runScenario(ctx, v, m, o.p, bins, progress)
				if err != nil {
					r.Error = err.Error()
					progress(fmt.Sprintf("%s FAILED: %v", name, err))
				} else {
					progress(summaryLine(r))
				}
				if r.LogsError != "" {
					stands := ""
					if err == nil {
						stands = " (the run stands)"
					}
					progress(fmt.Sprintf("%s: some logs were not copied%s: %s", name, stands, r.LogsError))
				}
				runs = append(runs, r)
			}
		}
	}
	return runs, cost
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
	if slices.ContainsFunc(res.Runs, func(r run) bool {
		return r.Rate > 0 && r.Rate != res.Params.Rate || r.Clients > 0 && r.Clients != res.Params.Conns
	}) {
		title = "rotor in the kube-proxy lab (calls/s by run: table)"
	}
	if err := writePlot(f, res.Runs, title); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hostLine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// findManifests returns dir, or example/k8s seen from the working
// directory (the repository or example/balance), whichever holds a
// kustomization.yaml.
func findManifests(dir string) (string, error) {
	candidates := []string{dir}
	if dir == "" {
		candidates = []string{filepath.Join("example", "k8s"), filepath.Join("..", "k8s"), "k8s"}
	}
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "kustomization.yaml")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no kustomization.yaml in %s: run balance from the repository or pass -manifests example/k8s", strings.Join(candidates, ", "))
}
