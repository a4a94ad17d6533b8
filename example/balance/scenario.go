package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotorkit/rotor/example/internal/realcluster"
	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/server"
)

// grpcPort is the port of the lab's Services and of every pod.
const grpcPort = 50051

// headlessFloor is how long a headless run lasts at least: grpc-go's DNS
// resolver re-resolves at most once per 30 s after its first answer, so a
// shorter run cannot show a new pod to a DNS client whatever the server does.
const headlessFloor = 36 * time.Second

// params are the knobs of a run, from the command line.
type params struct {
	Short    bool          `json:"short"`
	Duration time.Duration `json:"duration"`
	ScaleAt  time.Duration `json:"scale_at"`
	Rate     float64       `json:"rate"`
	Conns    int           `json:"conns"`

	// Server settings of the modes.
	Age           time.Duration `json:"age"`            // mode age
	Grace         time.Duration `json:"grace"`          // every mode
	PeerAge       time.Duration `json:"peer_age"`       // modes peers and fair-share*: a long age, so that the watcher or fair share moves the connections
	PeerInterval  time.Duration `json:"peer_interval"`  // mode peers
	Spread        time.Duration `json:"spread"`         // mode peers
	ShutdownDelay time.Duration `json:"shutdown_delay"` // every mode
	DrainTimeout  time.Duration `json:"drain_timeout"`  // every mode
	CallTimeout   time.Duration `json:"call_timeout"`
	// DNSMinInterval replaces grpc-go's 30 s floor between re-resolutions
	// in the clients when positive (a client-side experiment).
	DNSMinInterval time.Duration `json:"dns_min_interval,omitempty"`
	// HeavyWork is the work units (hello.WorkKey) of a heavy call of the
	// skewed-cost scenarios: defaultHeavyWork, or what -heavy-work or a
	// call-cost run before them set.
	HeavyWork int `json:"heavy_work,omitempty"`
	// Spreads and Policies, when set, replace every scenario's own client
	// variants (-spread-k, -policy).
	Spreads  []int    `json:"spreads,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// The fleet scenario's sizes and timeline (fleet.go): pods at the
	// start and added by the scale event, calls per second of each client
	// connection, when the scale event comes and how long the run lasts.
	FleetPods     int           `json:"fleet_pods,omitempty"`
	FleetAdd      int           `json:"fleet_add,omitempty"`
	FleetConnRate float64       `json:"fleet_conn_rate,omitempty"`
	FleetScaleAt  time.Duration `json:"fleet_scale_at,omitempty"`
	FleetDuration time.Duration `json:"fleet_duration,omitempty"`

	// Cluster is where the pods run: clusterEmulated (internal/kubelab, also
	// when empty) or clusterReal (internal/cluster), whose kube-proxy runs
	// in ProxyMode.
	Cluster   string            `json:"cluster,omitempty"`
	ProxyMode cluster.ProxyMode `json:"proxy_mode,omitempty"`

	// LogsDir, when set, receives a copy of every pod's log (and dnsmasq's
	// and nginx's; with the real control plane, its components' and the
	// node agents', and the pods' under pods/), each at its path under the
	// lab's directory, in a directory per run (logsDirName), before the
	// lab is removed.
	LogsDir string `json:"-"`
	// ServerLogLevel, when set, is every pod's server -log-level (such as
	// debug, for fair share's sheds that waited and were no longer wanted).
	ServerLogLevel string `json:"server_log_level,omitempty"`
}

func defaultParams(short bool) params {
	if short {
		return params{
			Short: true, Duration: 15 * time.Second, ScaleAt: 5 * time.Second, Rate: 200, Conns: 20,
			Age: 2 * time.Second, Grace: time.Second, PeerAge: 5 * time.Minute, PeerInterval: time.Second,
			Spread: time.Second, ShutdownDelay: time.Second, DrainTimeout: 5 * time.Second,
			// Tests assert that no call fails; on a CI machine busy with other
			// work a call can stall for seconds without anything being wrong.
			CallTimeout: 30 * time.Second, HeavyWork: defaultHeavyWork,
			FleetPods: 8, FleetAdd: 4, FleetConnRate: fleetConnRate, FleetScaleAt: fleetShortScaleAt, FleetDuration: fleetShortScaleAt + 14*time.Second,
		}
	}
	return params{
		Duration: 70 * time.Second, ScaleAt: 15 * time.Second, Rate: 1000, Conns: 20,
		Age: 10 * time.Second, Grace: 5 * time.Second, PeerAge: 5 * time.Minute, PeerInterval: time.Second,
		Spread: 2 * time.Second, ShutdownDelay: 2 * time.Second, DrainTimeout: 10 * time.Second, CallTimeout: 5 * time.Second,
		HeavyWork: defaultHeavyWork,
		FleetPods: 50, FleetAdd: defaultFleetAdd(50), FleetConnRate: fleetConnRate, FleetScaleAt: fleetScaleAt, FleetDuration: fleetDuration,
	}
}

// terminationGrace is the lab's terminationGracePeriodSeconds: the server's
// ShutdownDelay + DrainTimeout and a margin, as the kit's docs ask.
func (p params) terminationGrace() time.Duration {
	return p.ShutdownDelay + p.DrainTimeout + 3*time.Second
}

// A service is how the clients reach the pods.
type service string

const (
	viaClusterIP service = "clusterip" // kube-proxy iptables, per connection
	viaHeadless  service = "headless"  // dns:/// + round_robin, one connection per pod
	viaL7        service = "l7"        // nginx grpc_pass, per request
)

// A scenario is a sequence of changes to the lab's pods under load.
type scenario struct {
	name     string
	about    string
	via      service
	replicas int // pods at the start
	scaleTo  int // pods after the scale event; 0: no scale event
	rolling  bool
	// roll replaces every pod as a Deployment's rollout does (RollPod: the
	// old pod terminates in the background), rollEvery apart.
	roll      bool
	rollEvery time.Duration
	// eventAt, when set, replaces -scale-at as the time of the scenario's
	// event: the rollouts of headless clients happen once the clients'
	// first 30 s re-resolution window has passed and an age GOAWAY has
	// started the next one (headlessRolloutAt); late-heavy-client's client
	// turns heavy past growth (lateHeavyAt).
	eventAt time.Duration
	// kitShutdown runs the servers with the kit's own shutdown timings
	// (ShutdownDelay, DrainTimeout, MaxConnectionAgeGrace) and the pods
	// with a termination grace period that covers them, instead of the
	// lab's short ones.
	kitShutdown bool
	// load is how the calls spread over the connections and what they cost.
	load loadShape
	// conns, when set, replaces -conns: the number of client connections.
	conns int
	// rateShare, when set, is the share of -rate the scenario runs at.
	rateShare float64
	// spreads and policies are the client variants the scenario runs in
	// (one run each, in every mode) unless -spread-k or -policy replace
	// them: TCP connections per client connection
	// (server.SpreadConnections; nil: 1) and balancing policies (nil:
	// round_robin).
	spreads  []int
	policies []string
	// spread and policy are the variant of one run (see variants).
	spread int
	policy string
	// fleet sizes the scenario from the -fleet flags (see sized): its
	// pods, connections and timeline. connRate, when set, replaces -rate
	// with calls per second per connection; length, when set, replaces
	// -duration (a fleet's, or late-heavy-client's lateHeavyLength);
	// startBatch, when set, starts the initial pods that many at a time.
	fleet      bool
	connRate   float64
	length     time.Duration
	startBatch int
}

// headlessRolloutAt is when the headless rollouts begin: after the clients'
// age GOAWAYs (rotor's default age, 30 s ±10 %) have made them re-resolve,
// which starts grpc-go's next 30 s window: the case where a client holds the
// old pod's address longest.
const headlessRolloutAt = 35 * time.Second

// lateHeavyAt is when late-heavy-client's heavy calls begin: 60 s, past
// fair share's growth (30 s after the last new peer: the 5 pods start
// before the load, and in the lab's runs found each other about 1 s into
// it) and after its first sheds have balanced the fleet by count.
// lateHeavyLength leaves 90 s after it, for sheds that each wait 15 s
// (server.FairShare's load-only wait) and a 30 s imbalance window.
const (
	lateHeavyAt     = 60 * time.Second
	lateHeavyLength = 150 * time.Second
)

var scenarios = []scenario{
	{name: "seed-clusterip", about: "2 → 5 pods, 20 client connections through the ClusterIP", via: viaClusterIP, replicas: 2, scaleTo: 5},
	{name: "seed-headless", about: "2 → 5 pods, 20 dns:/// + round_robin clients of the headless Service", via: viaHeadless, replicas: 2, scaleTo: 5},
	{name: "rolling-restart", about: "5 pods replaced one by one through the ClusterIP", via: viaClusterIP, replicas: 5, rolling: true},
	{name: "l7-reference", about: "2 → 5 pods behind nginx grpc_pass (per-request balancing)", via: viaL7, replicas: 2, scaleTo: 5},
	{name: "rollout-headless", about: "1 pod replaced by a rollout, dns:/// + round_robin clients, kit's shutdown timings",
		via: viaHeadless, replicas: 1, roll: true, eventAt: headlessRolloutAt, kitShutdown: true},
	{name: "rolling-restart-headless", about: "3 pods replaced 5 s apart by a rollout, dns:/// + round_robin clients, kit's shutdown timings",
		via: viaHeadless, replicas: 3, roll: true, rollEvery: 5 * time.Second, eventAt: headlessRolloutAt, kitShutdown: true},
	{name: "skewed-clients", about: "2 → 5 pods through the ClusterIP, client call rates Zipf (s = 1)",
		via: viaClusterIP, replicas: 2, scaleTo: 5, load: zipfLoad},
	{name: "skewed-clients-l7", about: "2 → 5 pods behind nginx grpc_pass, client call rates Zipf (s = 1)",
		via: viaL7, replicas: 2, scaleTo: 5, load: zipfLoad},
	{name: "skewed-cost", about: "2 → 5 pods through the ClusterIP, 10 % of the calls 20× as costly, from 1/5 of the connections",
		via: viaClusterIP, replicas: 2, scaleTo: 5, load: costLoad, rateShare: costRateShare},
	{name: "skewed-cost-headless", about: "2 → 5 pods, dns:/// clients, 10 % of the calls 20× as costly, round_robin and weighted_round_robin + ORCA",
		via: viaHeadless, replicas: 2, scaleTo: 5, load: costLoad, rateShare: costRateShare, policies: []string{policyRoundRobin, policyWRR}},
	{name: "skewed-cost-l7", about: "2 → 5 pods behind nginx grpc_pass, 10 % of the calls 20× as costly",
		via: viaL7, replicas: 2, scaleTo: 5, load: costLoad, rateShare: costRateShare},
	{name: "one-heavy-client", about: "5 pods, one client connection making every call, over k TCP connections (server.SpreadConnections)",
		via: viaClusterIP, replicas: 5, conns: 1, spreads: []int{1, 5, 10}},
	{name: "late-heavy-client", about: "5 pods through the ClusterIP, 20 even client connections; at 60 s, past growth, one's calls all turn heavy (20× as costly)",
		via: viaClusterIP, replicas: 5, load: lateHeavyLoad, rateShare: costRateShare, eventAt: lateHeavyAt, length: lateHeavyLength},
	{name: "fleet", about: "a big fleet scaled by about 10 % through the ClusterIP, 4 client connections per pod at a small call rate (-fleet-pods, -fleet-add, -fleet-rate)",
		via: viaClusterIP, fleet: true},
}

// variants returns the runs of the scenario: one per spread and policy, its
// own or those of p.
func (s scenario) variants(p params) []scenario {
	s = s.sized(p)
	spreads, policies := s.spreads, s.policies
	if len(p.Spreads) > 0 {
		spreads = p.Spreads
	}
	if len(p.Policies) > 0 {
		policies = p.Policies
	}
	if len(spreads) == 0 {
		spreads = []int{1}
	}
	if len(policies) == 0 {
		policies = []string{policyRoundRobin}
	}
	var out []scenario
	for _, k := range spreads {
		for _, pol := range policies {
			v := s
			v.spread, v.policy = k, pol
			out = append(out, v)
		}
	}
	return out
}

// label names a run of a scenario variant: the scenario, then " k=N" for
// N TCP connections per client connection and " wrr" for
// weighted_round_robin clients.
func label(scenario string, spread int, policy string) string {
	if spread > 1 {
		scenario += fmt.Sprintf(" k=%d", spread)
	}
	if policy == policyWRR {
		scenario += " wrr"
	}
	return scenario
}

// logsDirName names the directory under -logs of a run: its label, with
// "-" for spaces, and its mode, as "skewed-cost-headless-wrr-fair-share" or
// "one-heavy-client-k=5-default", so that a scenario's variants do not
// write over each other's logs.
func logsDirName(sc scenario, m mode) string {
	return strings.ReplaceAll(label(sc.name, sc.spread, sc.policy), " ", "-") + "-" + m.name
}

// costRateShare is the share of -rate the skewed-cost scenarios run at:
// their calls cost 2.9 times the server CPU of as many light calls
// (0.9 × 1 + 0.1 × 20), and a light call already costs about 0.5 ms of a
// 2-vCPU lab host's CPU (call-cost), so at the full 1,000 calls/s the
// servers alone would want 1.5 cores: a saturated host would share its CPU
// out by its scheduler, not by the pods' demand, and hide the imbalance.
const costRateShare = 0.4

// connsOf is the number of client connections of the scenario.
func (s scenario) connsOf(p params) int {
	return cmp.Or(s.conns, p.Conns)
}

// rateOf is the calls per second of the scenario, all connections
// together.
func (s scenario) rateOf(p params) float64 {
	if s.connRate > 0 {
		return s.connRate * float64(s.connsOf(p))
	}
	return p.Rate * cmp.Or(s.rateShare, 1)
}

// loadConfig is what the load generator does in a run of the scenario
// against target.
func (s scenario) loadConfig(p params, target string) loadConfig {
	conns := s.connsOf(p)
	lc := loadConfig{Target: target, Conns: conns, Rate: s.rateOf(p), Duration: s.duration(p), CallTimeout: p.CallTimeout,
		DNSMinInterval: p.DNSMinInterval, Spread: s.spread, Policy: s.policy}
	switch s.load {
	case zipfLoad:
		lc.Weights = zipfWeights(conns, zipfS)
	case costLoad:
		lc.Heavy, lc.HeavyWork = heavyFractions(conns), p.HeavyWork
	case lateHeavyLoad:
		lc.Heavy, lc.HeavyWork, lc.HeavyFrom = lateHeavyFractions(conns), p.HeavyWork, s.at(p)
	}
	return lc
}

func findScenario(name string) (scenario, bool) {
	i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
	if i < 0 {
		return scenario{}, false
	}
	return scenarios[i], true
}

// loadEvents are the changes the load generator makes itself in a run of
// the scenario, at the times its loadConfig gives: lateHeavyLoad's client
// 0 turning heavy (eventHeavy, in seconds from the origin, a whole
// second for lateHeavyAt); none for the other shapes.
func (s scenario) loadEvents(p params) []event {
	if s.load != lateHeavyLoad {
		return nil
	}
	at := s.at(p).Seconds()
	return []event{{Label: "client 0's calls heavy", Kind: eventHeavy, At: at, Done: at}}
}

// duration is how long the scenario's load runs.
func (s scenario) duration(p params) time.Duration {
	d := cmp.Or(s.length, p.Duration)
	if s.via == viaHeadless && p.DNSMinInterval == 0 {
		d = max(d, headlessFloor)
	}
	if s.roll {
		// The last rollout step, the old pods' delay, and a client's whole
		// 30 s re-resolution window, with room to see the drain end.
		n := time.Duration(max(s.replicas-1, 0))
		d = max(d, s.at(p)+n*s.rollEvery+server.DefaultShutdownDelay+40*time.Second)
	}
	return d
}

// at is when the scenario's event begins.
func (s scenario) at(p params) time.Duration {
	if s.eventAt > 0 {
		return s.eventAt
	}
	return p.ScaleAt
}

// terminationGrace is the pods' terminationGracePeriodSeconds in the
// scenario.
func (s scenario) terminationGrace(p params) time.Duration {
	if s.kitShutdown {
		return server.DefaultShutdownDelay + server.DefaultDrainTimeout + 10*time.Second
	}
	return p.terminationGrace()
}

// A mode is how the pods' servers rotate connections.
type mode struct {
	name  string
	about string
	// args are the mode's server flags; peerDNS is the headless Service as
	// a dns://SERVER/name target.
	args func(p params, peerDNS string) []string
	// needsFlag names a server flag the mode depends on; the mode is
	// skipped, with a note, when the server binary does not have it.
	needsFlag string
	// fairShare: the mode runs fair share (-fair-share), whose pods have a
	// growth grace after a scale-up (see pastGrowth).
	fairShare bool
}

var modes = []mode{
	{name: "default", about: "the example server's defaults (age 30 s)", args: func(params, string) []string { return nil }},
	{name: "none", about: "no rotation (-max-connection-age off)", args: func(p params, _ string) []string {
		return []string{"-max-connection-age", "off"}
	}},
	{name: "age", about: "age rotation", args: func(p params, _ string) []string {
		return []string{"-max-connection-age", p.Age.String()}
	}},
	{name: "peers", about: "peer watcher: rotate everything when the headless Service grows", args: func(p params, peerDNS string) []string {
		return []string{"-max-connection-age", p.PeerAge.String(), "-peer-dns", peerDNS,
			"-peer-interval", p.PeerInterval.String(), "-rotate-spread", p.Spread.String()}
	}},
	// fair-share: pods exchange their connection counts and shed the
	// excess over the fleet mean (server.WithFairShare); a grown peer set
	// then triggers no full rotation. Skipped with a note when the server
	// binary has no -fair-share flag.
	{name: "fair-share", about: "peer watcher + fair-share shedding (-fair-share)", needsFlag: "fair-share", fairShare: true,
		args: func(p params, peerDNS string) []string {
			return []string{"-max-connection-age", p.PeerAge.String(), "-peer-dns", peerDNS,
				"-peer-interval", p.PeerInterval.String(), "-rotate-spread", p.Spread.String(), "-fair-share"}
		}},
	// fair-share-sheds: fair share without admission, as before
	// 2026-12-01: a new connection stays where kube-proxy sent it and only
	// sheds move connections; for comparing with fair-share in one run.
	{name: "fair-share-sheds", about: "fair share without admission (-fair-share -fair-share-admission=false)", needsFlag: "fair-share-admission", fairShare: true,
		args: func(p params, peerDNS string) []string {
			return []string{"-max-connection-age", p.PeerAge.String(), "-peer-dns", peerDNS,
				"-peer-interval", p.PeerInterval.String(), "-rotate-spread", p.Spread.String(), "-fair-share", "-fair-share-admission=false"}
		}},
}

func findMode(name string) (mode, bool) {
	i := slices.IndexFunc(modes, func(m mode) bool { return m.name == name })
	if i < 0 {
		return mode{}, false
	}
	return modes[i], true
}

// serverArgs are the flags of every pod's server in a run.
func serverArgs(sc scenario, m mode, p params, peerDNS string) []string {
	args := []string{"-grpc-addr", fmt.Sprintf(":%d", grpcPort), "-http-addr", "", "-admin-addr", "", "-log-calls=false"}
	if !sc.kitShutdown {
		args = append(args, "-max-connection-age-grace", p.Grace.String(),
			"-shutdown-delay", p.ShutdownDelay.String(), "-drain-timeout", p.DrainTimeout.String())
	}
	if sc.policy == policyWRR {
		// weighted_round_robin weighs the pods by the load they report.
		args = append(args, "-orca")
	}
	if p.ServerLogLevel != "" {
		args = append(args, "-log-level", p.ServerLogLevel)
	}
	return append(args, m.args(p, peerDNS)...)
}

// serverNeeds returns the server flags a run of sc in m with p depends on.
func serverNeeds(sc scenario, m mode, p params) []string {
	var flags []string
	if p.ServerLogLevel != "" {
		flags = append(flags, "log-level")
	}
	if m.needsFlag != "" {
		flags = append(flags, m.needsFlag)
	}
	if sc.policy == policyWRR {
		flags = append(flags, "orca")
	}
	return flags
}

// binaries are the programs a run starts.
type binaries struct {
	server string // the example server, run in every pod
	load   string // this program (or the test binary), run as the load generator
	// With -cluster real: the images' programs and the node agent (real.Server
	// is server), and example/k8s.
	real      realcluster.Binaries
	manifests string
}

// serverHasFlag reports whether the server binary defines flag, by asking
// it for its usage.
func serverHasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	return strings.Contains(string(out), "  -"+flag+" ") || strings.Contains(string(out), "  -"+flag+"\n")
}

// event is something the scenario did to the pods, in seconds since the
// load's origin: it started at At and was complete (new pods were
// endpoints, a replaced pod had exited) at Done.
type event struct {
	Label string  `json:"label"`
	Kind  string  `json:"kind"` // eventScale, eventReplace or eventHeavy
	At    float64 `json:"at"`
	Done  float64 `json:"done"`
}

// The kinds of event, as result.json spells them.
const (
	eventScale   = "scale"   // the Deployment scaled up; Done when the new pods were endpoints
	eventReplace = "replace" // one pod replaced (roll, rolling); Done when it had exited
	eventHeavy   = "heavy"   // late-heavy-client's client 0 turned heavy; Done = At
)

// firstEvent returns the run's first event of the kind.
func (r *run) firstEvent(kind string) (event, bool) {
	i := slices.IndexFunc(r.Events, func(e event) bool { return e.Kind == kind })
	if i < 0 {
		return event{}, false
	}
	return r.Events[i], true
}

// runScenario runs one scenario in one mode in a new lab and returns what
// the load generator saw. progress, if not nil, gets a line now and then.
func runScenario(ctx context.Context, sc scenario, m mode, p params, bins binaries, progress func(string)) (r run, err error) {
	sc = sc.sized(p)
	r = run{Scenario: sc.name, Mode: m.name, Via: string(sc.via), Load: string(sc.load), Rate: sc.rateOf(p), Clients: sc.connsOf(p)}
	if sc.spread > 1 {
		r.Spread = sc.spread
	}
	if sc.policy != policyRoundRobin {
		r.Policy = sc.policy
	}
	if sc.load.hasHeavy() {
		r.HeavyWork = p.HeavyWork
	}
	if progress == nil {
		progress = func(string) {}
	}
	var lab podLab
	if p.Cluster == clusterReal {
		r.Cluster, r.ProxyMode, r.Components = clusterReal, string(p.ProxyMode), componentVersions()
		lab, err = newRealLab(ctx, p.ProxyMode, bins)
	} else {
		lab, err = newEmulatedLab(ctx, sc, p, bins)
	}
	if err != nil {
		return r, err
	}
	defer func() {
		logs := ""
		if p.LogsDir != "" {
			logs = filepath.Join(p.LogsDir, logsDirName(sc, m))
		}
		if cerr := closeLab(lab, logs, &r); cerr != nil && err == nil {
			err = cerr
		}
	}()
	r.LabPrefix = lab.Prefix()
	args := lab.serverArgs(sc, m, p)
	r.ServerArgs = args
	fleet := newFleetRecorder(sc, m, p.PeerInterval, progress)
	defer fleet.close()
	if err := startInBatches(ctx, lab, sc.replicas, sc.startBatch, args, progress); err != nil {
		return r, err
	}
	fleet.started()
	initial := map[string]bool{}
	initialPods, err := lab.pods(ctx)
	if err != nil {
		return r, err
	}
	for _, pod := range initialPods {
		initial[pod.Name] = true
	}

	target, err := lab.target(ctx, sc.via)
	if err != nil {
		return r, err
	}
	r.Target = target
	lc := sc.loadConfig(p, target)
	duration := lc.Duration
	r.Duration = duration.Seconds()

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	cmd, err := lab.clientCommand(loadCtx, bins.load)
	if err != nil {
		return r, err
	}
	load, err := startLabLoad(loadCtx, cmd, lc, func(line loadLine) {
		if (line.T+1)%10 == 0 {
			progress(fmt.Sprintf("%s/%s t=%ds: %d ok, %d failed", label(sc.name, sc.spread, sc.policy), m.name, line.T+1, sumMap(line.Calls), sumMap(line.Failed)))
		}
	})
	if err != nil {
		return r, err
	}
	origin := load.origin
	r.Origin = origin
	// Per-pod CPU where the lab knows the pods' PIDs.
	var cpu *cpuSampler
	if e, ok := lab.(*emulatedLab); ok {
		cpu = sampleCPU(loadCtx, e.podList, origin, int(math.Ceil(duration.Seconds())))
	}
	fleet.sample(loadCtx, origin, int(math.Ceil(duration.Seconds())), load.pid())

	// The scenario's changes run beside the load; the load generator
	// makes its own (loadEvents) itself.
	events := sc.loadEvents(p)
	var evMu sync.Mutex
	since := func(t time.Time) float64 { return t.Sub(origin).Seconds() }
	actErr := make(chan error, 1)
	go func() {
		actErr <- func() error {
			if sc.scaleTo == 0 && !sc.rolling && !sc.roll {
				return nil
			}
			t := time.NewTimer(time.Until(origin.Add(sc.at(p))))
			defer t.Stop()
			select {
			case <-t.C:
			case <-loadCtx.Done():
				return nil
			}
			if sc.scaleTo > 0 {
				at := time.Now()
				if err := lab.scaleTo(loadCtx, sc.scaleTo); err != nil {
					return err
				}
				evMu.Lock()
				events = append(events, event{Label: fmt.Sprintf("scale %d→%d", sc.replicas, sc.scaleTo), Kind: eventScale, At: since(at), Done: since(time.Now())})
				evMu.Unlock()
				progress(fmt.Sprintf("%s/%s: scaled to %d pods", label(sc.name, sc.spread, sc.policy), m.name, sc.scaleTo))
			}
			if sc.roll || sc.rolling {
				err := lab.replace(loadCtx, sc, initialPods, func(label string, at, done time.Time) {
					evMu.Lock()
					events = append(events, event{Label: label, Kind: eventReplace, At: since(at), Done: since(done)})
					evMu.Unlock()
				})
				if err != nil {
					if loadCtx.Err() != nil {
						return nil // the run ended first: the check below says so
					}
					return err
				}
				progress(fmt.Sprintf("%s/%s: replaced %d pods", label(sc.name, sc.spread, sc.policy), m.name, len(initialPods)))
			}
			return nil
		}()
	}()

	err = <-load.done
	r.pids = append(r.pids, load.pid())
	if err != nil {
		cancelLoad()
		<-actErr
		return r, fmt.Errorf("%w\nlab logs:\n%s", err, lab.logs(1500))
	}
	cpuSeconds := cpu.perSecond()
	if err := <-actErr; err != nil {
		return r, fmt.Errorf("%s: %w", sc.name, err)
	}
	if !slices.ContainsFunc(events, func(e event) bool { return e.Kind == eventScale || e.Kind == eventReplace }) && (sc.scaleTo > 0 || sc.rolling || sc.roll) {
		return r, fmt.Errorf("%s: the run ended before its scale event; make -duration longer than -scale-at", sc.name)
	}

	// Pods: the initial ones in creation order, then the new ones.
	final, err := lab.pods(ctx)
	if err != nil {
		return r, err
	}
	r.FinalPods = nil
	for _, pod := range initialPods {
		r.Pods = append(r.Pods, podInfo{Name: pod.Name, Index: pod.Index})
		if pod.PID > 0 {
			r.pids = append(r.pids, pod.PID)
		}
	}
	for _, pod := range final {
		if pod.PID > 0 {
			r.pids = append(r.pids, pod.PID)
		}
		if !initial[pod.Name] {
			r.Pods = append(r.Pods, podInfo{Name: pod.Name, Index: pod.Index, New: true})
		}
		r.FinalPods = append(r.FinalPods, pod.Name)
	}
	r.Events = events
	r.LoadAvg = loadAverage()
	r.Fleet = fleet.finish()
	for i, line := range load.lines {
		if line.T >= 0 && line.T < len(cpuSeconds) {
			load.lines[i].CPUMs = cpuSeconds[line.T]
		}
	}
	r.fill(load.lines)
	return r, nil
}

func sumMap[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// selfExecutable is the load generator: this program.
func selfExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this program to run it as the load generator: %w", err)
	}
	return exe, nil
}

// closeLab copies the lab's logs into logsDir, when it is not empty, and
// closes the lab, returning Close's error. A log it cannot copy does not
// fail the run, whose measurements stand: copyLogs's error goes to
// r.LogsError.
func closeLab(lab interface {
	Dir() string
	Close() error
}, logsDir string, r *run) error {
	if logsDir != "" {
		if err := copyLogs(lab.Dir(), logsDir); err != nil {
			r.LogsError = err.Error()
		}
	}
	return lab.Close()
}

// copyLogs copies the lab's log files (*.log, also nginx's) into dir, each
// at its path under labDir: the real control plane's node agents write a
// container's log as pods/NAMESPACE_POD_UID/CONTAINER/RESTARTS.log, so
// every pod's first log is a 0.log. A file or directory it cannot read
// (a pod's directory removed while it walks) does not stop it: it copies
// every other log and returns each failure, joined.
func copyLogs(labDir, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	_ = filepath.WalkDir(labDir, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			errs = append(errs, err)
		case !d.IsDir() && filepath.Ext(path) == ".log":
			if err := copyLog(labDir, dir, path); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// copyLog copies the file at path under labDir to the same place under dir.
func copyLog(labDir, dir, path string) error {
	rel, err := filepath.Rel(labDir, path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	to := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// loadAverage is the host's 1-minute load average, or 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscan(string(b), &l)
	return l
}
