package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The fleet scenario scales a big Deployment by about 10 % (issue 16: 50 →
// 60, 200 → 220 pods) with a few client connections per pod at a small call
// rate, as a large fleet runs: fair share's exchange is then a large part
// of the pods' work. It is sized by its own flags (bindFleetFlags)
// and reports, beside the other runs' figures, the client connections per
// pod at the end, the connections moved after the new pods reached their
// fair share, and what the pods, the load generator and the host spent.
const (
	// fleetConnsPerPod is the client connections per pod of the scaled
	// fleet: its fair share of connections.
	fleetConnsPerPod = 4
	// fleetStartBatch is how many pods start at once before the load: a
	// few hundred servers and their namespaces started together would
	// starve each other of the CPU past the lab's readiness timeout.
	fleetStartBatch = 20
	// maxLabPods is the most pods a lab holds (kubelab.Config.Replicas).
	maxLabPods = 245
	// fleetScaleAt and fleetDuration are the fleet's defaults for
	// -scale-at and -duration: the initial fleet's clients all connect at
	// once, and fair share needs some seconds to even them out before the
	// scale event; after it, 90 s to reach fair and to measure the
	// imbalance and the churn.
	fleetScaleAt  = 30 * time.Second
	fleetDuration = 120 * time.Second
	// fleetShortScaleAt is -short's scale event. It was chosen when a pod
	// took the peers it learned in its first 30 s for the fleet it joined
	// (now 5 s, server's joinWindow); kept so that -short's figures stay
	// comparable with the earlier runs.
	fleetShortScaleAt = 31 * time.Second
	// fleetConnRate is the default calls per second of each client
	// connection (-fleet-rate).
	fleetConnRate = 2.0
	// fleetGrowthGrace is the pods' growth grace (server's growthGrace):
	// for 30 s after a pod sees its peer set grow, admission fills the new
	// pods and no shed is judged futile.
	fleetGrowthGrace = 30 * time.Second
	// fleetPollPerPeer is how far each peer a pod knows stretches its DNS
	// poll (server's peerPollPerPeer, 50 ms).
	fleetPollPerPeer = 50 * time.Millisecond
)

// pastGrowth is how long after the scale event a fleet of oldPods pods
// before it, polling DNS every peerInterval, is past its growth, in fair
// share's modes: an old pod's growth grace ends 30 s after its last
// restart, the DNS poll that first lists the new pods (an announcement can
// start it earlier), which comes up to max(peerInterval, fleetPollPerPeer
// × oldPods) after they are in DNS (server's peerWatcher.wait); 2 s more
// cover that poll's answer and the round after it. 34.5 s for 50 → 60 at
// the lab's 1 s, 42 s for 200 → 220. Churn after it is what the balanced
// fleet still moves (fleetSummary's MovedPastGrowth).
func pastGrowth(oldPods int, peerInterval time.Duration) time.Duration {
	return fleetGrowthGrace + max(peerInterval, fleetPollPerPeer*time.Duration(oldPods)) + 2*time.Second
}

// fleetFlags are the fleet scenario's flags.
type fleetFlags struct {
	pods *int
	add  *int
	rate *float64
}

// bindFleetFlags defines the fleet scenario's flags on fs; apply turns them
// into params once fs is parsed. -short runs 8 → 12 pods: after a step of
// 10 % the old pods are about one connection above the new mean, which fair
// share by load moves only when its measurement's noise says so, a few
// connections in the test's 14 s; after 50 % they hold two connections
// more than the mean, and shed them at once.
func bindFleetFlags(fs *flag.FlagSet) fleetFlags {
	return fleetFlags{
		pods: fs.Int("fleet-pods", 0, fmt.Sprintf("fleet: pods at the start (default 50, -short 8); the scale event adds -fleet-add, up to %d pods in all", maxLabPods)),
		add:  fs.Int("fleet-add", 0, "fleet: pods the scale event adds (default 10 % of -fleet-pods rounded up, at least 10: 50 → 60, 200 → 220; -short 4)"),
		rate: fs.Float64("fleet-rate", 0, fmt.Sprintf("fleet: calls per second of each client connection (default %g); there are %d connections per pod of the scaled fleet", fleetConnRate, fleetConnsPerPod)),
	}
}

// apply sets p's fleet fields from the flags given, over the defaults of
// defaultParams. -scale-at and -duration, when given, apply to the fleet
// too; otherwise it has its own: fleetScaleAt and fleetDuration, or with
// -short fleetShortScaleAt and 14 s after it.
func (f fleetFlags) apply(fs *flag.FlagSet, p *params) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["scale-at"] {
		p.FleetScaleAt = p.ScaleAt
	}
	if set["duration"] {
		p.FleetDuration = p.Duration
	}
	if *f.pods != 0 {
		p.FleetPods = *f.pods
		if !p.Short {
			p.FleetAdd = defaultFleetAdd(p.FleetPods)
		}
	}
	if *f.add != 0 {
		p.FleetAdd = *f.add
	}
	if *f.rate != 0 {
		p.FleetConnRate = *f.rate
	}
	switch {
	case p.FleetPods < 1 || p.FleetPods >= maxLabPods:
		return fmt.Errorf("-fleet-pods %d: want 1 to %d (the lab has addresses for %d pods)", p.FleetPods, maxLabPods-1, maxLabPods)
	case p.FleetAdd < 1 || p.FleetPods+p.FleetAdd > maxLabPods:
		return fmt.Errorf("-fleet-add %d: want 1 to %d, so that -fleet-pods %d plus it is at most %d pods", p.FleetAdd, maxLabPods-p.FleetPods, p.FleetPods, maxLabPods)
	case !(p.FleetConnRate > 0) || p.FleetConnRate > 1000:
		return fmt.Errorf("-fleet-rate %v: want more than 0 and at most 1000 calls per second per connection", p.FleetConnRate)
	case p.FleetScaleAt >= p.FleetDuration:
		return fmt.Errorf("fleet: the scale event at %s is not before the end of the run at %s; set -scale-at below -duration", p.FleetScaleAt, p.FleetDuration)
	}
	return nil
}

// defaultFleetAdd is the pods the scale event adds to a fleet of n: 10 %
// rounded up, at least 10.
func defaultFleetAdd(n int) int {
	return max((n+9)/10, 10)
}

// sized returns the scenario with the fleet's sizes from p filled in: its
// pods, their client connections, their call rate and its timeline. Other
// scenarios are returned as they are.
func (s scenario) sized(p params) scenario {
	if !s.fleet {
		return s
	}
	s.replicas, s.scaleTo = p.FleetPods, p.FleetPods+p.FleetAdd
	s.conns = fleetConnsPerPod * s.scaleTo
	s.connRate = p.FleetConnRate
	s.eventAt, s.length = p.FleetScaleAt, p.FleetDuration
	s.startBatch = fleetStartBatch
	s.about = fmt.Sprintf("%d → %d pods through the ClusterIP, %d client connections at %g calls/s each", s.replicas, s.scaleTo, s.conns, s.connRate)
	return s
}

// startInBatches starts the lab's servers with args, n pods, batch pods at
// a time (all at once when batch is 0).
func startInBatches(ctx context.Context, lab podLab, n, batch int, args []string, progress func(string)) error {
	if batch <= 0 || n <= batch {
		return lab.startServers(ctx, n, args)
	}
	if err := lab.startServers(ctx, batch, args); err != nil {
		return err
	}
	for k := batch; k < n; {
		progress(fmt.Sprintf("started %d of %d pods", k, n))
		k = min(k+batch, n)
		if err := lab.scaleTo(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// fleetRun is what a fleet run records beyond the other runs' data.
type fleetRun struct {
	Pods     int     `json:"pods"`      // at the start
	ScaledTo int     `json:"scaled_to"` // after the scale event
	ConnRate float64 `json:"conn_rate"` // calls per second of each client connection
	// StartupS is how long starting the initial pods took, in batches of
	// fleetStartBatch.
	StartupS float64 `json:"startup_s"`
	// CPUs is the host's CPU count.
	CPUs int `json:"cpus"`
	// PastGrowthS is when, in seconds after the scale event, the fleet is
	// past its growth (pastGrowth); 0 outside fair share's modes.
	PastGrowthS float64 `json:"past_growth_s"`
	// HostCores is the CPU time the whole host used in each second of the
	// load, in cores (from /proc/stat).
	HostCores []float64 `json:"host_cores,omitempty"`
	// LoadGenMs is the load generator's CPU time in each second of the
	// load, in ms.
	LoadGenMs []float64 `json:"loadgen_ms,omitempty"`
	// NeighLimits says how the run changed the host's neighbour table
	// limits (see raiseNeighLimits), if it did.
	NeighLimits string `json:"neigh_limits,omitempty"`
	// NeighTableFulls counts how often, during the run, the kernel found
	// its neighbour (ARP) table full, which drops packets.
	NeighTableFulls int `json:"neigh_table_fulls,omitempty"`
}

// fleetSummary is what analyze adds for a fleet run.
type fleetSummary struct {
	// ConnsMax and ConnsMean are the client connections of the busiest and
	// of the mean pod at the end: each client connection counts at the pod
	// of the TCP connection that carried its last calls.
	ConnsMax  int     `json:"conns_max"`
	ConnsMean float64 `json:"conns_mean"`
	// Moved is the steady-state churn after the scale event: the TCP
	// connections the clients dialled from the second in which the new
	// pods' trailing 5 s share reached fair (TimeToFair) to the end; zero
	// when they never did.
	Moved churn `json:"moved"`
	// MovedPastGrowth is the churn of the balanced fleet: the connections
	// dialled from fleetRun.PastGrowthS after the scale event to the end;
	// zero when the run ends before, or its record has no PastGrowthS
	// (records before 4f797a2, and modes without fair share). A fleet whose pods shed only what is over
	// their share moves nothing then (issue 16's target).
	MovedPastGrowth churn `json:"moved_past_growth"`
	// MovedBefore is the churn of the initial fleet: the connections
	// dialled in the second half of the time before the scale event, once
	// the clients' first connections have settled.
	MovedBefore churn `json:"moved_before"`
	// ServerCPUMean and ServerCPUMax are the mean and the highest pod's
	// server CPU over the imbalance window, in % of one core.
	ServerCPUMean float64 `json:"server_cpu_pct_mean,omitempty"`
	ServerCPUMax  float64 `json:"server_cpu_pct_max,omitempty"`
	// LoadGenCPU is the load generator's CPU over the same window, in % of
	// one core, and HostCores the whole host's, in cores.
	LoadGenCPU float64 `json:"loadgen_cpu_pct,omitempty"`
	HostCores  float64 `json:"host_cores,omitempty"`
}

// churn is how many connections moved over some seconds of a run: the TCP
// connections the clients dialled then (each one a connection that was
// sent a GOAWAY and came back), in all and per pod per minute.
type churn struct {
	Conns        int     `json:"conns"`
	Seconds      int     `json:"s"`
	PerPodMinute float64 `json:"per_pod_min"`
}

// churnOver counts the dials in the seconds [from, to) of a run with pods
// pods.
func churnOver(secs []second, from, to, pods int) churn {
	c := churn{Seconds: max(to-from, 0)}
	for _, sec := range secs {
		if sec.T >= from && sec.T < to {
			c.Conns += sec.Dials
		}
	}
	if c.Seconds > 0 && pods > 0 {
		c.PerPodMinute = round3(float64(c.Conns) / float64(pods) / (float64(c.Seconds) / 60))
	}
	return c
}

func (c churn) String() string {
	if c.Seconds == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%d s)", c.PerPodMinute, c.Seconds)
}

// fleetRecorder gathers a fleet run's fleetRun. Its methods do nothing on
// a nil recorder, which is what runs of the other scenarios have.
type fleetRecorder struct {
	rec        fleetRun
	began      time.Time
	neighFrom  int
	neighSaved []int // the neighbour table limits to put back; nil: unchanged
	mu         sync.Mutex
	done       chan struct{}
}

// newFleetRecorder starts recording a run of sc in mode m, whose pods poll
// DNS every peerInterval, or returns nil when sc is not a fleet. It raises
// the host's neighbour table limits for the fleet (raiseNeighLimits) until
// close.
func newFleetRecorder(sc scenario, m mode, peerInterval time.Duration, progress func(string)) *fleetRecorder {
	if !sc.fleet {
		return nil
	}
	f := &fleetRecorder{began: time.Now(),
		rec: fleetRun{Pods: sc.replicas, ScaledTo: sc.scaleTo, ConnRate: sc.connRate, CPUs: runtime.NumCPU()}}
	if m.fairShare {
		// Only fair share has a growth grace.
		f.rec.PastGrowthS = pastGrowth(sc.replicas, peerInterval).Seconds()
	}
	saved, want, err := raiseNeighLimits(neighLimitsFor(sc.scaleTo))
	switch {
	case err != nil:
		f.rec.NeighLimits = "not raised: " + err.Error()
		progress("fleet: the host's neighbour table limits were not raised: " + err.Error())
	case saved != nil:
		f.neighSaved = saved
		f.rec.NeighLimits = fmt.Sprintf("gc_thresh1/2/3 raised from %s to %s for the run", joinInts(saved), joinInts(want))
		progress("fleet: neighbour table " + f.rec.NeighLimits)
	}
	f.neighFrom = neighTableFulls()
	return f
}

// close puts back what newFleetRecorder changed on the host.
func (f *fleetRecorder) close() {
	if f == nil || f.neighSaved == nil {
		return
	}
	_ = setNeighLimits(f.neighSaved)
}

// started notes that the initial pods are up.
func (f *fleetRecorder) started() {
	if f == nil {
		return
	}
	f.rec.StartupS = math.Round(time.Since(f.began).Seconds()*10) / 10
}

// sample reads the host's CPU time and the load generator's (process pid)
// at origin + 0, 1, … n seconds, or until ctx ends, as cpuSampler does the
// pods'.
func (f *fleetRecorder) sample(ctx context.Context, origin time.Time, n, pid int) {
	if f == nil {
		return
	}
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		lastHost, lastLoad := -1.0, time.Duration(-1)
		everySecond(ctx, origin, n, func(k int) {
			host, herr := hostBusySeconds()
			load, lerr := procCPUFine(pid)
			f.mu.Lock()
			if k > 0 {
				f.rec.HostCores = append(f.rec.HostCores, delta(herr == nil && lastHost >= 0, host-lastHost, 100))
				f.rec.LoadGenMs = append(f.rec.LoadGenMs, delta(lerr == nil && lastLoad >= 0, float64(load-lastLoad)/1e6, 10))
			}
			f.mu.Unlock()
			if herr == nil {
				lastHost = host
			}
			if lerr == nil {
				lastLoad = load
			}
		})
	}()
}

// delta rounds d to 1/scale when ok, and is -1 (unknown) otherwise.
func delta(ok bool, d, scale float64) float64 {
	if !ok {
		return -1
	}
	return math.Round(d*scale) / scale
}

// finish stops recording and returns the record, or nil.
func (f *fleetRecorder) finish() *fleetRun {
	if f == nil {
		return nil
	}
	if f.done != nil {
		<-f.done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := f.rec
	rec.NeighTableFulls = max(neighTableFulls()-f.neighFrom, 0)
	return &rec
}

// hostBusySeconds returns the CPU time, in seconds, that the host's CPUs
// have spent other than idle or waiting for I/O since boot, from the cpu
// line of /proc/stat (in USER_HZ ticks: user nice system idle iowait irq
// softirq steal; guest time is already in user).
func hostBusySeconds() (float64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	busy := 0.0
	for i, s := range fields[1:9] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy / userHZ, nil
}

// neighLimitFiles are the limits of the kernel's IPv4 neighbour (ARP)
// table: below gc_thresh1 entries it collects no garbage, above gc_thresh2
// it collects it within 5 s, at gc_thresh3 it must free an entry for each
// new one or drop the packet. The table, and these limits, are shared by
// every network namespace of the host, and each pod keeps an entry for each
// peer it talked to in the last minute or so, each for the client and the
// bridge: a fair-share fleet of 60 pods already needs more than the
// default 1,024 (Kubernetes nodes raise them too).
var neighLimitFiles = []string{
	"/proc/sys/net/ipv4/neigh/default/gc_thresh1",
	"/proc/sys/net/ipv4/neigh/default/gc_thresh2",
	"/proc/sys/net/ipv4/neigh/default/gc_thresh3",
}

// neighLimitsFor returns the neighbour table limits a fleet of pods needs:
// room for 64 entries a pod, with garbage collection from 32 a pod.
func neighLimitsFor(pods int) []int {
	hard := max(1024, 64*pods)
	return []int{hard / 8, hard / 2, hard}
}

// raiseNeighLimits raises each of the host's neighbour table limits that
// is below want to it. It returns the limits as they were and as they are
// now when it changed any, nils when all were high enough.
func raiseNeighLimits(want []int) (saved, now []int, err error) {
	for _, path := range neighLimitFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		saved = append(saved, v)
	}
	now = make([]int, len(saved))
	changed := false
	for i := range saved {
		now[i] = max(saved[i], want[i])
		changed = changed || now[i] != saved[i]
	}
	if !changed {
		return nil, nil, nil
	}
	if err := setNeighLimits(now); err != nil {
		_ = setNeighLimits(saved)
		return nil, nil, err
	}
	return saved, now, nil
}

// setNeighLimits writes gc_thresh3, 2 and 1, in that order (the kernel does
// not require them in order; raised, they stay so throughout).
func setNeighLimits(v []int) error {
	for i := len(neighLimitFiles) - 1; i >= 0; i-- {
		if err := os.WriteFile(neighLimitFiles[i], []byte(strconv.Itoa(v[i])), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, "/")
}

// neighTableFulls returns how often the kernel has found its IPv4
// neighbour table full since boot: the table_fulls column of
// /proc/net/stat/arp_cache (hex, one line per CPU), or 0 if unknown.
func neighTableFulls() int {
	b, err := os.ReadFile("/proc/net/stat/arp_cache")
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0
	}
	col := slices.Index(strings.Fields(lines[0]), "table_fulls")
	if col < 0 {
		return 0
	}
	total := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col < len(f) {
			v, _ := strconv.ParseInt(f[col], 16, 64)
			total += int(v)
		}
	}
	return total
}

// analyzeFleet computes a fleet run's own figures; s must hold the others
// (the imbalance window, TimeToFair).
func (r *run) analyzeFleet(s summary) *fleetSummary {
	if r.Fleet == nil {
		return nil
	}
	fs := &fleetSummary{}
	n := 0
	if len(r.Seconds) > 0 {
		n = r.Seconds[len(r.Seconds)-1].T + 1
	}
	fs.ConnsMax, fs.ConnsMean = connsPerPodAtEnd(r.Conns, r.FinalPods, n)

	if e, ok := r.firstEvent(eventScale); ok {
		at := int(math.Floor(e.At))
		fs.MovedBefore = churnOver(r.Seconds, (at+1)/2, at, r.Fleet.Pods)
	}
	if ev, ok := r.scaleEvent(); ok {
		if s.TimeToFair != nil {
			// TimeToFair ends a trailing window: the second after it is
			// the first one of the fair state.
			fs.Moved = churnOver(r.Seconds, int(math.Round(ev+*s.TimeToFair)), n, len(r.FinalPods))
		}
		if r.Fleet.PastGrowthS > 0 {
			fs.MovedPastGrowth = churnOver(r.Seconds, int(math.Ceil(ev+r.Fleet.PastGrowthS)), n, len(r.FinalPods))
		}
	}

	from, to := r.imbalanceWindowOf()
	if to > from && len(r.FinalPods) > 0 {
		perPod := make([]float64, len(r.FinalPods))
		seen := false
		for _, sec := range r.Seconds {
			if sec.T < from || sec.T >= to {
				continue
			}
			for i, name := range r.FinalPods {
				if ms, ok := sec.CPUMs[name]; ok {
					perPod[i] += ms
					seen = true
				}
			}
		}
		if seen {
			secs := float64(to - from)
			// ms of CPU per second is a thousandth of a core: /10 is %.
			fs.ServerCPUMean = round3(sum(perPod) / float64(len(perPod)) / secs / 10)
			fs.ServerCPUMax = round3(slices.Max(perPod) / secs / 10)
		}
		fs.LoadGenCPU = round3(meanKnown(r.Fleet.LoadGenMs, from, to) / 10)
		fs.HostCores = round3(meanKnown(r.Fleet.HostCores, from, to))
	}
	return fs
}

// meanKnown is the mean of xs[from:to], leaving out unknown (negative)
// values; 0 when none is known.
func meanKnown(xs []float64, from, to int) float64 {
	total, k := 0.0, 0
	for i := max(from, 0); i < min(to, len(xs)); i++ {
		if xs[i] >= 0 {
			total += xs[i]
			k++
		}
	}
	if k == 0 {
		return 0
	}
	return total / float64(k)
}

// connsPerPodAtEnd returns the client connections of the busiest and of
// the mean pod among pods at the end of a run of n seconds: each client
// connection counts at the pod of the TCP connection that carried its last
// calls, if those were in the last 3 seconds.
func connsPerPodAtEnd(conns []connRecord, pods []string, n int) (maxConns int, mean float64) {
	type last struct {
		end, from int
		pod       string
	}
	byClient := map[int]last{}
	for _, c := range conns {
		end := c.From + len(c.Calls) - 1
		if l, ok := byClient[c.Client]; !ok || end > l.end || end == l.end && c.From > l.from {
			byClient[c.Client] = last{end: end, from: c.From, pod: c.Pod}
		}
	}
	count := map[string]int{}
	for _, name := range pods {
		count[name] = 0
	}
	for _, l := range byClient {
		if _, ok := count[l.pod]; ok && l.end >= n-3 {
			count[l.pod]++
		}
	}
	if len(count) == 0 {
		return 0, 0
	}
	total := 0
	for _, c := range count {
		total += c
		maxConns = max(maxConns, c)
	}
	return maxConns, round3(float64(total) / float64(len(count)))
}

// writeFleetTable prints the fleet runs' own table, if there are any.
func writeFleetTable(w io.Writer, res *result) {
	var fleet []run
	for _, r := range res.Runs {
		if r.Fleet != nil && r.Summary.Fleet != nil && r.Skipped == "" && r.Error == "" {
			fleet = append(fleet, r)
		}
	}
	if len(fleet) == 0 {
		return
	}
	tw := newTable(w, "scenario\tmode\tpods\tconns\tcalls/s\tready→fair\t(1s)\timbalance\tconns/pod\tfailed\tdialled\tmoved before\tafter\tpast growth\tcpu/pod %\tloadgen %\thost cores\tstartup\t",
		fmt.Sprintf("\nFleet: a Deployment scaled by about 10 %% through the ClusterIP, %d client connections per pod of the scaled fleet (fair: %d each).", fleetConnsPerPod, fleetConnsPerPod),
		"ready→fair: from the new pods being endpoints until their trailing 5 s (1 s) share of the calls is >= 0.8 x fair for good. imbalance: max/mean calls per pod over the last 30 s.",
		"conns/pod: client connections of the busiest / the mean pod at the end. moved before, after, past growth: connections dialled per pod per minute (over the seconds given) in the second half of the time before the scale event, after reaching fair, and past growth: from when the pods' 30 s growth grace has ended (30 s after their DNS poll saw the new pods, and 2 s; 34.5 s for 50 → 60) to the end (-: the run ended first, or not fair share).",
		fmt.Sprintf("cpu: server CPU per pod (mean / busiest), load generator and whole host over the imbalance window; startup: the initial pods, %d at a time.", fleetStartBatch))
	for _, r := range fleet {
		s, f, fr := r.Summary, r.Summary.Fleet, r.Fleet
		host := "-"
		if f.HostCores > 0 {
			host = fmt.Sprintf("%.2f of %d", f.HostCores, fr.CPUs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d→%d\t%d\t%.0f\t%s\t(%s)\t%.2f\t%d/%.2f\t%s\t%d\t%s\t%s\t%s\t%.2f/%.2f\t%.1f\t%s\t%.1fs\t\n",
			r.label(), r.Mode, fr.Pods, fr.ScaledTo, r.Clients, r.Rate, fmtSecs(s.TimeToFair), fmtSecs(s.TimeToFair1s),
			s.Imbalance, f.ConnsMax, f.ConnsMean, failedText(s), s.Dials, f.MovedBefore, f.Moved, f.MovedPastGrowth,
			f.ServerCPUMean, f.ServerCPUMax, f.LoadGenCPU, host, fr.StartupS)
	}
	tw.Flush()
	for _, r := range fleet {
		if n := r.Fleet.NeighTableFulls; n > 0 {
			fmt.Fprintf(w, "  %s/%s: the kernel's neighbour table was full %d times (packets dropped): raise net.ipv4.neigh.default.gc_thresh3.\n", r.label(), r.Mode, n)
		}
	}
}
