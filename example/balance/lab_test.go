package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
	"github.com/rotorkit/rotor/internal/testkit"
)

// The test binary doubles as the load generator: runScenario starts it in
// the lab's client namespace with ROTOR_BALANCE_ROLE=load.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "load" {
		os.Exit(loadMain())
	}
	code := m.Run()
	for _, dir := range []string{serverBuild.dir, realBuild.dir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

var serverBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// labBinaries skips unless the host can run the lab, and builds the example
// server once per test run.
func labBinaries(t *testing.T) binaries {
	t.Helper()
	if err := kubelab.Available(); err != nil {
		t.Skip(err)
	}
	serverBuild.once.Do(func() {
		serverBuild.dir, serverBuild.err = testkit.BuildDir("rotor-balance-test-")
		if serverBuild.err == nil {
			serverBuild.bin, serverBuild.err = buildServer(context.Background(), serverBuild.dir)
		}
	})
	if serverBuild.err != nil {
		t.Fatal(serverBuild.err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return binaries{server: serverBuild.bin, load: exe}
}

// runShort runs a scenario in a mode with the -short parameters and checks
// that the lab left nothing behind.
func runShort(t *testing.T, scenarioName, modeName string) run {
	t.Helper()
	bins := labBinaries(t)
	sc, ok := findScenario(scenarioName)
	if !ok {
		t.Fatalf("no scenario %q", scenarioName)
	}
	m, ok := findMode(modeName)
	if !ok {
		t.Fatalf("no mode %q", modeName)
	}
	return runShortIn(t, sc, m, defaultParams(true), bins)
}

// runShortIn runs sc in m with p and checks that the lab left nothing
// behind.
func runShortIn(t *testing.T, sc scenario, m mode, p params, bins binaries) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	begun := time.Now()
	r, err := runScenario(ctx, sc, m, p, bins, func(s string) { t.Log(s) })
	if r.LabPrefix != "" {
		checkNoLeftovers(t, r)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The origin aligns the pods' log lines with the run's seconds.
	if end := begun.Add(time.Since(begun)); r.Origin.Before(begun) || r.Origin.Add(time.Duration(r.Duration*float64(time.Second))).After(end) {
		t.Errorf("the run's origin is %v, want the load's start, between %v and %v less the run's %v s", r.Origin, begun, end, r.Duration)
	}
	t.Log(summaryLine(r))
	return r
}

// checkNoLeftovers fails the test if a namespace of the run's lab or one of
// its processes (servers, load generator) is still there.
func checkNoLeftovers(t *testing.T, r run) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), r.LabPrefix) {
			t.Errorf("namespace %s is left after the run", e.Name())
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil && strings.Contains(string(out), r.LabPrefix) {
		t.Errorf("ip netns list still shows the lab %s:\n%s", r.LabPrefix, out)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), r.LabPrefix)); err == nil {
		t.Errorf("lab directory %s is left after the run", filepath.Join(os.TempDir(), r.LabPrefix))
	}
	// A real cluster's components and node agents name its directory in
	// their arguments.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), r.LabPrefix) {
			t.Errorf("process %s of the run's lab is still there: %q", filepath.Dir(f), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	for _, pid := range r.pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d of the run is still there", pid)
		}
	}
	stale, err := kubelab.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		if strings.HasPrefix(name, r.LabPrefix) {
			t.Errorf("kubelab.Leftovers reports %s", name)
		}
	}
}

func newPods(r run) []string {
	var names []string
	for _, p := range r.Pods {
		if p.New {
			names = append(names, p.Name)
		}
	}
	return names
}

// checkSeed asserts what a 2 → 5 scale-up must always show: without
// rotation the new pods get no call at all (conntrack, or the DNS client's
// resolved set, pins every connection to the old pods); with age rotation
// they get calls and no call fails.
func checkSeed(t *testing.T, r run, mode string) {
	t.Helper()
	if got := len(newPods(r)); got != 3 {
		t.Fatalf("the run started %d new pods, want 3 (pods %+v)", got, r.Pods)
	}
	if r.Summary.Calls == 0 {
		t.Fatal("no call succeeded")
	}
	switch mode {
	case "none":
		if r.Summary.NewPodCalls != 0 {
			t.Errorf("without rotation the new pods got %d calls after the scale event, want 0 (per pod: %v)",
				r.Summary.NewPodCalls, r.Summary.PerPod)
		}
	case "age":
		if r.Summary.NewPodCalls == 0 {
			t.Errorf("with age rotation the new pods got no calls (per pod: %v)", r.Summary.PerPod)
		}
		if r.Summary.Failed != 0 {
			t.Errorf("with age rotation %d calls failed, want 0: %v", r.Summary.Failed, r.Summary.FailedByCode)
		}
	}
}

func TestSeedClusterIP(t *testing.T) { testSeed(t, "seed-clusterip") }

func TestSeedHeadless(t *testing.T) { testSeed(t, "seed-headless") }

// testSeed runs a seed scenario without rotation and with age rotation.
func testSeed(t *testing.T, scenario string) {
	labBinaries(t)
	for _, mode := range []string{"none", "age"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			checkSeed(t, runShort(t, scenario, mode), mode)
		})
	}
}

// TestRollingRestart replaces every pod under load: with rotor's drain
// sequence (endpoint removed, NOT_SERVING, shutdown delay, GOAWAY, drain)
// no call may fail.
func TestRollingRestart(t *testing.T) {
	r := runShort(t, "rolling-restart", "age")
	if n := len(r.Events); n != 5 {
		t.Fatalf("%d replacements, want 5", n)
	}
	if got := len(newPods(r)); got != 5 {
		t.Fatalf("%d replacement pods, want 5", got)
	}
	if r.Summary.NewPodCalls == 0 {
		t.Fatal("the replacement pods got no calls: the run did not exercise the restart")
	}
	if r.Summary.Failed != 0 {
		t.Errorf("%d calls failed during the rolling restart, want 0: %v", r.Summary.Failed, r.Summary.FailedByCode)
	}
}

// TestRolloutHeadless is issue 13's case: dns:/// + round_robin clients
// whose last re-resolution (asked for by an age GOAWAY) is only seconds old
// when the pods they use are replaced. grpc-go holds its next resolution for
// up to 30 s, so the clients keep reconnecting to the old pods' addresses;
// the old pods serve them as lame ducks until they move. With the kit's
// defaults no call may fail, for one pod and for pods rolled 5 s apart.
func TestRolloutHeadless(t *testing.T) {
	labBinaries(t)
	for _, sc := range []string{"rollout-headless", "rolling-restart-headless"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			r := runShort(t, sc, "default")
			if got, want := len(newPods(r)), len(r.Pods)-len(r.FinalPods); got != len(r.FinalPods) || want != got {
				t.Fatalf("pods %+v, final %v: want every initial pod replaced", r.Pods, r.FinalPods)
			}
			if r.Summary.NewPodCalls == 0 {
				t.Fatal("the new pods got no calls: the clients never moved")
			}
			if r.Summary.Failed != 0 {
				t.Errorf("%d of %d calls failed through the rollout, want 0: %v", r.Summary.Failed, r.Summary.Calls+r.Summary.Failed, r.Summary.FailedByCode)
			}
		})
	}
}

// -logs keeps every log the lab wrote, the pods' under the real control
// plane's pods/ too, where each container's first log is a 0.log: copied
// by name alone, the last pod's overwrote the others'.
func TestCopyLogsKeepsEveryPodsLog(t *testing.T) {
	lab, dir := t.TempDir(), t.TempDir()
	files := map[string]string{
		"kube-proxy.log":                         "proxy",
		"pods/ns_hello-a_1/server/0.log":         "pod a",
		"pods/ns_hello-b_2/server/0.log":         "pod b",
		"pods/ns_hello-b_2/server/1.log":         "pod b, restarted",
		"pods/ns_hello-b_2/server/not-a-log.txt": "",
	}
	for name, text := range files {
		p := filepath.Join(lab, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyLogs(lab, filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		b, err := os.ReadFile(filepath.Join(dir, "run", name))
		if filepath.Ext(name) != ".log" {
			if err == nil {
				t.Errorf("%s copied; want only *.log", name)
			}
			continue
		}
		if err != nil || string(b) != text {
			t.Errorf("%s: %q (%v); want %q", name, b, err, text)
		}
	}
}

// A log copyLogs cannot read (here a link to a file that is gone, as a
// pod's log is when its directory goes while the walk runs) is an error
// that names it, and every other log is still copied: the walk stopped at
// the first such file before.
func TestCopyLogsCopiesPastALogItCannotRead(t *testing.T) {
	lab, dir := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(lab, "pods", "ns_hello-a_1", "server"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(lab, "pods", "ns_hello-a_1", "server", "0.log")
	if err := os.Symlink(filepath.Join(lab, "removed.log"), gone); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join("pods", "ns_hello-b_2", "server", "0.log")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(lab, kept)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lab, kept), []byte("pod b"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := copyLogs(lab, filepath.Join(dir, "run"))
	if err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("copyLogs: %v; want an error naming %s", err, gone)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "run", kept)); err != nil || string(b) != "pod b" {
		t.Errorf("%s: %q (%v); want it copied past the one it could not read", kept, b, err)
	}
}

// closedLab is the part of a lab closeLab uses: its log directory, and a
// Close that reports it was called.
type closedLab struct {
	dir    string
	err    error
	closed bool
}

func (l *closedLab) Dir() string  { return l.dir }
func (l *closedLab) Close() error { l.closed = true; return l.err }

// A log -logs cannot copy does not fail the run: its measurements stand,
// the run records what was not copied, the lab is closed, and only the
// lab's Close error is the run's error. It failed the whole run before,
// after the scenario's minutes had been measured. runScenario's deferred
// close calls closeLab with the run's -logs directory; this test calls
// closeLab alone, as that needs no lab.
func TestCloseLabKeepsTheRunWhenALogCannotBeCopied(t *testing.T) {
	lab, dir := t.TempDir(), t.TempDir()
	gone := filepath.Join(lab, "hello-a.log")
	if err := os.Symlink(filepath.Join(lab, "removed.log"), gone); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lab, "hello-b.log"), []byte("pod b"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &closedLab{dir: lab}
	var r run
	if err := closeLab(l, filepath.Join(dir, "run"), &r); err != nil {
		t.Errorf("closeLab: %v; want nil (a log not copied is no failed run)", err)
	}
	if !l.closed {
		t.Error("the lab was not closed")
	}
	if !strings.Contains(r.LogsError, gone) {
		t.Errorf("LogsError %q; want it to name %s", r.LogsError, gone)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "run", "hello-b.log")); err != nil || string(b) != "pod b" {
		t.Errorf("hello-b.log: %q (%v); want it copied", b, err)
	}
	// A log not copied and a lab that does not close: Close's error is
	// the run's, and the log is still named.
	closeErr := errors.New("namespace still in use")
	l = &closedLab{dir: lab, err: closeErr}
	r = run{}
	if err := closeLab(l, filepath.Join(dir, "again"), &r); !errors.Is(err, closeErr) || !strings.Contains(r.LogsError, gone) || !l.closed {
		t.Errorf("closeLab with a log it cannot copy and a failing Close: %v, LogsError %q, closed %v; want Close's error, %s named, true",
			err, r.LogsError, l.closed, gone)
	}
	// Without -logs nothing is copied; Close's error is the run's.
	l = &closedLab{dir: lab, err: closeErr}
	r = run{}
	if err := closeLab(l, "", &r); !errors.Is(err, closeErr) || r.LogsError != "" || !l.closed {
		t.Errorf("closeLab without -logs: %v, LogsError %q, closed %v; want Close's error, none, true", err, r.LogsError, l.closed)
	}
}

// Each run of one -logs invocation has its own directory: a scenario's
// variants (skewed-cost-headless with round_robin and with
// weighted_round_robin, one-heavy-client at k = 1, 5 and 10) ran in the
// same one before, and the last wrote over the others' pods' logs.
func TestLogsDirNameIsOnePerRun(t *testing.T) {
	seen := map[string]string{}
	for _, sc := range scenarios {
		for _, v := range sc.variants(params{}) {
			for _, m := range modes {
				name, run := logsDirName(v, m), label(v.name, v.spread, v.policy)+"/"+m.name
				if other, ok := seen[name]; ok {
					t.Errorf("%s and %s both log to %s", other, run, name)
				}
				if strings.ContainsAny(name, " /") {
					t.Errorf("%s logs to %q; want no space or slash", run, name)
				}
				seen[name] = run
			}
		}
	}
	if _, ok := seen["skewed-cost-headless-wrr-fair-share"]; !ok {
		t.Errorf("no run logs to skewed-cost-headless-wrr-fair-share; have %v", slices.Sorted(maps.Keys(seen)))
	}
}
