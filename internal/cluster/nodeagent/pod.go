package nodeagent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rotorkit/rotor/internal/cluster/podnet"
	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// The container state reasons kubelet reports
// (pkg/kubelet/container/sync_result.go, pkg/kubelet/images/types.go).
const (
	reasonContainerCreating = "ContainerCreating"
	reasonErrImagePull      = "ErrImagePull"
	reasonConfigError       = "CreateContainerConfigError"
	reasonRunError          = "RunContainerError"
	reasonCrashLoopBackOff  = "CrashLoopBackOff"
	reasonCompleted         = "Completed"
	reasonError             = "Error"
)

// containerIDScheme prefixes container IDs, as "containerd://" does; the
// rest is the container's PID on the host.
const containerIDScheme = "rotorlab://"

// ContainerPID returns the host PID in a containerID that the agent
// reported, or false if the ID is not one of the agent's.
func ContainerPID(containerID string) (int, bool) {
	rest, ok := strings.CutPrefix(containerID, containerIDScheme)
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(rest)
	return pid, err == nil && pid > 0
}

// container is the agent's record of one of a pod's containers.
type container struct {
	spec     corev1.Container
	image    Image
	imageErr error

	run      *proc.Process // the current or last run; nil before the first
	runID    string        // its containerID
	restarts int32
	ended    *corev1.ContainerStateTerminated // how run ended, once it has
	previous *corev1.ContainerStateTerminated // how the run before it ended
	// restartPending: run ended and the container runs again, after its
	// back-off.
	restartPending bool
	restartAt      time.Time
	waitReason     string // why it is not running, when it is not
	waitMessage    string
	killing        bool // a kill is under way (probe failure or deletion)

	results [3]result // per probeKind, for runID
	workers []*probeWorker
}

func (c *container) running() bool { return c.run != nil && c.ended == nil }

func (c *container) hasProbe(k probeKind) bool {
	switch k {
	case readiness:
		return c.spec.ReadinessProbe != nil
	case liveness:
		return c.spec.LivenessProbe != nil
	}
	return c.spec.StartupProbe != nil
}

func (c *container) started() bool {
	return c.running() && (!c.hasProbe(startup) || c.results[startup] == success)
}

// status reports the container as the API shows it.
func (c *container) status(podTerminal bool) corev1.ContainerStatus {
	s := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		ImageID:      containerIDScheme + "image/" + imageName(c.spec.Image),
		ContainerID:  c.runID,
		RestartCount: c.restarts,
	}
	if c.imageErr != nil {
		s.ImageID = ""
	}
	started := c.started()
	s.Started = &started
	switch {
	case c.running():
		s.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.run.StartedAt())}
		s.Ready = started && !podTerminal && (!c.hasProbe(readiness) || c.results[readiness] == success)
		if c.previous != nil {
			s.LastTerminationState.Terminated = c.previous
		}
	case c.ended != nil && c.restartPending:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waitReason, Message: c.waitMessage}
		s.LastTerminationState.Terminated = c.ended
	case c.ended != nil:
		s.State.Terminated = c.ended
		if c.previous != nil {
			s.LastTerminationState.Terminated = c.previous
		}
	default:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waitReason, Message: c.waitMessage}
	}
	return s
}

// exitNote tells a pod worker that a container's run ended.
type exitNote struct {
	c   *container
	run *proc.Process
}

// condemnNote asks a pod worker to kill a container that failed its
// liveness or startup probe.
type condemnNote struct {
	c     *container
	runID string
	kind  probeKind
}

// podWorker runs one pod, as kubelet's pod worker and runtime manager do
// for it: it makes the pod's sandbox (network namespace), starts its
// containers, restarts them by the pod's restartPolicy with back-off,
// runs their probes, and on deletion stops them (preStop, SIGTERM,
// grace, SIGKILL), removes the sandbox, reports the terminal status and
// deletes the pod for good. Its loop is the only writer of the pod's state
// but for probe results; mu guards both against the probe workers and the
// status manager, which read.
type podWorker struct {
	a   *Agent
	uid types.UID
	log *slog.Logger

	kick     chan struct{} // the pod changed or left the API
	exits    chan exitNote
	condemns chan condemnNote
	termDone chan struct{}

	mu            sync.Mutex
	pod           *corev1.Pod // the latest version seen
	goneFromAPI   bool
	net           podnet.Pod
	sandboxReady  bool
	startTime     metav1.Time
	containers    []*container
	terminating   bool
	terminal      bool // every container has stopped for good; the sandbox is gone
	probesStarted bool
	statusMu      sync.Mutex    // one status write at a time
	done          chan struct{} // closed when run returns
}

func newPodWorker(a *Agent, pod *corev1.Pod) *podWorker {
	pw := &podWorker{
		a:        a,
		uid:      pod.UID,
		log:      a.log.With("pod", pod.Namespace+"/"+pod.Name),
		kick:     make(chan struct{}, 1),
		exits:    make(chan exitNote, 8),
		condemns: make(chan condemnNote, 8),
		termDone: make(chan struct{}, 1),
		done:     make(chan struct{}),
		pod:      pod,
	}
	for _, spec := range pod.Spec.Containers {
		pw.containers = append(pw.containers, &container{spec: spec, waitReason: reasonContainerCreating})
	}
	return pw
}

// update hands the worker a newer version of its pod.
func (pw *podWorker) update(pod *corev1.Pod) {
	pw.mu.Lock()
	pw.pod = pod
	pw.mu.Unlock()
	pw.poke()
}

// removed tells the worker that its pod left the API without the final
// delete (a forced deletion).
func (pw *podWorker) removed() {
	pw.mu.Lock()
	pw.goneFromAPI = true
	pw.mu.Unlock()
	pw.poke()
}

func (pw *podWorker) poke() {
	select {
	case pw.kick <- struct{}{}:
	default:
	}
}

// run is the pod's life; it returns once the pod is gone from the API, or
// ctx ends (the agent stops: its pods keep running, as a kubelet's do).
func (pw *podWorker) run(ctx context.Context) {
	pw.log.Info("pod added")
	defer close(pw.done)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pw.kick:
		case n := <-pw.exits:
			pw.recordExit(n.c, n.run)
		case n := <-pw.condemns:
			pw.condemn(ctx, n)
		case <-retry.C:
		case <-pw.termDone:
			if pw.finishTermination(ctx) {
				return
			}
			retry.Reset(time.Second)
			continue
		}
		pw.mu.Lock()
		deleting := pw.pod.DeletionTimestamp != nil || pw.goneFromAPI
		terminating, terminal := pw.terminating, pw.terminal
		pw.mu.Unlock()
		switch {
		case deleting && terminal:
			if pw.finishTermination(ctx) {
				return
			}
			retry.Reset(time.Second)
		case deleting && !terminating:
			pw.beginTermination(ctx)
		case !deleting && !terminal && !terminating:
			if wait := pw.sync(ctx); wait > 0 {
				retry.Reset(wait)
			}
		}
		pw.a.status.dirty(pw)
	}
}

// sync makes the pod's actual state what its spec asks, as far as it can
// now, and returns when to try again (0: nothing pending).
func (pw *podWorker) sync(ctx context.Context) time.Duration {
	pw.mu.Lock()
	pod := pw.pod
	sandboxReady := pw.sandboxReady
	pw.mu.Unlock()
	if !sandboxReady {
		if err := pw.makeSandbox(ctx, pod); err != nil {
			pw.log.Error("make the pod's sandbox", "err", err)
			pw.a.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return podRetryPeriod
		}
	}
	if err := unsupported(pod); err != nil {
		pw.mu.Lock()
		for _, c := range pw.containers {
			c.waitReason, c.waitMessage = reasonConfigError, err.Error()
		}
		pw.mu.Unlock()
		pw.a.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return 0 // the spec of a pod does not change
	}
	if !pw.probesStarted {
		pw.startProbes(ctx)
	}
	var wait time.Duration
	later := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	for _, c := range pw.containers {
		pw.mu.Lock()
		skip := c.running() || c.killing || (c.ended != nil && !c.restartPending)
		pw.mu.Unlock()
		if skip {
			continue
		}
		if c.ended != nil {
			// A restart: back off as kubelet does, from the last exit.
			key := backoffKey(pod, c)
			if pw.a.backoff.IsInBackOffSince(key, c.ended.FinishedAt.Time) {
				d := pw.a.backoff.Get(key)
				pw.mu.Lock()
				c.waitReason = reasonCrashLoopBackOff
				c.waitMessage = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", d, c.spec.Name, pod.Name, pod.Namespace, pod.UID)
				c.restartAt = c.ended.FinishedAt.Add(d)
				pw.mu.Unlock()
				pw.a.event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.spec.Name, pod.Name, pod.Namespace, pod.UID)
				later(time.Until(c.restartAt))
				continue
			}
			pw.a.backoff.Next(key, c.ended.FinishedAt.Time)
		}
		if err := pw.startContainer(ctx, pod, c); err != nil {
			later(podRetryPeriod)
		}
	}
	return wait
}

// unsupported says why the agent cannot run a pod as its spec asks, or
// returns nil. The service-account token volume that admission adds to
// pods that do not opt out is left unmounted rather than refused: the lab's
// programs do not read it.
func unsupported(pod *corev1.Pod) error {
	if len(pod.Spec.InitContainers) > 0 {
		return fmt.Errorf("init containers are not supported by the lab's node agent")
	}
	tokenVolume := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if p := v.Projected; p != nil && slices.ContainsFunc(p.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil }) {
			tokenVolume[v.Name] = true
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if !tokenVolume[m.Name] {
				return fmt.Errorf("container %s mounts volume %q: volumes are not supported by the lab's node agent", c.Name, m.Name)
			}
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				return fmt.Errorf("container %s asks for hostPort %d: not supported by the lab's node agent", c.Name, p.HostPort)
			}
		}
	}
	return nil
}

// backoffKey identifies a container for the crash-loop back-off, as
// kubelet's GetBackoffKey does: a new pod or a changed container starts
// afresh.
func backoffKey(pod *corev1.Pod, c *container) string {
	return fmt.Sprintf("%s_%s_%s_%s", pod.Name, pod.Namespace, pod.UID, c.spec.Name)
}

var unsafeNetnsChars = regexp.MustCompile(`[^a-z0-9-]+`)

// netnsName names the pod's network namespace: the agent's prefix, the
// pod's name cut to 40 bytes (dots made dashes) and 5 characters of its
// UID, unique on the node.
func netnsName(prefix string, pod *corev1.Pod) string {
	name := unsafeNetnsChars.ReplaceAllString(pod.Name, "-")
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.TrimRight(name, "-")
	uid := unsafeNetnsChars.ReplaceAllString(string(pod.UID), "")
	if len(uid) > 5 {
		uid = uid[:5]
	}
	return prefix + "-" + name + "-" + uid
}

// makeSandbox makes the pod's network: its namespace, an address from the
// node's pod CIDR, and resolv.conf by its dnsPolicy.
func (pw *podWorker) makeSandbox(ctx context.Context, pod *corev1.Pod) error {
	if pod.Spec.HostNetwork {
		return fmt.Errorf("hostNetwork pods are not supported by the lab's node agent")
	}
	network := pw.a.cfg.Network
	switch pod.Spec.DNSPolicy {
	case corev1.DNSDefault:
		network.DNS = netip.Addr{} // the node's resolv.conf
	case corev1.DNSNone:
		return fmt.Errorf("dnsPolicy None (dnsConfig) is not supported by the lab's node agent")
	}
	name := netnsName(pw.a.cfg.PodNetnsPrefix, pod)
	if netns.Exists(name) {
		// Left by an earlier agent: its pods start afresh.
		if err := netns.Delete(ctx, name); err != nil {
			return err
		}
	}
	ip, err := pw.a.allocateIP()
	if err != nil {
		return err
	}
	p, err := network.Add(ctx, name, ip, pod.Namespace)
	if err != nil {
		pw.a.releaseIP(ip)
		return err
	}
	pw.mu.Lock()
	pw.net = p
	pw.sandboxReady = true
	pw.startTime = metav1.Now()
	pw.mu.Unlock()
	pw.log.Info("sandbox made", "netns", p.Netns, "ip", p.IP)
	return nil
}

// removeSandbox deletes the pod's network namespace (killing anything left
// in it) and frees its address.
func (pw *podWorker) removeSandbox(ctx context.Context) {
	pw.mu.Lock()
	p, ready := pw.net, pw.sandboxReady
	pw.sandboxReady = false
	pw.mu.Unlock()
	if !ready {
		return
	}
	if err := pw.a.cfg.Network.Remove(ctx, p); err != nil {
		pw.log.Error("remove the pod's sandbox", "err", err)
	}
	pw.a.releaseIP(p.IP)
}

// startContainer resolves the container's image, environment and user and
// starts it; a failure is recorded as the container's waiting reason.
func (pw *podWorker) startContainer(ctx context.Context, pod *corev1.Pod, c *container) error {
	fail := func(reason string, err error) error {
		pw.mu.Lock()
		c.waitReason, c.waitMessage = reason, err.Error()
		pw.mu.Unlock()
		pw.a.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		pw.log.Warn("container not started", "container", c.spec.Name, "reason", reason, "err", err)
		return err
	}
	img, err := pw.a.images.lookup(c.spec.Image)
	if err != nil {
		pw.mu.Lock()
		c.imageErr = err
		pw.mu.Unlock()
		return fail(reasonErrImagePull, err)
	}
	c.image = img
	pw.mu.Lock()
	facts := podFacts{podIP: pw.net.IP, hostIP: pw.a.cfg.hostIP()}
	netnsName := pw.net.Netns
	pw.mu.Unlock()
	env, err := containerEnv(ctx, pw.a, pod, &c.spec, facts)
	if err != nil {
		return fail(reasonConfigError, err)
	}
	creds, err := resolveCredentials(pod, &c.spec, img)
	if err != nil {
		return fail(reasonConfigError, err)
	}
	argv, err := commandLine(&c.spec, img, env)
	if err != nil {
		return fail(reasonRunError, err)
	}
	dir := c.spec.WorkingDir
	if dir == "" {
		dir = "/"
	}
	logPath := filepath.Join(pw.a.cfg.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), c.spec.Name,
		strconv.Itoa(int(c.restarts+boolInt(c.run != nil)))+".log")
	p, err := startProcess(c.spec.Name, launch{netns: netnsName, argv: argv, env: env, dir: dir, logPath: logPath, creds: creds})
	if err != nil {
		return fail(reasonRunError, err)
	}
	pw.mu.Lock()
	if c.run != nil {
		c.restarts++
		c.previous = c.ended
	}
	c.run, c.runID, c.ended = p, containerIDScheme+strconv.Itoa(p.PID()), nil
	c.restartPending, c.restartAt = false, time.Time{}
	c.waitReason, c.waitMessage = "", ""
	c.results = [3]result{}
	workers := c.workers
	pw.mu.Unlock()
	go func() {
		<-p.Done()
		select {
		case pw.exits <- exitNote{c: c, run: p}:
		case <-pw.done:
		}
	}()
	pw.a.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
	pw.log.Info("container started", "container", c.spec.Name, "pid", p.PID(), "restarts", c.restarts, "argv", argv)
	// kubelet probes a container that has just started at once rather
	// than at its probe worker's next tick (prober manager's
	// UpdatePodStatus triggers it).
	for _, w := range workers {
		if w.kind != liveness {
			select {
			case w.trigger <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// commandLine is the container's argv: the image's entrypoint (its binary)
// or the container's command, which must name that entrypoint, then args;
// $(VAR) references to the container's environment are expanded in both.
func commandLine(c *corev1.Container, img Image, env []string) ([]string, error) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	argv := []string{img.Binary}
	if len(c.Command) > 0 {
		cmd0 := expand(c.Command[0], lookup)
		if img.Entrypoint == "" || cmd0 != img.Entrypoint {
			return nil, fmt.Errorf("failed to create containerd task: exec: %q: executable file not found in $PATH (the lab's image %s holds only %q)",
				cmd0, imageName(c.Image), img.Entrypoint)
		}
		for _, a := range c.Command[1:] {
			argv = append(argv, expand(a, lookup))
		}
	}
	for _, a := range c.Args {
		argv = append(argv, expand(a, lookup))
	}
	return argv, nil
}

// recordExit records that a container's run ended and whether it will run
// again.
func (pw *podWorker) recordExit(c *container, p *proc.Process) {
	pw.mu.Lock()
	if c.run != p || c.ended != nil {
		pw.mu.Unlock()
		return
	}
	code, signal := exitStatus(p)
	finishedAt, _, _ := p.Ended()
	reason := reasonCompleted
	if code != 0 {
		reason = reasonError
	}
	c.ended = &corev1.ContainerStateTerminated{
		ExitCode:    code,
		Signal:      signal,
		Reason:      reason,
		StartedAt:   metav1.NewTime(p.StartedAt()),
		FinishedAt:  metav1.NewTime(finishedAt),
		ContainerID: c.runID,
	}
	c.results[readiness] = failure
	c.restartPending = !pw.terminating && shouldRestart(pw.pod.Spec.RestartPolicy, code)
	pod := pw.pod
	terminating := pw.terminating
	pw.mu.Unlock()
	pw.log.Info("container exited", "container", c.spec.Name, "pid", p.PID(), "code", code, "signal", signal,
		"restart", c.restartPending)
	if !terminating {
		pw.maybeDone(pod)
	}
}

// maybeDone ends a pod whose containers have all stopped for good
// (restartPolicy Never or OnFailure): its probes stop and its sandbox goes,
// while the pod stays in the API, Succeeded or Failed.
func (pw *podWorker) maybeDone(pod *corev1.Pod) {
	pw.mu.Lock()
	done := len(pw.containers) > 0
	for _, c := range pw.containers {
		done = done && c.ended != nil && !c.restartPending && !c.killing
	}
	if done {
		pw.terminal = true
	}
	pw.mu.Unlock()
	if done {
		pw.stopProbes()
		pw.removeSandbox(context.Background())
		pw.log.Info("pod done", "phase", podPhase(pod.Spec, pw.containerStatuses(true), true))
	}
}

// condemn kills a container that failed its liveness or startup probe,
// with the probe's or the pod's grace period; its exit then restarts it
// by the restart policy.
func (pw *podWorker) condemn(ctx context.Context, n condemnNote) {
	pw.mu.Lock()
	c := n.c
	if c.runID != n.runID || !c.running() || c.killing || pw.terminating {
		pw.mu.Unlock()
		return
	}
	c.killing = true
	pod := pw.pod
	pw.mu.Unlock()
	probe := c.spec.LivenessProbe
	if n.kind == startup {
		probe = c.spec.StartupProbe
	}
	grace := gracePeriodSpec(pod)
	if probe != nil && probe.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*probe.TerminationGracePeriodSeconds) * time.Second
	}
	msg := fmt.Sprintf("Container %s failed %s probe, will be restarted", c.spec.Name, map[probeKind]string{liveness: "liveness", startup: "startup"}[n.kind])
	pw.a.event(pod, corev1.EventTypeNormal, "Killing", "%s", msg)
	pw.log.Info("killing a container", "container", c.spec.Name, "why", msg)
	go func() {
		pw.killContainer(ctx, pod, c, grace)
		pw.mu.Lock()
		c.killing = false
		pw.mu.Unlock()
		pw.poke()
	}()
}

// gracePeriodSpec is the pod's terminationGracePeriodSeconds (30 s unset,
// as the API defaults it).
func gracePeriodSpec(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// killContainer stops a container as kubelet's killContainer does: the
// preStop hook first, within the grace period, then SIGTERM with what is
// left of the grace period (at least 2 s), then SIGKILL.
func (pw *podWorker) killContainer(ctx context.Context, pod *corev1.Pod, c *container, grace time.Duration) {
	pw.mu.Lock()
	p := c.run
	podIP := pw.net.IP
	pw.mu.Unlock()
	if p == nil || p.Exited() {
		return
	}
	if c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		pw.runPreStop(ctx, pod, c, podIP, grace)
		// kubelet subtracts whole seconds.
		grace -= time.Duration(int64(time.Since(start).Seconds())) * time.Second
	}
	grace = max(grace, minimumGracePeriod)
	if killed, _ := p.Stop(context.Background(), syscall.SIGTERM, grace); killed {
		pw.log.Warn("container killed after its grace period", "container", c.spec.Name, "grace", grace)
	}
}

// runPreStop runs a container's preStop hook and waits for it at most
// grace. Sleep and httpGet hooks run; exec hooks need a runtime and fail,
// as kubelet reports a failed hook: an event, and the container is stopped
// anyway.
func (pw *podWorker) runPreStop(ctx context.Context, pod *corev1.Pod, c *container, podIP netip.Addr, grace time.Duration) {
	h := c.spec.Lifecycle.PreStop
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var err error
	switch {
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	case h.HTTPGet != nil:
		url, header, uerr := httpGetURL(h.HTTPGet, &c.spec, podIP)
		if uerr != nil {
			err = uerr
			break
		}
		resp, herr := httpGet(ctx, url, header, grace)
		if herr != nil {
			err = herr
			break
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusBadRequest {
			err = fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: <nil>, message: %q", h.HTTPGet.Path, c.spec.Name, pod.Name, resp.Status)
		}
	case h.Exec != nil:
		err = fmt.Errorf("exec hooks need a container runtime, which the lab's node agent does not have")
	case h.TCPSocket != nil:
		// Deprecated, and kubelet does nothing for it either.
	}
	if err != nil {
		pw.log.Warn("preStop hook failed", "container", c.spec.Name, "err", err)
		pw.a.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed")
	}
}

// beginTermination stops every container of a pod being deleted, in
// parallel, each with the deletion's grace period; liveness and startup
// probing has stopped (the workers see the deletion), readiness probing
// goes on until the containers are gone.
func (pw *podWorker) beginTermination(ctx context.Context) {
	pw.mu.Lock()
	pw.terminating = true
	pod := pw.pod
	grace := minimumGracePeriod
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if !pw.goneFromAPI {
		grace = gracePeriodSpec(pod)
	}
	var running []*container
	for _, c := range pw.containers {
		c.restartPending = false
		if c.run != nil && c.ended == nil {
			c.killing = true
			running = append(running, c)
		}
	}
	pw.mu.Unlock()
	pw.log.Info("pod deleted: stopping its containers", "grace", grace, "running", len(running))
	var wg sync.WaitGroup
	for _, c := range running {
		pw.a.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.spec.Name)
		wg.Go(func() { pw.killContainer(ctx, pod, c, grace) })
	}
	go func() {
		wg.Wait()
		pw.termDone <- struct{}{}
	}()
}

// finishTermination records the containers' ends, stops the probes, removes
// the sandbox, reports the terminal status and makes the final delete
// (grace period 0, on the pod's UID). It returns whether the worker is
// done; it is not when the final delete failed (it is tried again on the
// next kick or retry).
func (pw *podWorker) finishTermination(ctx context.Context) bool {
	pw.mu.Lock()
	for _, c := range pw.containers {
		c.killing = false
		if c.run != nil && c.ended == nil && c.run.Exited() {
			pw.mu.Unlock()
			pw.recordExit(c, c.run)
			pw.mu.Lock()
		}
	}
	pw.terminal = true
	pod, gone := pw.pod, pw.goneFromAPI
	pw.mu.Unlock()
	pw.stopProbes()
	pw.removeSandbox(ctx)
	if gone {
		pw.log.Info("pod gone")
		return true
	}
	if err := pw.syncStatus(ctx); err != nil {
		pw.log.Error("report the terminal status", "err", err)
		return false
	}
	err := pw.a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		pw.log.Error("final delete", "err", err)
		return false
	}
	pw.log.Info("pod terminated and deleted")
	return true
}

// startProbes starts a worker for each probe of each container.
func (pw *podWorker) startProbes(ctx context.Context) {
	pw.probesStarted = true
	for _, c := range pw.containers {
		for _, kind := range []probeKind{readiness, liveness, startup} {
			if !c.hasProbe(kind) {
				continue
			}
			spec := map[probeKind]*corev1.Probe{readiness: c.spec.ReadinessProbe, liveness: c.spec.LivenessProbe, startup: c.spec.StartupProbe}[kind]
			w := &probeWorker{
				kind:      kind,
				spec:      spec,
				ctr:       &c.spec,
				view:      func() probeView { return pw.probeView(c) },
				report:    func(k probeKind, id string, r result) { pw.probeResult(c, k, id, r) },
				unhealthy: func(k probeKind, msg string) { pw.probeFailed(c, k, msg) },
				trigger:   make(chan struct{}, 1),
				stop:      make(chan struct{}),
			}
			pw.mu.Lock()
			c.workers = append(c.workers, w)
			pw.mu.Unlock()
			// Only a kubelet that started less than a period ago delays its
			// probes by a random part of one.
			go w.loop(ctx, time.Since(pw.a.started) < time.Duration(spec.PeriodSeconds)*time.Second)
		}
	}
}

func (pw *podWorker) stopProbes() {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, c := range pw.containers {
		for _, w := range c.workers {
			select {
			case <-w.stop:
			default:
				close(w.stop)
			}
		}
	}
}

func (pw *podWorker) probeView(c *container) probeView {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	v := probeView{
		podTerminal:  pw.terminal,
		deleting:     pw.pod.DeletionTimestamp != nil || pw.goneFromAPI,
		containerID:  c.runID,
		running:      c.running(),
		terminated:   c.ended != nil,
		started:      c.started(),
		neverRestart: pw.pod.Spec.RestartPolicy == corev1.RestartPolicyNever,
		podIP:        pw.net.IP,
	}
	if c.run != nil {
		v.startedAt = c.run.StartedAt()
	}
	return v
}

// probeResult records a probe worker's result for a container; a failed
// liveness or startup probe condemns the container.
func (pw *podWorker) probeResult(c *container, kind probeKind, id string, r result) {
	pw.mu.Lock()
	if c.runID != id {
		pw.mu.Unlock()
		return
	}
	changed := c.results[kind] != r
	c.results[kind] = r
	pw.mu.Unlock()
	if r == failure && (kind == liveness || kind == startup) {
		select {
		case pw.condemns <- condemnNote{c: c, runID: id, kind: kind}:
		case <-pw.done:
		}
	}
	if changed {
		if kind == startup && r == success {
			// Readiness probing may begin at once.
			for _, w := range c.workers {
				if w.kind == readiness {
					select {
					case w.trigger <- struct{}{}:
					default:
					}
				}
			}
		}
		pw.a.status.dirty(pw)
	}
}

// probeFailed records a failed probe as kubelet does, with an Unhealthy
// event; but not the readiness failures of a pod being deleted, which are
// expected.
func (pw *podWorker) probeFailed(c *container, kind probeKind, msg string) {
	pw.mu.Lock()
	pod := pw.pod
	pw.mu.Unlock()
	if kind == readiness && pod.DeletionTimestamp != nil {
		return
	}
	pw.a.event(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
}

// containerStatuses reports every container; mu must not be held.
func (pw *podWorker) containerStatuses(podTerminal bool) []corev1.ContainerStatus {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := make([]corev1.ContainerStatus, len(pw.containers))
	for i, c := range pw.containers {
		out[i] = c.status(podTerminal)
	}
	return out
}

// syncStatus writes the pod's status to the API, as kubelet's status
// manager does: a strategic merge patch from the status the API holds to
// the one the agent computes, with the pod's UID as a precondition.
func (pw *podWorker) syncStatus(ctx context.Context) error {
	pw.statusMu.Lock()
	defer pw.statusMu.Unlock()
	pw.mu.Lock()
	pod := pw.pod
	gone := pw.goneFromAPI
	pw.mu.Unlock()
	if gone {
		return nil
	}
	cur, err := pw.a.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && cur.UID != pw.uid) {
		return nil
	}
	if err != nil {
		return err
	}
	pw.mu.Lock()
	in := statusInput{
		pod:          cur,
		hostIP:       pw.a.cfg.hostIP(),
		podIP:        pw.net.IP,
		startTime:    pw.startTime,
		sandboxReady: pw.sandboxReady,
		terminal:     pw.terminal,
		now:          metav1.Now(),
	}
	if !pw.sandboxReady && pw.terminal {
		in.podIP = netip.Addr{}
		if cur.Status.PodIP != "" {
			in.podIP, _ = netip.ParseAddr(cur.Status.PodIP) // a terminal pod keeps its IP in the API
		}
	}
	pw.mu.Unlock()
	in.containers = pw.containerStatuses(in.terminal)
	st := podStatus(in)
	return pw.a.patchStatus(ctx, cur, st)
}
