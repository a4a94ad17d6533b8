package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/server"
)

// headlessTarget is what a pod's client dials: the short name of the
// headless Service, resolved through the lab's DNS as a pod's resolv.conf
// would (search path, ndots 5).
const headlessTarget = "dns:///hello-headless:50051"

// TestHeadlessRolloutEveryClient replaces the one pod of a headless Service
// under calls from grpc-go, grpc-js and grpcio clients, each with its
// library's own DNS resolver. Every client re-resolves at most once per 30 s
// (grpc-go's rule, grpc-js's and C-core's dns_min_time_between_resolutions),
// and an age GOAWAY of the server started that window shortly before the
// rollout; until it ends the clients hold only the old pod's address. The
// server runs with the kit's defaults, and no call may fail: the old pod
// serves the clients that come back as a lame duck until they have moved.
func TestHeadlessRolloutEveryClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a rollout of headless clients takes 80 s")
	}
	if err := kubelab.Available(); err != nil {
		t.Skip(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testkit.Missing(t, "Node.js (node)", "apt-get install nodejs npm")
	}
	nodeDir := filepath.Join(repoRoot, "example", "interop", "node")
	npmCI(t, nodeDir)
	python := pythonWithGRPC()
	if python == "" {
		testkit.Missing(t, "Python 3 with grpcio", "apt-get install python3-grpcio")
	}
	dir := t.TempDir()
	client, err := testkit.Build(dir, "github.com/rotorkit/rotor/example/client")
	if err != nil {
		t.Fatal(err)
	}

	const rollAt, runFor = 35 * time.Second, 80 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lab, err := kubelab.New(ctx, kubelab.Config{
		Replicas: 1,
		// The server's defaults; only its listeners are the lab's.
		ServerCommand: func(kubelab.Pod) kubelab.Command {
			return kubelab.Command{Path: serverBinary, Args: []string{"-grpc-addr", ":50051", "-http-addr", "", "-admin-addr", "", "-log-calls=false"}}
		},
		TerminationGracePeriod: server.DefaultShutdownDelay + server.DefaultDrainTimeout + 10*time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", lab.Logs(4000))
		}
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	}()
	old := lab.Pods()[0]

	secs := strconv.Itoa(int(runFor.Seconds()))
	clients := []struct {
		name string
		cmd  *exec.Cmd
		go_  bool // the example client: a line per call, a summary at SIGINT
	}{
		{"grpc-go", lab.ClientCommand(ctx, client, "-target", headlessTarget, "-interval", "20ms", "-count", "0"), true},
		{"grpc-js", lab.ClientCommand(ctx, node, filepath.Join(nodeDir, "hi.js"), "--target", headlessTarget, "--seconds", secs, "--concurrency", "2"), false},
		{"python-grpcio", lab.ClientCommand(ctx, python, filepath.Join(repoRoot, "example", "interop", "python", "hi.py"), "--target", headlessTarget, "--seconds", secs, "--concurrency", "2"), false},
	}
	var wg sync.WaitGroup
	outs := make([]*testkit.Buffer, len(clients))
	errs := make([]error, len(clients))
	for i, c := range clients {
		outs[i] = &testkit.Buffer{}
		c.cmd.Stdout = outs[i]
		c.cmd.Stderr = os.Stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wg.Go(func() { errs[i] = c.cmd.Wait() })
	}
	goClient := clients[0].cmd
	defer func() {
		for _, c := range clients {
			_ = c.cmd.Process.Kill()
		}
		wg.Wait()
	}()

	time.Sleep(rollAt)
	fresh, err := lab.RollPod(ctx, old.Index)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rolled %s to %s at %v", old.Name, fresh.Name, rollAt)
	time.Sleep(runFor - rollAt)
	_ = goClient.Process.Signal(syscall.SIGINT)
	wg.Wait()

	for i, c := range clients {
		out := outs[i].String()
		var calls, failed int
		served := map[string]int{}
		if c.go_ {
			if errs[i] != nil {
				t.Errorf("%s: %v", c.name, errs[i])
			}
			for _, line := range strings.Split(out, "\n") {
				switch {
				case strings.Contains(line, " failed: "):
					calls++
					failed++
					if failed <= 3 {
						t.Logf("%s: %s", c.name, line)
					}
				case strings.Contains(line, " served by "):
					calls++
					name, _, _ := strings.Cut(strings.SplitN(line, " served by ", 2)[1], " ")
					served[name]++
				}
			}
		} else {
			if errs[i] != nil {
				t.Errorf("%s: %v\n%s", c.name, errs[i], out)
				continue
			}
			var s summary
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Errorf("%s printed %q, not a JSON summary: %v", c.name, out, err)
				continue
			}
			calls, served = s.Calls, s.ServedBy
			for _, n := range s.Failures {
				failed += n
			}
			if failed > 0 {
				t.Logf("%s: first errors %v", c.name, s.FirstErrors)
			}
		}
		t.Logf("%s: %d calls, %d failed, served by %v", c.name, calls, failed, served)
		if failed != 0 {
			t.Errorf("%s: %d of %d calls failed through the rollout, want 0", c.name, failed, calls)
		}
		if served[old.Name] == 0 || served[fresh.Name] == 0 {
			t.Errorf("%s: served by %v; want calls on both the old pod %s and the new %s", c.name, served, old.Name, fresh.Name)
		}
	}
}
