package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
)

// AgentOptions says how StartNodeAgents runs the node agents.
type AgentOptions struct {
	// Binary is the node agent command, internal/cluster/cmd/node-agent,
	// built by the caller (go build). Required.
	Binary string
	// Images maps image names, without tag or digest, to the programs they
	// run (see nodeagent.Image). A pod with any other image stays Pending,
	// its container waiting in ErrImagePull.
	Images map[string]nodeagent.Image
	// RestartBackoff and MaxRestartBackoff scale kubelet's crash-loop
	// back-off; zero means kubelet's (10 s, doubling to 5 min).
	RestartBackoff, MaxRestartBackoff time.Duration
}

// StartNodeAgents starts a node agent (package nodeagent) for every Node,
// in the node namespace, each with its Node's credentials, and returns once
// each has renewed its Node's Lease. The cluster must have been made with
// Config.NodeAgent, so that the agents alone keep the Nodes alive. Each
// agent logs to Dir()/node-agent-NODE.log; Close stops them, and removes
// their pods' namespaces. If an agent fails to start, the error names it
// and shows the end of its log.
func (c *Cluster) StartNodeAgents(ctx context.Context, opts AgentOptions) error {
	if !c.cfg.NodeAgent {
		return errors.New("cluster: StartNodeAgents needs a cluster made with Config.NodeAgent set (else the harness renews the Leases too)")
	}
	if opts.Binary == "" {
		return errors.New("cluster: AgentOptions.Binary is empty; build internal/cluster/cmd/node-agent and name it")
	}
	var agents []*component
	var starts []time.Time
	for _, n := range c.Nodes() {
		cfg := nodeagent.Config{
			NodeName:          n.Name,
			Kubeconfig:        n.Kubeconfig,
			Network:           c.pods,
			PodNetnsPrefix:    c.prefix + "-pod-" + n.Name,
			LogDir:            c.PodLogDir(),
			ImageDir:          filepath.Join(c.dir, "images", n.Name),
			Images:            opts.Images,
			RestartBackoff:    opts.RestartBackoff,
			MaxRestartBackoff: opts.MaxRestartBackoff,
		}
		path := filepath.Join(c.dir, "node-agent-"+n.Name+".json")
		if err := cfg.WriteFile(path); err != nil {
			return err
		}
		name := "node-agent-" + n.Name
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		starts = append(starts, time.Now())
		p, err := startComponent(c.nodeNS, name, filepath.Join(c.dir, name+".log"), []string{opts.Binary, "-config", path}, false)
		if err == nil {
			c.nodeProcs = append(c.nodeProcs, p)
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		agents = append(agents, p)
	}
	for i, n := range c.Nodes() {
		if err := agents[i].waitReady(ctx, c.leaseRenewedSince(n.Name, starts[i])); err != nil {
			return err
		}
	}
	return nil
}

// leaseRenewedSince is a readiness check: the Node's Lease was renewed
// after t.
func (c *Cluster) leaseRenewedSince(node string, t time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		lease, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if rt := lease.Spec.RenewTime; rt == nil || rt.Before(&metav1.MicroTime{Time: t.Truncate(time.Microsecond)}) {
			return fmt.Errorf("the Lease of Node %s was last renewed at %v, before the agent started", node, rt)
		}
		return nil
	}
}

// PodLogDir returns where node agents write their containers' output,
// laid out as a kubelet's /var/log/pods:
// PodLogDir()/NAMESPACE_POD_UID/CONTAINER/RESTARTS.log. The files stay
// after their pods are gone, until Close; with Config.KeepLogs, under Dir
// after it too.
func (c *Cluster) PodLogDir() string { return filepath.Join(c.Dir(), "pods") }
