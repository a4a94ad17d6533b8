package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// concurrency is the number of calls each client keeps in flight.
const concurrency = 4

type clientTest struct {
	name string
	run  func(t *testing.T, sc scenario)
}

// TestClientsAcrossRotation runs every client, in parallel, each against its
// own example server that rotates every connection every second.
func TestClientsAcrossRotation(t *testing.T) {
	t.Parallel()
	runClients(t, byAge, append(grpcLibraries(), clientTest{"grpcurl", testGRPCurl}, clientTest{"curl-rest", testCurl}))
}

// TestClientsAcrossRapidRotation asks the server to send every connection
// away 20 times a second. grpc-js retries a call refused by a GOAWAY
// transparently only once, so a GOAWAY on a connection that has just replaced
// another one used to fail calls (about 0.5 %); the server now leaves
// connections younger than server.DefaultRotateMinAge alone, and no client
// needs a retry policy.
func TestClientsAcrossRapidRotation(t *testing.T) {
	t.Parallel()
	runClients(t, rapid, grpcLibraries())
}

// grpcLibraries are the clients of the gRPC libraries.
func grpcLibraries() []clientTest {
	return []clientTest{
		{"grpc-go", testGRPCGo},
		{"grpc-js", func(t *testing.T, sc scenario) { testGRPCJS(t, sc) }},
		{"python-grpcio", testPython},
	}
}

func runClients(t *testing.T, sc scenario, clients []clientTest) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, sc)
		})
	}
}

func testGRPCGo(t *testing.T, sc scenario) {
	p := startServer(t, sc, "grpc-go", false)
	opts := append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(p.grpc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := hellov1.NewHelloClient(cc)
	tl := newTally("grpc-go", grpc.Version)
	callWhileRotating(t, sc, p, tl, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := client.Hi(ctx, &hellov1.HiRequest{ToWho: "grpc-go"})
		if err != nil {
			tl.fail(status.Code(err).String(), err.Error())
			return
		}
		tl.ok(resp.GetFromWho())
	})
}

// callWhileRotating has concurrency callers make calls back to back for
// callDuration while the scenario rotates p's connections, then checks the
// run against the tally the calls kept.
func callWhileRotating(t *testing.T, sc scenario, p *proc, tl *tally, call func()) {
	stopRotating := p.rotating(t, sc)
	begin := time.Now()
	stop := begin.Add(callDuration())
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(stop) {
				call()
			}
		})
	}
	wg.Wait()
	ran := time.Since(begin)
	stopRotating()
	checkRun(t, sc, p, tl.summary(), p.stats(t), ran)
}

func testGRPCJS(t *testing.T, sc scenario, args ...string) {
	node, err := exec.LookPath("node")
	if err != nil {
		testkit.Missing(t, "Node.js (node)", "apt-get install nodejs npm")
	}
	dir := filepath.Join(repoRoot, "example", "interop", "node")
	npmCI(t, dir)
	p := startServer(t, sc, "grpc-js", false)
	runScript(t, sc, p, dir, node, append([]string{"hi.js"}, args...)...)
}

// npmCI installs node/package-lock.json into node/node_modules, unless
// node_modules is already at least as new as the lock file (npm ci rewrites
// node_modules/.package-lock.json).
func npmCI(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		testkit.Missing(t, "npm", "apt-get install npm")
	}
	t.Logf("npm ci in %s", dir)
	if _, err := command(context.Background(), dir, 5*time.Minute, npm, "ci", "--no-audit", "--no-fund"); err != nil {
		t.Fatalf("npm ci: %v", err)
	}
}

func testPython(t *testing.T, sc scenario) {
	python := pythonWithGRPC()
	if python == "" {
		testkit.Missing(t, "Python 3 with grpcio", "apt-get install python3-grpcio")
	}
	p := startServer(t, sc, "python", false)
	runScript(t, sc, p, filepath.Join(repoRoot, "example", "interop", "python"), python, "hi.py")
}

// pythonWithGRPC returns the first of Debian's /usr/bin/python3 (where
// python3-grpcio installs) and the python3 on PATH that imports grpc.
func pythonWithGRPC() string {
	for _, name := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import grpc").Run() == nil {
			return path
		}
	}
	return ""
}

// runScript runs a client script that prints a JSON summary (node/hi.js,
// python/hi.py) against p and checks its run. args are the script and its
// own arguments.
func runScript(t *testing.T, sc scenario, p *proc, dir, interpreter string, args ...string) {
	t.Helper()
	secs := strconv.FormatFloat(callDuration().Seconds(), 'f', -1, 64)
	args = append(args, "--target", p.grpc, "--seconds", secs, "--concurrency", strconv.Itoa(concurrency))
	stopRotating := p.rotating(t, sc)
	begin := time.Now()
	out, err := command(context.Background(), dir, callDuration()+time.Minute, interpreter, args...)
	ran := time.Since(begin)
	stopRotating()
	if err != nil {
		t.Fatalf("%s: %v\noutput: %s", args[0], err, out)
	}
	var s summary
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("%s printed %q, not a JSON summary: %v", args[0], out, err)
	}
	checkRun(t, sc, p, s, p.stats(t), ran)
}

func testGRPCurl(t *testing.T, sc scenario) {
	// go tool -n builds grpcurl (cached after the first time) and prints
	// where the binary is, so the loop below does not pay go tool's start.
	// tools/go.mod is outside the go.work workspace: GOWORK=off.
	build := exec.Command(goTool(), "tool", "-modfile=tools/go.mod", "-n", "grpcurl")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "GOWORK=off")
	out, err := build.Output()
	if err != nil {
		t.Fatalf("building grpcurl from tools/go.mod: %v", err)
	}
	grpcurl := strings.TrimSpace(string(out))
	p := startServer(t, sc, "grpcurl", false)
	run := func(args ...string) ([]byte, error) {
		return command(context.Background(), "", 30*time.Second, grpcurl, append([]string{"-plaintext"}, args...)...)
	}

	out, err = run(p.grpc, "list")
	if err != nil {
		t.Fatal(err)
	}
	services := strings.Fields(string(out))
	for _, want := range []string{"hello.v1.Hello", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("grpcurl list (reflection) = %q, want %s among them", services, want)
		}
	}
	out, err = run("-d", `{"service":""}`, p.grpc, "grpc.health.v1.Health/Check")
	if err != nil || !strings.Contains(string(out), `"SERVING"`) {
		t.Errorf("grpcurl Health/Check: %v, output %q; want SERVING", err, out)
	}

	// A stream that outlives its connection: the server ends it cleanly
	// (status OK) when the connection drains, so grpcurl exits 0.
	begin := time.Now()
	out, err = run("-d", `{"toWho":"x","intervalMs":50}`, p.grpc, "hello.v1.Hello/HiStream")
	if err != nil {
		t.Errorf("grpcurl HiStream across a rotation: %v; want the stream ended cleanly", err)
	} else if n := strings.Count(string(out), `"fromWho": "`+p.name+`"`); n == 0 {
		t.Errorf("grpcurl HiStream printed %q, want greetings from %s", out, p.name)
	} else {
		t.Logf("grpcurl HiStream: %d greetings, ended cleanly by the drain after %v", n, time.Since(begin).Round(time.Millisecond))
	}

	// grpcurl opens a connection per run, too short for an age rotation to
	// reach it, so this checks calls during other rotations, not reconnects.
	tl := newTally("grpcurl", "tools/go.mod")
	stop := time.Now().Add(callDuration())
	for time.Now().Before(stop) {
		out, err := run("-d", `{"toWho":"x"}`, p.grpc, "hello.v1.Hello/Hi")
		if err != nil {
			tl.fail("exit", err.Error())
			continue
		}
		var resp struct{ FromWho string }
		if err := json.Unmarshal(out, &resp); err != nil {
			tl.fail("output", fmt.Sprintf("%q: %v", out, err))
			continue
		}
		tl.ok(resp.FromWho)
	}
	s := tl.summary()
	t.Logf("grpcurl: %d calls of hello.v1.Hello/Hi, %d failed", s.Calls, s.Calls-s.OK)
	if s.Calls == 0 || s.OK != s.Calls {
		t.Errorf("grpcurl: %d of %d calls failed: %q", s.Calls-s.OK, s.Calls, s.FirstErrors)
	}
	for who := range s.ServedBy {
		if who != p.name {
			t.Errorf("grpcurl: an answer from %q, want %q", who, p.name)
		}
	}
}

// testCurl calls the REST gateway with curl; the gateway's own grpc-go
// connection to the server is what rotates.
func testCurl(t *testing.T, sc scenario) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testkit.Missing(t, "curl", "apt-get install curl")
	}
	p := startServer(t, sc, "curl", true)
	version := "unknown"
	if out, err := command(context.Background(), "", 10*time.Second, curl, "--version"); err == nil {
		if f := strings.Fields(string(out)); len(f) > 1 {
			version = f[1] // "curl 7.88.1 (x86_64-pc-linux-gnu) …"
		}
	}
	tl := newTally("curl", version)
	url := "http://" + p.http + "/v1/hi"
	callWhileRotating(t, sc, p, tl, func() {
		out, err := command(context.Background(), "", 10*time.Second, curl, "-sS", "-X", "POST", url,
			"-d", `{"toWho":"x"}`, "-w", `\n%{http_code}`)
		if err != nil {
			tl.fail("curl", err.Error())
			return
		}
		i := strings.LastIndexByte(string(out), '\n')
		body, code := string(out[:max(i, 0)]), string(out[i+1:])
		var resp struct{ FromWho string }
		if code != "200" || json.Unmarshal([]byte(body), &resp) != nil {
			tl.fail("HTTP "+code, body)
			return
		}
		tl.ok(resp.FromWho)
	})
}
