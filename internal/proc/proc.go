// Package proc runs the child processes of rotor's labs (internal/kubelab's
// pods, dnsmasq and nginx; internal/cluster's components and its node
// agents' containers): each leads a process group of its own, writes its
// output to a log file, and is reaped by a goroutine, so that its PID cannot
// be reused while the lab may still signal it. It stops as a container
// runtime stops a container: a signal, a grace period, then SIGKILL to the
// whole group, so that helpers it forked go too.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Spec says what to start and how.
type Spec struct {
	// Name names the process in errors, such as "dnsmasq". Required.
	Name string
	// Argv is the program, then its arguments. Required.
	Argv []string
	// Env is the environment; nil means this process's.
	Env []string
	// Dir is the working directory; "" means this process's.
	Dir string
	// LogPath is the file stdout and stderr are appended to; it and its
	// directory are created if missing. Required.
	LogPath string
	// LogMode is the permission bits of a new log file; 0 means 0o600.
	LogMode os.FileMode
	// DieWithParent has the kernel send SIGKILL to the process when its
	// owner dies, rather than let it linger in namespaces nobody owns.
	// Strictly, when the OS thread that started it ends: the Go runtime
	// keeps its threads for the life of the process, except one a goroutine
	// leaves locked (see netns.Start).
	DieWithParent bool
	// Start starts the command; nil means (*exec.Cmd).Start. netns.Start,
	// wrapped, starts it inside a network namespace.
	Start func(*exec.Cmd) error
}

// A Process is a child started by [Start]. Its methods are safe for
// concurrent use.
type Process struct {
	name      string
	logPath   string
	cmd       *exec.Cmd
	startedAt time.Time
	done      chan struct{} // closed once the process has been reaped
	endedAt   time.Time     // valid once done is closed
	waitErr   error         // valid once done is closed
}

// Start starts the process s describes, in a process group of its own, so
// that a terminal's Ctrl-C does not reach it and its owner decides when and
// how it stops.
func Start(s Spec) (*Process, error) {
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("proc: start %s: empty Argv", s.Name)
	}
	if err := os.MkdirAll(filepath.Dir(s.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("proc: log of %s: %w", s.Name, err)
	}
	mode := s.LogMode
	if mode == 0 {
		mode = 0o600
	}
	logFile, err := os.OpenFile(s.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, mode)
	if err != nil {
		return nil, fmt.Errorf("proc: log of %s: %w", s.Name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed
	// after the start. A file, unlike a pipe, makes os/exec start no copying
	// goroutine, which matters to netns.Start.
	defer logFile.Close()

	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	start := s.Start
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", s.Name, err)
	}
	p := &Process{name: s.Name, logPath: s.LogPath, cmd: cmd, startedAt: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.endedAt = time.Now()
		p.waitErr = err
		close(p.done)
	}()
	return p, nil
}

// Name returns the Spec's Name.
func (p *Process) Name() string { return p.name }

// PID returns the process ID, which is also the ID of its process group.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath returns the file its output goes to.
func (p *Process) LogPath() string { return p.logPath }

// StartedAt returns when Start started it.
func (p *Process) StartedAt() time.Time { return p.startedAt }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Ended returns, once Done is closed, when the process was reaped, its
// state (nil if it could not be waited for) and what exec.Cmd.Wait
// returned: nil for exit status 0.
func (p *Process) Ended() (at time.Time, state *os.ProcessState, err error) {
	<-p.done
	return p.endedAt, p.cmd.ProcessState, p.waitErr
}

// ExitStatus says how the process ended, for messages: "running",
// "exit status 0", "exit status 2", "signal: killed".
func (p *Process) ExitStatus() string {
	switch {
	case !p.Exited():
		return "running"
	case p.waitErr == nil:
		return "exit status 0"
	default:
		return p.waitErr.Error()
	}
}

// Signal sends sig to the process (not its group); one that has already
// exited is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("proc: signal %v to %s (pid %d): %w", sig, p.name, p.PID(), err)
	}
	return nil
}

// Stop sends sig, then does what [Process.Await] does. It reports whether
// the process had to be killed, and the error of sending sig.
func (p *Process) Stop(ctx context.Context, sig syscall.Signal, grace time.Duration) (killed bool, err error) {
	err = p.Signal(sig)
	return p.Await(ctx, grace), err
}

// Await waits up to grace, or until ctx ends, for the process to exit,
// then kills what is left of its process group (see [Process.Kill]). It
// reports whether the process itself was still running then.
func (p *Process) Await(ctx context.Context, grace time.Duration) (killed bool) {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	killed = !p.Exited()
	p.Kill()
	return killed
}

// Kill sends SIGKILL to the process group and waits for the process to
// exit. The group outlives its leader only while members remain, so this is
// safe, and still useful, after the leader exited.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	if !p.Exited() {
		// The leader may have left its group (setsid).
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}
