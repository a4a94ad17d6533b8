// Package realcluster runs rotor's example on a real Kubernetes control
// plane (internal/cluster, kube-proxy in iptables or nftables mode, CoreDNS)
// whose Nodes run pods as processes (internal/cluster/nodeagent): it builds
// the images' programs, starts the cluster and its node agents, and applies
// example/k8s as the README tells a user to. TestRealCluster (example/k8s)
// and example/balance -cluster real share it.
//
// It needs root and the components tools/kube-build.sh builds
// (cluster.Available says what is missing).
package realcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/internal/cluster/manifest"
	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
	"github.com/rotorkit/rotor/internal/cluster/ops"
)

// The example's objects, as example/k8s names them.
const (
	Namespace          = "rotor-example"
	ServerDeployment   = "hello-server"
	ServerContainer    = "server"
	ClusterIPClients   = "hello-client-clusterip"
	HeadlessClients    = "hello-client-headless"
	ClusterIPService   = "hello"
	HeadlessService    = "hello-headless"
	AdminTokenSecret   = "hello-admin"
	ServerPodNameLabel = "app.kubernetes.io/name"
)

// Binaries are the programs the example's images map to, and the node
// agent.
type Binaries struct {
	Server, Client, NodeAgent string
}

// Build builds the example client and the node agent, and the example
// server unless server names a binary of it already, into dir with the go
// command in PATH, from the current module or workspace. Cancelling ctx
// stops the build.
func Build(ctx context.Context, dir, server string) (Binaries, error) {
	b := Binaries{Server: server}
	for _, x := range []struct {
		dst *string
		pkg string
	}{
		{&b.Server, "example/server"},
		{&b.Client, "example/client"},
		{&b.NodeAgent, "internal/cluster/cmd/node-agent"},
	} {
		if *x.dst != "" {
			continue
		}
		bin := filepath.Join(dir, path.Base(x.pkg))
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/rotorkit/rotor/"+x.pkg).CombinedOutput()
		if err != nil {
			return Binaries{}, fmt.Errorf("building %s (run from the rotor repository): %v\n%s", x.pkg, err, out)
		}
		*x.dst = bin
	}
	return b, nil
}

// StartNodeAgents starts a node agent on every Node of c that runs the
// example's images ("rotor-example-server", "rotor-example-client") as the
// binaries in b, with the images' USER and ENTRYPOINT as the Dockerfile
// sets them.
func StartNodeAgents(ctx context.Context, c *cluster.Cluster, b Binaries) error {
	user := new(int64(65532))
	return c.StartNodeAgents(ctx, cluster.AgentOptions{
		Binary: b.NodeAgent,
		Images: map[string]nodeagent.Image{
			"rotor-example-server": {Binary: b.Server, Entrypoint: "/server", UID: user, GID: user},
			"rotor-example-client": {Binary: b.Client, Entrypoint: "/client", UID: user, GID: user},
		},
	})
}

// Deploy does what the README tells a user to: it creates the namespace
// and the admin token Secret, applies the kustomization in dir (example/k8s)
// as it is, and waits until every Deployment has rolled out. It returns how
// many objects it applied.
func Deploy(ctx context.Context, c *cluster.Cluster, dir string) (int, error) {
	client := c.Client()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: AdminTokenSecret, Namespace: Namespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"token": []byte(hex.EncodeToString(token))},
	}
	if _, err := client.CoreV1().Secrets(Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	objs, err := manifest.Build(dir)
	if err != nil {
		return 0, err
	}
	if _, err := manifest.Apply(ctx, c.RESTConfig(), objs); err != nil {
		return 0, err
	}
	for _, d := range []string{ServerDeployment, ClusterIPClients, HeadlessClients} {
		if err := WaitRollout(ctx, client, d); err != nil {
			return 0, err
		}
	}
	return len(objs), nil
}

// RolloutTimeout bounds WaitRollout: the example's Deployments roll out in
// seconds (7–8 s from apply to available on the 2-core lab host), so two
// minutes means a pod that will not turn Ready.
const RolloutTimeout = 2 * time.Minute

// WaitRollout waits, at most RolloutTimeout, until the Deployment name of
// the example has rolled out; its error describes the example's pods.
func WaitRollout(ctx context.Context, client kubernetes.Interface, name string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, RolloutTimeout, fmt.Errorf("deployment/%s did not roll out within %v", name, RolloutTimeout))
	defer cancel()
	if err := ops.WaitRollout(ctx, client, Namespace, name); err != nil {
		return fmt.Errorf("%w: %w\n%s", err, context.Cause(ctx), DescribePods(ctx, client))
	}
	return nil
}

// ServerPodSelector selects the example server's pods.
func ServerPodSelector() string {
	return labels.SelectorFromSet(labels.Set{ServerPodNameLabel: ServerDeployment}).String()
}

// PodReady reports whether the pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DescribePods returns a line for every pod and Deployment of the example:
// phase, readiness, deletion, IP, container states; for a failure's
// diagnosis.
func DescribePods(ctx context.Context, client kubernetes.Interface) string {
	// ctx may be the one that just ran out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var b strings.Builder
	list, err := client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "list pods: " + err.Error()
	}
	for _, p := range list.Items {
		var cs []string
		for _, c := range p.Status.ContainerStatuses {
			cs = append(cs, fmt.Sprintf("%s ready=%v restarts=%d state=%+v", c.Name, c.Ready, c.RestartCount, c.State))
		}
		fmt.Fprintf(&b, "pod %s node=%s phase=%s ready=%v deleting=%v ip=%s %s\n", p.Name, p.Spec.NodeName, p.Status.Phase, PodReady(&p),
			p.DeletionTimestamp != nil, p.Status.PodIP, strings.Join(cs, "; "))
	}
	deps, err := client.AppsV1().Deployments(Namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, d := range deps.Items {
			_, why := ops.RolloutComplete(&d)
			fmt.Fprintf(&b, "deployment %s: %+v %s\n", d.Name, d.Status, why)
		}
	}
	return b.String()
}
