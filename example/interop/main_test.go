package interop

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"

	dto "github.com/prometheus/client_model/go"
)

var duration = flag.Duration("interop.duration", 10*time.Second, "how long each client calls the rotating server (-short: 3s)")

// scenario is how the server rotates connections while a client calls it.
type scenario struct {
	name       string
	serverArgs []string
	// rotateEvery, when positive, makes the test POST /rotate?spread=0s to
	// the admin endpoint this often during the calls: every connection open
	// then, however young, is told to go away.
	rotateEvery time.Duration
	reason      string // the GOAWAY reason the run must show: "age" or "admin"
}

var (
	// byAge: every connection is told to go away after about a second
	// (±10 %); calls in flight get two seconds to finish.
	byAge = scenario{
		name:       "age",
		serverArgs: []string{"-max-connection-age", "1s", "-max-connection-age-grace", "2s", "-shutdown-delay", "off", "-drain-timeout", "2s"},
		reason:     "age",
	}
	// rapid: no age rotation, but every connection is sent away 20 times a
	// second, so connections are often told to go away moments after they
	// open, while calls refused by the previous GOAWAY wait for them.
	rapid = scenario{
		name:        "rapid",
		serverArgs:  []string{"-max-connection-age", "never", "-max-connection-age-grace", "2s", "-shutdown-delay", "off", "-drain-timeout", "2s"},
		rotateEvery: 50 * time.Millisecond,
		reason:      "admin",
	}
)

var (
	repoRoot     string // the module root, where tools/go.mod is
	serverBinary string // the example server, built by TestMain
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The clients mostly wait on their own processes and servers: run them
	// all at once unless -parallel says otherwise (its default is GOMAXPROCS).
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "10")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	repoRoot = testkit.RepoRoot()
	dir, err := testkit.BuildDir("rotor-interop-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	serverBinary, err = testkit.Build(dir, "github.com/rotorkit/rotor/example/server")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// goTool is the go command; go test puts its own toolchain first in PATH.
func goTool() string { return "go" }

// callDuration is how long each client calls.
func callDuration() time.Duration {
	if testing.Short() && *duration > 3*time.Second {
		return 3 * time.Second
	}
	return *duration
}

// proc is a running example server.
type proc struct {
	*testkit.Process
	name  string // its POD_NAME, which every answer carries
	grpc  string
	http  string // empty without the REST gateway
	admin string
}

// startServer starts the example server on loopback ports with the
// scenario's arguments and waits until its admin endpoint answers. withREST
// starts the gateway. Readiness is read from the admin listener so that no
// gRPC connection but the client's is ever counted.
func startServer(t *testing.T, sc scenario, client string, withREST bool) *proc {
	t.Helper()
	name := "interop-" + client + "-" + sc.name
	p := &proc{name: name, grpc: testkit.FreeAddr(t), admin: testkit.FreeAddr(t)}
	if withREST {
		p.http = testkit.FreeAddr(t)
	}
	cmd := exec.Command(serverBinary, append([]string{"-grpc-addr", p.grpc, "-http-addr", p.http, "-admin-addr", p.admin}, sc.serverArgs...)...)
	cmd.Env = append(os.Environ(), "POD_NAME="+name)
	p.Process = testkit.Start(t, "server "+name, cmd)
	p.WaitHTTP(t, "http://"+p.admin+"/stats", 15*time.Second)
	if withREST {
		waitListening(t, p.http)
	}
	return p
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rotating runs the scenario's on-demand rotations, if any, until the
// returned stop is called; stop returns how many POST /rotate succeeded.
func (p *proc) rotating(t *testing.T, sc scenario) (stop func() int) {
	t.Helper()
	if sc.rotateEvery <= 0 {
		return func() int { return 0 }
	}
	done := make(chan struct{})
	count := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(sc.rotateEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				count <- n
				return
			case <-tick.C:
			}
			resp, err := http.Post("http://"+p.admin+"/rotate?spread=0s", "", nil)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				n++
			}
		}
	}()
	return func() int {
		close(done)
		n := <-count
		t.Logf("POST /rotate?spread=0s every %v: %d times", sc.rotateEvery, n)
		return n
	}
}

// connStats is what the server's metrics say about its connections.
type connStats struct {
	Opened     int            // rotor_connections_opened_total
	Goaways    map[string]int // rotor_rotations_total, by reason
	ClosedUsed int            // closed connections that carried at least one call
}

func (s connStats) String() string {
	return fmt.Sprintf("%d connections opened, GOAWAYs by reason %v, %d closed after carrying calls", s.Opened, s.Goaways, s.ClosedUsed)
}

// stats reads GET /metrics from the server's admin listener.
func (p *proc) stats(t *testing.T) connStats {
	t.Helper()
	families := testkit.Scrape(t, "http://"+p.admin+"/metrics")
	value := func(name string, labels ...string) int {
		f, ok := families[name]
		if !ok {
			t.Fatalf("/metrics has no %s", name)
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels...) {
				return int(m.GetCounter().GetValue())
			}
		}
		t.Fatalf("/metrics has no %s%v", name, labels)
		return 0
	}
	s := connStats{Goaways: map[string]int{}}
	s.Opened = value("rotor_connections_opened_total")
	for _, m := range families["rotor_rotations_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && m.GetCounter().GetValue() > 0 {
				s.Goaways[l.GetValue()] = int(m.GetCounter().GetValue())
			}
		}
	}
	if f, ok := families["rotor_connection_rpcs"]; ok && len(f.GetMetric()) == 1 {
		h := f.GetMetric()[0].GetHistogram()
		s.ClosedUsed = int(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0 {
				s.ClosedUsed -= int(b.GetCumulativeCount())
			}
		}
	} else {
		t.Fatal("/metrics has no rotor_connection_rpcs histogram")
	}
	return s
}

func hasLabels(m *dto.Metric, kv ...string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// summary is what every client reports, in the JSON that node/hi.js and
// python/hi.py print.
type summary struct {
	Client      string         `json:"client"`
	Version     string         `json:"version"`
	Calls       int            `json:"calls"`
	OK          int            `json:"ok"`
	Failures    map[string]int `json:"failures"`
	FirstErrors []string       `json:"firstErrors"`
	ServedBy    map[string]int `json:"servedBy"`
}

// tally collects a summary from concurrent callers.
type tally struct {
	mu sync.Mutex
	s  summary
}

func newTally(client, version string) *tally {
	return &tally{s: summary{Client: client, Version: version, Failures: map[string]int{}, ServedBy: map[string]int{}}}
}

func (t *tally) ok(servedBy string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Calls++
	t.s.OK++
	t.s.ServedBy[servedBy]++
}

func (t *tally) fail(kind, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Calls++
	t.s.Failures[kind]++
	if len(t.s.FirstErrors) < 5 {
		t.s.FirstErrors = append(t.s.FirstErrors, kind+": "+msg)
	}
}

func (t *tally) summary() summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s
}

// checkRun asserts what every client run must show: calls were made, none
// failed, every answer came from the server, and the server sent GOAWAYs
// for the scenario's reason and saw the client come back on new
// connections (at least one every two seconds of the run).
func checkRun(t *testing.T, sc scenario, p *proc, s summary, st connStats, ran time.Duration) {
	t.Helper()
	t.Logf("%s %s, %s rotation: %d calls in %v, %d failed; server: %v", s.Client, s.Version, sc.name, s.Calls, ran.Round(time.Millisecond), s.Calls-s.OK, st)
	if s.Calls == 0 {
		t.Errorf("%s made no call", s.Client)
	}
	if s.OK != s.Calls || len(s.Failures) > 0 {
		t.Errorf("%s: %d of %d calls failed while the server rotated connections: %v; first errors: %q",
			s.Client, s.Calls-s.OK, s.Calls, s.Failures, s.FirstErrors)
	}
	for who, n := range s.ServedBy {
		if who != p.name {
			t.Errorf("%s: %d answers from %q, want every answer from %q", s.Client, n, who, p.name)
		}
	}
	want := int(ran / (2 * time.Second))
	if st.Goaways[sc.reason] < want {
		t.Errorf("the server sent %d GOAWAYs for reason %s in %v, want at least %d", st.Goaways[sc.reason], sc.reason, ran, want)
	}
	if st.ClosedUsed < want {
		t.Errorf("%s carried calls on %d closed connections in %v, want at least %d: it did not reconnect after GOAWAY",
			s.Client, st.ClosedUsed, ran, want)
	}
}

// command runs name with args in dir, bounded by timeout, and returns its
// standard output; a failure carries its standard error.
func command(ctx context.Context, dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) || ctx.Err() != nil {
			return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, err
	}
	return out, nil
}
