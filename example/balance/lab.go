package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
)

// A podLab is where a run's pods live and its clients call from: the
// emulated kube-proxy lab (internal/kubelab) or a real control plane
// (internal/cluster, -cluster real).
type podLab interface {
	// Prefix names the lab's namespaces and files; Dir holds its logs.
	Prefix() string
	Dir() string
	// serverArgs are the flags of every pod's server in a run of sc in m.
	serverArgs(sc scenario, m mode, p params) []string
	// startServers runs replicas pods of the example server with args and
	// returns once they are endpoints.
	startServers(ctx context.Context, replicas int, args []string) error
	// scaleTo changes the number of pods and returns once new ones are
	// endpoints.
	scaleTo(ctx context.Context, replicas int) error
	// replace replaces the initial pods as the scenario says (roll,
	// rolling) and reports each step.
	replace(ctx context.Context, sc scenario, initial []labPod, record func(label string, at, done time.Time)) error
	// pods are the pods, in creation order: those running and those
	// starting, not those leaving the endpoints.
	pods(ctx context.Context) ([]labPod, error)
	// target is the clients' gRPC target for a way in.
	target(ctx context.Context, via service) (string, error)
	// clientCommand runs bin where the clients are.
	clientCommand(ctx context.Context, bin string) (*exec.Cmd, error)
	// logs returns the tail of the lab's logs, for a failed run's error.
	logs(maxBytes int) string
	Close() error
}

// labPod is a pod of a podLab.
type labPod struct {
	Name    string
	Index   int  // creation order from 0, never reused
	PID     int  // the server process; 0 when the lab does not know it
	Running bool // its server runs (also while it terminates)
}

// emulatedLab is internal/kubelab: kube-proxy's iptables rules written by
// the lab, dnsmasq as the DNS, nginx as the L7 reference.
type emulatedLab struct {
	*kubelab.Lab
	args []string
}

func newEmulatedLab(ctx context.Context, sc scenario, p params, bins binaries) (*emulatedLab, error) {
	e := &emulatedLab{}
	cfg := kubelab.Config{L7: sc.via == viaL7, TerminationGracePeriod: sc.terminationGrace(p)}
	// The lab starts without pods so that the servers' flags can name the
	// lab's DNS server.
	cfg.ServerCommand = func(kubelab.Pod) kubelab.Command { return kubelab.Command{Path: bins.server, Args: e.args} }
	lab, err := kubelab.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	lab.CloseOnSignal()
	e.Lab = lab
	return e, nil
}

func (e *emulatedLab) serverArgs(sc scenario, m mode, p params) []string {
	return serverArgs(sc, m, p, "dns://"+e.DNSServer()+"/"+e.HeadlessName())
}

func (e *emulatedLab) startServers(ctx context.Context, replicas int, args []string) error {
	e.args = args
	return e.ScaleTo(ctx, replicas)
}

func (e *emulatedLab) scaleTo(ctx context.Context, replicas int) error {
	return e.ScaleTo(ctx, replicas)
}

func (e *emulatedLab) replace(ctx context.Context, sc scenario, initial []labPod, record func(label string, at, done time.Time)) error {
	if sc.roll {
		for i, old := range initial {
			if i > 0 && sc.rollEvery > 0 {
				select {
				case <-time.After(sc.rollEvery):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			at := time.Now()
			if _, err := e.RollPod(ctx, old.Index); err != nil {
				return err
			}
			record(fmt.Sprintf("roll p%d", i), at, time.Now())
		}
	}
	if sc.rolling {
		for i, old := range initial {
			at := time.Now()
			if _, err := e.ReplacePod(ctx, old.Index); err != nil {
				return err
			}
			record(fmt.Sprintf("replace p%d", i), at, time.Now())
		}
	}
	return nil
}

func (e *emulatedLab) pods(context.Context) ([]labPod, error) { return e.podList(), nil }

func (e *emulatedLab) podList() []labPod {
	var out []labPod
	for _, p := range e.Pods() {
		out = append(out, labPod{Name: p.Name, Index: p.Index, PID: p.PID, Running: p.Running})
	}
	return out
}

func (e *emulatedLab) target(_ context.Context, via service) (string, error) {
	switch via {
	case viaClusterIP:
		return "passthrough:///" + e.ClusterIP(grpcPort), nil
	case viaHeadless:
		return e.HeadlessTarget(grpcPort), nil
	case viaL7:
		return "passthrough:///" + e.L7Addr(), nil
	}
	return "", fmt.Errorf("no way in %q", via)
}

func (e *emulatedLab) clientCommand(ctx context.Context, bin string) (*exec.Cmd, error) {
	return e.ClientCommand(ctx, bin), nil
}

func (e *emulatedLab) logs(maxBytes int) string { return e.Logs(maxBytes) }
