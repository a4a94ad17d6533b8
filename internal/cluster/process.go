package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/cluster/netns"
)

// component is a process the harness started. It is reaped by a goroutine,
// so its PID cannot be reused while the harness may still signal it.
type component struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	grace   time.Duration // how long Close waits after SIGTERM; 0 means stopGrace
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
}

// startComponent starts argv with its output in logPath. With podExec
// false the process starts inside namespace ns by netns.Start (a node
// component, keeping the harness's mount namespace); with podExec true argv
// must be an "ip netns exec" command line (a pod).
func startComponent(ns, name, logPath string, argv []string, podExec bool) (*component, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: log for %s: %w", name, err)
	}
	// The child has its own copy of the descriptor.
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = componentEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group keeps a terminal's Ctrl-C away, so that
		// Close decides when and how each component stops.
		Setpgid: true,
		// If the harness dies without Close, its components die with it; the
		// next New (or CleanStale) removes the namespaces they leave.
		Pdeathsig: syscall.SIGKILL,
	}
	if podExec {
		err = cmd.Start()
	} else {
		err = netns.Start(ns, cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: start %s: %w", name, err)
	}
	c := &component{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
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

// exited reports whether the process has exited and been reaped.
func (c *component) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to c.grace (stopGrace when zero) for the
// exit, then kills the process group (so helpers it forked go too) and
// waits for the exit.
func (c *component) stop() {
	grace := c.grace
	if grace == 0 {
		grace = stopGrace
	}
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-c.done:
		case <-timer.C:
		}
	}
	// The group outlives its leader only while members remain, so this is
	// safe after the leader exited; its PGID is its PID (Setpgid above).
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// failure returns an error naming the component, why it failed, how it
// ended if it did, and the tail of its log.
func (c *component) failure(why error) error {
	state := "still running"
	if c.exited() {
		state = "exited: " + exitString(c.waitErr)
	}
	return fmt.Errorf("cluster: %s (pid %d, %s) did not become ready: %w\n--- last lines of %s ---\n%s",
		c.name, c.cmd.Process.Pid, state, why, c.logPath, tail(c.logPath, 25))
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
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
		case <-c.done:
			return c.failure(errExited)
		case <-ctx.Done():
			return c.failure(fmt.Errorf("%w; last check: %v", context.Cause(ctx), last))
		case <-ticker.C:
		}
	}
}
