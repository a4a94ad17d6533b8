package cluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// component is a process the harness started, and how long Close gives it
// after SIGTERM.
type component struct {
	*proc.Process
	grace time.Duration // 0 means stopGrace
}

// startComponent starts argv with its output in logPath. With podExec
// false the process starts inside namespace ns by netns.Start (a node
// component, keeping the harness's mount namespace); with podExec true argv
// must be an "ip netns exec" command line (a pod).
func startComponent(ns, name, logPath string, argv []string, podExec bool) (*component, error) {
	spec := proc.Spec{
		Name: name, Argv: argv, Env: componentEnv(), LogPath: logPath,
		// If the harness dies without Close, its components die with it; the
		// next New (or CleanStale) removes the namespaces they leave.
		DieWithParent: true,
	}
	if !podExec {
		spec.Start = func(cmd *exec.Cmd) error { return netns.Start(ns, cmd) }
	}
	p, err := proc.Start(spec)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &component{Process: p}, nil
}

// componentEnv is the environment of every component: the harness's, with
// /usr/sbin and /sbin on PATH, where kube-proxy finds iptables, nft and
// conntrack.
func componentEnv() []string {
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = kv + ":/usr/sbin:/sbin"
			return env
		}
	}
	return append(env, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
}

// stop sends SIGTERM, waits up to c.grace (stopGrace when zero) for the
// exit, then kills the process group (so helpers it forked go too) and
// waits for the exit.
func (c *component) stop() {
	_, _ = c.Stop(context.Background(), syscall.SIGTERM, cmp.Or(c.grace, stopGrace))
}

// failure returns an error naming the component, why it failed, how it
// ended if it did, and the tail of its log.
func (c *component) failure(why error) error {
	state := "still running"
	if c.Exited() {
		state = "exited: " + c.ExitStatus()
	}
	return fmt.Errorf("cluster: %s (pid %d, %s) did not become ready: %w\n--- last lines of %s ---\n%s",
		c.Name(), c.PID(), state, why, c.LogPath(), tail(c.LogPath(), 25))
}

// tail returns the last n lines of a file, each at most 400 bytes.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = append(l[:400:400], "…"...)
		}
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// errExited is the readiness error of a component that is no longer running.
var errExited = errors.New("it exited")

// waitReady polls check every 100 ms until it returns nil, the component
// exits, or ctx ends; the error then names the component and shows its log.
// Polling is how one learns that a server answers: there is no event to wait
// for.
func (c *component) waitReady(ctx context.Context, check func(context.Context) error) error {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(checkCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-c.Done():
			return c.failure(errExited)
		case <-ctx.Done():
			return c.failure(fmt.Errorf("%w; last check: %v", context.Cause(ctx), last))
		case <-ticker.C:
		}
	}
}
