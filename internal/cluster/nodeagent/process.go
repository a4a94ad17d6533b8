package nodeagent

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

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
// whatever it forked, as a runtime's kill of a container's cgroup does. It
// does not die with the agent: a runtime's containers outlive kubelet.
func startProcess(name string, l launch) (*proc.Process, error) {
	argv := l.argv
	if !l.creds.keepsRootPower {
		setpriv, err := netns.FindTool("setpriv")
		if err != nil {
			return nil, fmt.Errorf("%w (apt-get install util-linux)", err)
		}
		argv = l.creds.setprivArgs(setpriv, argv)
	}
	argv, err := netns.ExecArgs(l.netns, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	// 0o640, as kubelet writes container logs.
	return proc.Start(proc.Spec{Name: name, Argv: argv, Env: l.env, Dir: l.dir, LogPath: l.logPath, LogMode: 0o640})
}

// exitStatus returns how a container's run ended as a runtime reports it:
// the program's exit code, or 128+N when signal N ended it, and N.
func exitStatus(p *proc.Process) (code, signal int32) {
	_, state, err := p.Ended()
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
