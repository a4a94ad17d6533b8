package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Missing skips a test that needs what, which is not installed, or fails it
// where tools/install-deps.sh ran as root and so should have installed it
// (with install).
func Missing(t testing.TB, what, install string) {
	t.Helper()
	stamp := filepath.Join(RepoRoot(), ".cache", "install-deps-root")
	if _, err := os.Stat(stamp); err == nil {
		t.Fatalf("%s is missing although tools/install-deps.sh ran as root (%s exists); it should have installed it (%s)", what, stamp, install)
	}
	t.Skipf("%s is missing: run tools/install-deps.sh as root (it runs %s)", what, install)
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a process the test is about to start.
//
// The port comes from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default): the kernel hands
// those ports to outgoing connections and to listeners on port 0, so one of
// them could take the port between this call and the process binding it. A
// CI run once lost a test that way ("bind: address already in use") while
// other packages' tests opened thousands of connections. Ports from
// freePortFloor up to the range's start are tried at random; only another
// test that picks the same port in the same moment can still collide. Where
// the range leaves too little room, the port is the kernel's choice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	if lo := ephemeralStart(); lo-freePortFloor >= 1000 {
		for range 100 {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortFloor+rand.IntN(lo-freePortFloor)))
			if l, err := net.Listen("tcp", addr); err == nil {
				l.Close()
				return addr
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freePortFloor is the lowest port FreeAddr picks: above the well-known
// ports the lab's own components use (etcd 2379, kube-apiserver 6443).
const freePortFloor = 20000

// ephemeralStart returns the first port of the kernel's ephemeral range, or
// 0 where it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

// Kustomize returns what "kustomize build ." (or "kubectl kustomize .")
// prints in the test's directory: what kubectl apply -k would send. The
// test is skipped, with skipNote added to the reason, when neither program
// is installed, and fails when the build does.
func Kustomize(t testing.TB, skipNote string) []byte {
	t.Helper()
	var cmd *exec.Cmd
	if path, err := exec.LookPath("kustomize"); err == nil {
		cmd = exec.Command(path, "build", ".")
	} else if path, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.Command(path, "kustomize", ".")
	} else {
		t.Skip("neither kustomize nor kubectl is installed" + skipNote)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return out
}

// DeadPID returns the PID of a process that has surely ended: a child that
// has exited and been reaped.
func DeadPID(t testing.TB) int {
	t.Helper()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	return dead.Process.Pid
}

// Buffer collects a process's output; it is safe to read while the process
// writes.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Build builds the package with import path pkg (such as
// "github.com/rotorkit/rotor/example/server") into dir and returns the
// binary's path. It uses the go command in PATH, where go test puts its own
// toolchain first, from the test's directory, so that the module or
// workspace of the test decides the versions.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// A Process is a program a test started with Start. It is killed, if still
// running, when the test ends, and its output goes to the test log if the
// test failed.
type Process struct {
	Cmd  *exec.Cmd
	Log  *Buffer // stdout and stderr
	name string
	done chan struct{}
	err  error
}

// Start starts cmd, named name in messages, with its output in Log.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Log: &Buffer{}, name: name, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Log.String())
		}
	})
	return p
}

// Done is closed when the process has exited; Err then says how.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns what exec.Cmd.Wait said.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// WaitHTTP waits until GET url answers 200 OK. The test fails if the process
// exits first or timeout passes.
func (p *Process) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within %v: %v", p.name, url, timeout, err)
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before %s answered", p.name, p.err, url) // Start's cleanup logs its output
		case <-time.After(50 * time.Millisecond):
		}
	}
}
