package kubelab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a child the lab started inside one of its namespaces. The lab
// owns it by PID: it is reaped by a goroutine, so the PID cannot be reused
// while the lab may still signal it.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
}

// startProcess runs path with args inside the namespace ns via "ip netns
// exec", which execs the program so the child's PID is the program's own.
// Its stdout and stderr go to logPath.
func startProcess(ipPath, ns, name, logPath string, env []string, path string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubelab: log for %s: %w", name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed after Start.
	defer logFile.Close()

	cmd := exec.Command(ipPath, append([]string{"netns", "exec", ns, path}, args...)...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group keeps a terminal's Ctrl-C away from the lab's
		// processes, so the owner can shut them down in order.
		Setpgid: true,
		// If the owner dies without Close, its children die with it rather than
		// linger in namespaces nobody owns; CleanStale then removes the rest.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubelab: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited and been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process; a process that already exited is not an error.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kubelab: signal %v to %s (pid %d): %w", sig, p.name, p.pid(), err)
	}
	return nil
}

// stop sends sig, waits up to grace (or until ctx ends) for the process to
// exit, then kills its whole process group, so helpers it forked go too, and
// waits for the exit.
func (p *process) stop(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	err := p.signal(sig)
	p.await(ctx, grace)
	return err
}

// await waits up to grace (or until ctx ends) for the process to exit, then
// kills what is left of it.
func (p *process) await(ctx context.Context, grace time.Duration) {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	p.kill()
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() {
	p.killGroup()
	<-p.done
}

// killGroup sends SIGKILL to the process group the lab created for this
// process (its PGID is its PID, see Setpgid above). The group outlives its
// leader only while members remain, so this is safe after the leader exited.
func (p *process) killGroup() {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
}

// exitStatus describes how the process ended, for error messages.
func (p *process) exitStatus() string {
	if !p.exited() {
		return "running"
	}
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}
