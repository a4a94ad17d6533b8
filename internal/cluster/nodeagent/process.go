package nodeagent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotorkit/rotor/internal/cluster/netns"
)

// process is a running container: one program in the pod's network
// namespace. It is reaped by a goroutine, so its PID cannot be reused while
// the agent may still signal it.
type process struct {
	cmd       *exec.Cmd
	startedAt time.Time
	done      chan struct{} // closed once reaped
	// Valid once done is closed.
	finishedAt time.Time
	exitCode   int32
	signal     int32 // the signal that ended it, or 0
}

// launch says how to start a container's program.
type launch struct {
	netns   string   // the pod's network namespace
	argv    []string // program and arguments, after $(VAR) expansion
	env     []string
	dir     string // working directory
	logPath string
	creds   credentials
}

// credentials are what the container's securityContext asks of its
// process, as setpriv(1) arguments.
type credentials struct {
	uid, gid       *int64
	groups         []int64
	noNewPrivs     bool
	dropAllCaps    bool
	dropCaps       []string // lowercase, without CAP_
	keepsRootPower bool     // nothing to change: run as the agent does
}

// resolveCredentials combines the pod's and the container's security
// contexts (the container's wins) with the image's USER, as kubelet and a
// runtime do. It refuses what runAsNonRoot forbids.
func resolveCredentials(pod *corev1.Pod, c *corev1.Container, img Image) (credentials, error) {
	var cr credentials
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	cr.uid = firstNonNil(csc.RunAsUser, psc.RunAsUser, img.UID)
	cr.gid = firstNonNil(csc.RunAsGroup, psc.RunAsGroup, img.GID)
	if cr.uid != nil && cr.gid == nil {
		cr.gid = new(int64) // a runtime's default group for a numeric user
	}
	cr.groups = append(cr.groups, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		cr.groups = append(cr.groups, *psc.FSGroup)
	}
	nonRoot := firstNonNil(csc.RunAsNonRoot, psc.RunAsNonRoot)
	if nonRoot != nil && *nonRoot && (cr.uid == nil || *cr.uid == 0) {
		return cr, configErrorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
	}
	if csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation {
		cr.noNewPrivs = true
	}
	if caps := csc.Capabilities; caps != nil {
		for _, d := range caps.Drop {
			name := strings.ToLower(strings.TrimPrefix(strings.ToUpper(string(d)), "CAP_"))
			if name == "all" {
				cr.dropAllCaps = true
			} else {
				cr.dropCaps = append(cr.dropCaps, name)
			}
		}
	}
	cr.keepsRootPower = cr.uid == nil && cr.gid == nil && len(cr.groups) == 0 && !cr.noNewPrivs && !cr.dropAllCaps && len(cr.dropCaps) == 0
	return cr, nil
}

func firstNonNil[T any](vs ...*T) *T {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// setprivArgs returns the setpriv(1) command line that applies cr, then
// runs argv.
func (cr credentials) setprivArgs(setpriv string, argv []string) []string {
	args := []string{setpriv}
	if cr.uid != nil {
		args = append(args, "--reuid="+strconv.FormatInt(*cr.uid, 10))
	}
	if cr.gid != nil {
		args = append(args, "--regid="+strconv.FormatInt(*cr.gid, 10))
	}
	if len(cr.groups) > 0 {
		gs := make([]string, len(cr.groups))
		for i, g := range cr.groups {
			gs[i] = strconv.FormatInt(g, 10)
		}
		args = append(args, "--groups="+strings.Join(gs, ","))
	} else if cr.uid != nil || cr.gid != nil {
		args = append(args, "--clear-groups")
	}
	if cr.noNewPrivs {
		args = append(args, "--no-new-privs")
	}
	switch {
	case cr.dropAllCaps:
		args = append(args, "--bounding-set=-all", "--inh-caps=-all")
	case len(cr.dropCaps) > 0:
		drop := make([]string, len(cr.dropCaps))
		for i, c := range cr.dropCaps {
			drop[i] = "-" + c
		}
		args = append(args, "--bounding-set="+strings.Join(drop, ","))
	}
	return append(append(args, "--"), argv...)
}

// startProcess starts a container's program in the pod's network namespace
// through "ip netns exec", which also bind-mounts the pod's resolv.conf over
// /etc/resolv.conf in a mount namespace of the process's own, then through
// setpriv, which takes on the container's user, groups and limits; both
// exec, so the PID is the program's. Its output is appended to logPath.
// The process leads a process group of its own, so that a SIGKILL reaches
// whatever it forked, as a runtime's kill of a container's cgroup does.
func startProcess(l launch) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(l.logPath), 0o755); err != nil {
		return nil, fmt.Errorf("container log: %w", err)
	}
	logFile, err := os.OpenFile(l.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("container log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	argv := l.argv
	if !l.creds.keepsRootPower {
		setpriv, err := netns.FindTool("setpriv")
		if err != nil {
			return nil, fmt.Errorf("%w (apt-get install util-linux)", err)
		}
		argv = l.creds.setprivArgs(setpriv, argv)
	}
	argv, err = netns.ExecArgs(l.netns, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = l.env
	cmd.Dir = l.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, startedAt: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.finishedAt = time.Now()
		p.exitCode, p.signal = exitStatus(cmd.ProcessState, err)
		close(p.done)
	}()
	return p, nil
}

// exitStatus returns a container's exit code as a runtime reports it: the
// program's status, or 128+N when signal N ended it.
func exitStatus(state *os.ProcessState, err error) (code, signal int32) {
	if state == nil {
		if err != nil {
			return 128, 0
		}
		return 0, 0
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal()), int32(ws.Signal())
	}
	return int32(state.ExitCode()), 0
}

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

// stop sends SIGTERM to the program, waits up to grace for it to exit,
// then sends SIGKILL to its process group and waits for the exit, as a
// runtime's StopContainer(timeout) does. It returns whether SIGKILL was
// needed.
func (p *process) stop(grace time.Duration) bool {
	if p.exited() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return false
	case <-timer.C:
	}
	p.kill()
	return true
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() {
	err := syscall.Kill(-p.pid(), syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}
