package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/rotorkit/rotor/example/internal/realcluster"
	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/internal/cluster/ops"
	"github.com/rotorkit/rotor/internal/netns"
)

// The backends of -cluster.
const (
	clusterEmulated = "emulated"
	clusterReal     = "real"
)

// realLab is a real control plane (internal/cluster: kube-apiserver,
// controller manager, scheduler, kube-proxy in iptables or nftables mode,
// CoreDNS, etcd) with two Nodes whose node agents run the pods, and
// example/k8s applied as it is. The manifests' client Deployments are
// scaled to 0: the load generator stands for them, in a pod network
// namespace of its own (cluster.AddPod), its calls crossing kube-proxy's
// rules and its DNS queries going to CoreDNS through the kube-dns Service.
// A run changes the server Deployment only as an operator would, through
// the API: its container's arguments (the mode), its replicas (scale
// events), its template annotation (kubectl rollout restart).
type realLab struct {
	c        *cluster.Cluster
	loadNS   string   // the load generator's network namespace
	manifest []string // the server container's arguments in example/k8s

	mu    sync.Mutex
	index map[string]int // pod name → creation order
}

// loadPodName is the load generator's pod namespace (cluster.AddPod).
const loadPodName = "balance-load"

func newRealLab(ctx context.Context, mode cluster.ProxyMode, bins binaries) (_ *realLab, err error) {
	c, err := cluster.New(ctx, cluster.Config{ProxyMode: mode, Nodes: 2, NodeAgent: true})
	if err != nil {
		return nil, err
	}
	l := &realLab{c: c, index: map[string]int{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := realcluster.StartNodeAgents(ctx, c, bins.real); err != nil {
		return nil, err
	}
	if _, err := realcluster.Deploy(ctx, c, bins.manifests); err != nil {
		return nil, err
	}
	// The manifests' HPA (minReplicas 2) does not undo the scenarios' 1
	// replica: the cluster runs no HPA controller (no metrics-server).
	client := c.Client()
	for _, d := range []string{realcluster.ClusterIPClients, realcluster.HeadlessClients} {
		if err := ops.Scale(ctx, client, realcluster.Namespace, d, 0); err != nil {
			return nil, err
		}
	}
	// Their pods leave before the run, so that no connection of theirs
	// counts in the servers' totals.
	if err := l.waitFor(ctx, "the client pods to leave", func(pods []corev1.Pod) bool {
		return !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return !strings.HasPrefix(p.Name, realcluster.ServerDeployment+"-") })
	}, ""); err != nil {
		return nil, err
	}
	d, err := client.AppsV1().Deployments(realcluster.Namespace).Get(ctx, realcluster.ServerDeployment, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == realcluster.ServerContainer })
	if i < 0 {
		return nil, fmt.Errorf("deployment/%s has no container %q", realcluster.ServerDeployment, realcluster.ServerContainer)
	}
	l.manifest = slices.Clone(d.Spec.Template.Spec.Containers[i].Args)
	pod, err := c.AddPod(ctx, loadPodName, realcluster.Namespace)
	if err != nil {
		return nil, err
	}
	l.loadNS = pod.Netns
	return l, nil
}

func (l *realLab) Prefix() string { return l.c.Prefix() }
func (l *realLab) Dir() string    { return l.c.Dir() }
func (l *realLab) Close() error   { return l.c.Close() }

// serverArgs are the manifests' arguments, with the mode's flags in place
// of the manifests' rotation flags: mode default keeps them as they are
// (age 30 s, the peer watcher on hello-headless every 5 s); the others
// replace -max-connection-age and drop -peer-dns, -peer-interval and
// -rotate-spread unless they set them. The lab's short shutdown timings
// (-grace, the short runs' delays) do not apply: the pods keep the
// manifests' -shutdown-delay 5s and -drain-timeout 45s and their
// terminationGracePeriodSeconds. Every mode logs no line per call
// (-log-calls=false), as in the emulated lab, and at -server-log-level
// when set.
func (l *realLab) serverArgs(sc scenario, m mode, p params) []string {
	set := flagPairs(m.args(p, realcluster.HeadlessService))
	if sc.policy == policyWRR {
		set = append(set, [2]string{"orca", ""})
	}
	set = append(set, [2]string{"log-calls", "false"})
	if p.ServerLogLevel != "" {
		set = append(set, [2]string{"log-level", p.ServerLogLevel})
	}
	drop := map[string]bool{}
	for _, kv := range set {
		drop[kv[0]] = true
	}
	if m.name != "default" {
		for _, f := range []string{"max-connection-age", "peer-dns", "peer-interval", "rotate-spread"} {
			drop[f] = true
		}
	}
	var args []string
	for _, a := range l.manifest {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !drop[name] {
			args = append(args, a)
		}
	}
	for _, kv := range set {
		if kv[1] == "" {
			args = append(args, "-"+kv[0])
		} else {
			args = append(args, "-"+kv[0]+"="+kv[1])
		}
	}
	return args
}

// flagPairs turns "-name value" and "-name" (a boolean) arguments into
// name/value pairs, value "" for a boolean.
func flagPairs(args []string) [][2]string {
	var out [][2]string
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			out = append(out, [2]string{n, v})
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, [2]string{name, args[i+1]})
			i++
			continue
		}
		out = append(out, [2]string{name, ""})
	}
	return out
}

// startServers sets the server Deployment's arguments and replicas, as
// "kubectl edit" does, waits for the rollout and for the old pods to be
// gone, so that the run begins with replicas pods of the new arguments.
func (l *realLab) startServers(ctx context.Context, replicas int, args []string) error {
	client := l.c.Client()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := client.AppsV1().Deployments(realcluster.Namespace).Get(ctx, realcluster.ServerDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i := range d.Spec.Template.Spec.Containers {
			if d.Spec.Template.Spec.Containers[i].Name == realcluster.ServerContainer {
				d.Spec.Template.Spec.Containers[i].Args = args
			}
		}
		d.Spec.Replicas = new(int32(replicas))
		_, err = client.AppsV1().Deployments(realcluster.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set the arguments of deployment/%s: %w", realcluster.ServerDeployment, err)
	}
	if err := l.waitRollout(ctx); err != nil {
		return err
	}
	// The replaced pods drain (no client calls them: the manifests' clients
	// are at 0) and leave; the run counts only its own pods.
	return l.waitFor(ctx, "the replaced server pods to leave", func(pods []corev1.Pod) bool {
		return len(pods) == replicas && !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
	}, realcluster.ServerPodSelector())
}

// waitFor lists the example's pods (those selector selects) every 200 ms
// until done returns true, at most realcluster.RolloutTimeout; its error
// says what it waited for and shows the pods and the servers' logs.
func (l *realLab) waitFor(ctx context.Context, what string, done func([]corev1.Pod) bool, selector string) error {
	ctx, cancel := context.WithTimeout(ctx, realcluster.RolloutTimeout)
	defer cancel()
	for {
		list, err := l.c.Client().CoreV1().Pods(realcluster.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil && done(list.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last list: %v)\n%s", what, ctx.Err(), err, l.logs(4096))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRollout waits for the server Deployment's rollout, at most
// realcluster.RolloutTimeout; its error shows the pods and the tail of the
// servers' logs.
func (l *realLab) waitRollout(ctx context.Context) error {
	if err := realcluster.WaitRollout(ctx, l.c.Client(), realcluster.ServerDeployment); err != nil {
		return fmt.Errorf("%w\n%s", err, l.serverLogs(4096))
	}
	return nil
}

// scaleTo scales the server Deployment and waits for its rollout: the new
// pods are Ready, so the EndpointSlice controller is publishing them.
func (l *realLab) scaleTo(ctx context.Context, replicas int) error {
	if err := ops.Scale(ctx, l.c.Client(), realcluster.Namespace, realcluster.ServerDeployment, int32(replicas)); err != nil {
		return err
	}
	return l.waitRollout(ctx)
}

// replace restarts the server Deployment's rollout (kubectl rollout
// restart): the Deployment controller replaces every pod by its strategy
// (maxSurge 1, maxUnavailable 0 in the manifests), whatever the scenario's
// own pacing (rollEvery) would be.
func (l *realLab) replace(ctx context.Context, sc scenario, _ []labPod, record func(label string, at, done time.Time)) error {
	if !sc.roll && !sc.rolling {
		return nil
	}
	at := time.Now()
	if err := ops.RolloutRestart(ctx, l.c.Client(), realcluster.Namespace, realcluster.ServerDeployment, at); err != nil {
		return err
	}
	if err := l.waitRollout(ctx); err != nil {
		return err
	}
	record("rollout restart", at, time.Now())
	return nil
}

func (l *realLab) list(ctx context.Context) ([]corev1.Pod, error) {
	list, err := l.c.Client().CoreV1().Pods(realcluster.Namespace).List(ctx, metav1.ListOptions{LabelSelector: realcluster.ServerPodSelector()})
	if err != nil {
		return nil, err
	}
	// Creation timestamps have 1 s resolution: pods made in the same second
	// are in name order.
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list.Items, nil
}

// pods are the server pods the API lists, in creation order, but those
// being deleted: like the emulated lab's, a pod leaves the list when it
// leaves the endpoints. PIDs are not known: the runs on a real cluster
// report no per-pod CPU.
func (l *realLab) pods(ctx context.Context) ([]labPod, error) {
	list, err := l.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the server pods: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []labPod
	for _, p := range list {
		if p.DeletionTimestamp != nil {
			continue
		}
		i, ok := l.index[p.Name]
		if !ok {
			i = len(l.index)
			l.index[p.Name] = i
		}
		out = append(out, labPod{Name: p.Name, Index: i, Running: p.Status.Phase == corev1.PodRunning})
	}
	return out, nil
}

// target is the Service "hello"'s ClusterIP, or the headless Service by
// its cluster-local name through the kube-dns Service (CoreDNS).
func (l *realLab) target(ctx context.Context, via service) (string, error) {
	switch via {
	case viaClusterIP:
		svc, err := l.c.Client().CoreV1().Services(realcluster.Namespace).Get(ctx, realcluster.ClusterIPService, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return "passthrough:///" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(grpcPort)), nil
	case viaHeadless:
		return fmt.Sprintf("dns://%s/%s.%s.svc.%s:%d", net.JoinHostPort(cluster.DNSServiceIP.String(), "53"),
			realcluster.HeadlessService, realcluster.Namespace, cluster.ClusterDomain, grpcPort), nil
	}
	return "", fmt.Errorf("the real cluster has no %s way in (nginx is the emulated lab's)", via)
}

func (l *realLab) clientCommand(ctx context.Context, bin string) (*exec.Cmd, error) {
	argv, err := netns.ExecArgs(l.loadNS, bin)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...), nil
}

// logs returns the pods' and Deployments' states and the tail of every
// server pod's log.
func (l *realLab) logs(maxBytes int) string {
	return realcluster.DescribePods(context.Background(), l.c.Client()) + l.serverLogs(maxBytes)
}

// serverLogs returns the tail of every server container's log, maxBytes in
// all.
func (l *realLab) serverLogs(maxBytes int) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(l.c.PodLogDir(), "*"+realcluster.ServerDeployment+"*", "*", "*.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n := maxBytes / max(len(files), 1); len(data) > n {
			data = data[len(data)-n:]
		}
		rel, _ := filepath.Rel(l.c.PodLogDir(), f)
		fmt.Fprintf(&b, "--- %s\n%s\n", rel, data)
	}
	return b.String()
}

// checkReal says why this host cannot run -cluster real, or nil.
func checkReal(mode cluster.ProxyMode) error {
	return cluster.Available(cluster.Config{ProxyMode: mode, Nodes: 2, NodeAgent: true})
}

// unsupported says why a scenario variant cannot run where p puts the pods
// or with its client variant, or "".
func (p params) unsupported(sc scenario) string {
	if p.Cluster == clusterReal && sc.via == viaL7 {
		return "the real cluster has no L7 proxy (nginx is the emulated lab's): run it with -cluster emulated"
	}
	if sc.load == lateHeavyLoad && sc.spread > 1 {
		return "late-heavy-client follows each client on one pod: run it without -spread-k"
	}
	return ""
}

// componentVersions are the versions of a real cluster's components, as
// tools/kube-build.sh pins and builds them (cluster.Available checks the
// binaries' versions).
func componentVersions() map[string]string {
	return map[string]string{
		"kube-apiserver": cluster.KubernetesVersion, "kube-controller-manager": cluster.KubernetesVersion,
		"kube-scheduler": cluster.KubernetesVersion, "kube-proxy": cluster.KubernetesVersion,
		"etcd": cluster.EtcdVersion, "coredns": cluster.CoreDNSVersion,
	}
}
