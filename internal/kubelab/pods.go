package kubelab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// Pod describes one pod of the lab's Deployment at the time it was listed.
type Pod struct {
	// Name is the pod's name, "<service>-<template hash>-<index>"; the
	// server also gets it as the environment variable POD_NAME.
	Name string
	// Index numbers pods in creation order from 0 and is never reused within
	// a lab; ReplacePod, DeletePod and KillPod take it.
	Index int
	// IP is the pod's address (198.18.0.10 and up), also in POD_IP.
	IP netip.Addr
	// PID is the server process's ID.
	PID int
	// LogPath is the file that receives the server's stdout and stderr.
	LogPath string
	// Ready reports whether the pod is an endpoint of the Services, that is
	// in the iptables rules, the headless DNS answer and nginx's upstream.
	Ready bool
	// Running reports whether the server process is still running.
	Running bool
}

// pod is the lab's record of a pod.
type pod struct {
	name  string
	index int
	slot  int // address slot, see podAddr
	ns    string
	veth  string // bridge end of the pod's veth, in the node namespace
	proc  *proc.Process
	ready bool // published as an endpoint
}

func (p *pod) ip() netip.Addr { return podAddr(p.slot) }

func (p *pod) snapshot() Pod {
	return Pod{
		Name: p.name, Index: p.index, IP: p.ip(), PID: p.proc.PID(), LogPath: p.proc.LogPath(),
		Ready: p.ready, Running: !p.proc.Exited(),
	}
}

// allocSlot returns the next free address slot after the last one handed
// out, so a deleted pod's address is reused as late as possible: conntrack
// entries of its old connections must not land on a new pod.
// l.mu must be held.
func (l *Lab) allocSlot() (int, error) {
	used := make(map[int]bool, len(l.pods))
	for _, p := range l.pods {
		used[p.slot] = true
	}
	for i := range maxPodSlots {
		slot := (l.nextSlot + i) % maxPodSlots
		if !used[slot] {
			l.nextSlot = slot + 1
			return slot, nil
		}
	}
	return 0, fmt.Errorf("kubelab: all %d pod addresses are in use", maxPodSlots)
}

// createPod creates a pod's namespace and starts its server; the pod is not
// ready yet. On error nothing of the pod is left behind.
func (l *Lab) createPod(ctx context.Context) (_ *pod, err error) {
	l.mu.Lock()
	slot, err := l.allocSlot()
	index := l.nextIndex
	l.nextIndex++
	p := &pod{
		name:  fmt.Sprintf("%s-%s-%d", l.cfg.Service, l.templateHash, index),
		index: index,
		slot:  slot,
		ns:    l.nsName("pod" + strconv.Itoa(index)),
		veth:  "vp" + strconv.Itoa(index),
	}
	if err == nil {
		// Recorded before anything is created, so Close finds it whatever fails.
		l.pods = append(l.pods, p)
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.forgetPod(p)
			err = errors.Join(err, l.destroyPod(p))
		}
	}()

	if err := netns.Add(ctx, p.ns); err != nil {
		return nil, err
	}
	if err := attachToBridge(ctx, l.nsNode, p.veth, p.ns, p.ip(), true); err != nil {
		return nil, err
	}
	spec := Pod{Name: p.name, Index: p.index, IP: p.ip(), LogPath: filepath.Join(l.dir, p.name+".log")}
	cmd := l.cfg.ServerCommand(spec)
	if cmd.Path == "" {
		return nil, fmt.Errorf("kubelab: Config.ServerCommand returned no Path for pod %s", p.name)
	}
	env := append(os.Environ(), cmd.Env...)
	env = append(env, "POD_NAME="+p.name, "POD_IP="+p.ip().String(), "POD_NAMESPACE="+l.cfg.Namespace)
	started, err := startProcess(p.ns, p.name, spec.LogPath, env, cmd.Path, cmd.Args...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	p.proc = started
	l.mu.Unlock()
	return p, nil
}

// waitReady waits until every Service port of the pod accepts connections
// from the client namespace, like a TCP readiness probe.
func (l *Lab) waitReady(ctx context.Context, p *pod) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ReadyTimeout)
	defer cancel()
	for _, port := range l.cfg.Ports {
		if err := l.waitAccepting(ctx, p.proc, netip.AddrPortFrom(p.ip(), uint16(port.Port))); err != nil {
			return fmt.Errorf("kubelab: pod %s not ready: %w", p.name, err)
		}
	}
	return nil
}

// waitAccepting dials addr from the client namespace until a connection is
// accepted, the process exits or ctx ends. The server has no way to tell
// the lab it is listening, so a successful dial is the signal.
func (l *Lab) waitAccepting(ctx context.Context, p *proc.Process, addr netip.AddrPort) error {
	for {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		conn, err := netns.Dial(dctx, l.nsClient, "tcp", addr.String())
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%s) before accepting on %s; log tail:\n%s",
				p.Name(), p.ExitStatus(), addr, tailFile(p.LogPath(), 2048))
		case <-ctx.Done():
			return fmt.Errorf("%s does not accept on %s: %w (last error: %v); log tail:\n%s",
				p.Name(), addr, ctx.Err(), err, tailFile(p.LogPath(), 2048))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startPods creates n pods, waits until all are ready and then publishes
// them as endpoints in one update. If any fails, all of them are removed.
func (l *Lab) startPods(ctx context.Context, n int) ([]*pod, error) {
	pods := make([]*pod, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := l.createPod(ctx)
			if err == nil {
				err = l.waitReady(ctx, p)
			}
			pods[i], errs[i] = p, err
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		l.mu.Lock()
		for _, p := range pods {
			p.ready = true
		}
		l.mu.Unlock()
		err = l.syncEndpoints(ctx)
	}
	if err != nil {
		var started []*pod
		for _, p := range pods {
			if p != nil {
				started = append(started, p)
			}
		}
		return nil, errors.Join(err, l.removePods(ctx, started, 0))
	}
	return pods, nil
}

// removePods deletes pods as Kubernetes does: their endpoints go first, then
// each server gets SIGTERM and up to grace to exit before SIGKILL, then the
// pods' namespaces are removed.
func (l *Lab) removePods(ctx context.Context, pods []*pod, grace time.Duration) error {
	if len(pods) == 0 {
		return nil
	}
	l.mu.Lock()
	changed := false
	for _, p := range pods {
		changed = changed || p.ready
		p.ready = false
	}
	l.mu.Unlock()
	var errs []error
	if changed {
		if err := l.syncEndpoints(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.stopPods(ctx, pods, grace))
	for _, p := range pods {
		l.forgetPod(p)
		errs = append(errs, l.destroyPod(p))
	}
	return errors.Join(errs...)
}

// stopPods sends SIGTERM to every pod at once and waits for them in parallel.
func (l *Lab) stopPods(ctx context.Context, pods []*pod, grace time.Duration) error {
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		if p.proc == nil {
			continue
		}
		wg.Go(func() { _, errs[i] = p.proc.Stop(ctx, syscall.SIGTERM, grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// destroyPod kills what is left of the pod's process and removes its
// namespace; deleting the namespace also deletes both ends of its veth.
func (l *Lab) destroyPod(p *pod) error {
	if p.proc != nil {
		p.proc.Kill()
	}
	return l.deleteNetns(p.ns)
}

// forgetPod drops a pod from the lab's list.
func (l *Lab) forgetPod(p *pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, q := range l.pods {
		if q == p {
			l.pods = append(l.pods[:i], l.pods[i+1:]...)
			return
		}
	}
}

// readyAddrs returns the addresses of the pods published as endpoints.
func (l *Lab) readyAddrs() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	var addrs []netip.Addr
	for _, p := range l.pods {
		if p.ready {
			addrs = append(addrs, p.ip())
		}
	}
	return sortedAddrs(addrs)
}

// podByIndex finds a pod by its Index; it takes l.mu.
func (l *Lab) podByIndex(index int) (*pod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.pods {
		if p.index == index {
			return p, nil
		}
	}
	return nil, fmt.Errorf("kubelab: no pod with index %d", index)
}
