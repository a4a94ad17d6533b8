package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rotorkit/rotor/internal/cluster/podnet"
	"github.com/rotorkit/rotor/internal/netns"
)

// helperEnv makes the test binary a helper process (see TestMain).
const helperEnv = "ROTOR_CLUSTER_TEST_HELPER"

// TestMain lets the test binary run as a helper inside a pod namespace,
// started by "ip netns exec" so that it reads the pod's resolv.conf:
// with ROTOR_CLUSTER_TEST_HELPER=resolve it looks up each name given in
// ROTOR_CLUSTER_TEST_NAMES (space separated) with Go's resolver and prints
// a JSON object of name to sorted addresses (or "error: ...");
// with ROTOR_CLUSTER_TEST_HELPER=serve it is a pod's program for the node
// agent's test (see serveHelper in agent_test.go).
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "resolve":
		resolveHelper()
		return
	case "serve":
		serveHelper()
		return
	}
	os.Exit(m.Run())
}

func resolveHelper() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	out := map[string][]string{}
	for _, name := range strings.Fields(os.Getenv("ROTOR_CLUSTER_TEST_NAMES")) {
		addrs, err := r.LookupHost(ctx, name)
		if err != nil {
			addrs = []string{"error: " + err.Error()}
		}
		slices.Sort(addrs)
		out[name] = addrs
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

func TestCluster(t *testing.T) {
	for _, mode := range []ProxyMode{ProxyIPTables, ProxyNFTables} {
		t.Run(string(mode), func(t *testing.T) { testCluster(t, mode) })
	}
}

// testCluster brings a cluster up in one proxy mode and checks, with real
// traffic, a ClusterIP Service and a headless Service over two backends,
// the controllers and scheduler through a Deployment, and that Close leaves
// nothing behind.
func testCluster(t *testing.T, mode ProxyMode) {
	// Close keeps the logs; NewForTest's cleanup removes them, or keeps
	// them with ROTOR_CLUSTER_KEEP_LOGS=1 (KeepLogsEnv).
	cfg := Config{ProxyMode: mode}
	keepLogs := keepLogsSet()
	if err := Available(cfg); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	start := time.Now()
	c := NewForTest(ctx, t, cfg)
	t.Logf("%s: cluster up in %v (%s)", mode, time.Since(start).Round(time.Millisecond), c.Dir())

	const ns = "lab"
	client := c.Client()
	if v, err := client.Discovery().ServerVersion(); err != nil || v.GitVersion != KubernetesVersion {
		t.Errorf("the API server reports version %v (error %v); want %s (tools/kube-build.sh sets it with -ldflags)", v, err, KubernetesVersion)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Two backends, each an HTTP server in its own pod namespace that says
	// which pod it is, and a client pod.
	backends := map[string]string{} // pod IP → name
	for _, name := range []string{"web-1", "web-2"} {
		pod, err := c.AddPod(ctx, name, ns)
		if err != nil {
			t.Fatal(err)
		}
		serveName(t, pod, name)
		backends[pod.IP.String()] = name
	}
	clientPod, err := c.AddPod(ctx, "client", ns)
	if err != nil {
		t.Fatal(err)
	}

	createServices(ctx, t, c, ns, slices.Sorted(maps.Keys(backends)))
	svc, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := svc.Spec.ClusterIP

	t.Run("ClusterIP", func(t *testing.T) {
		hits := clusterIPHits(ctx, t, clientPod, clusterIP, 50)
		t.Logf("50 connections to %s:80 from %s: %v", clusterIP, clientPod.IP, hits)
		for _, name := range backends {
			if hits[name] == 0 {
				t.Errorf("backend %s got none of 50 connections (hits %v); kube-proxy should pick at random per connection", name, hits)
			}
		}
		rules, err := c.ProxyRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"KUBE-SVC-", "lab/web:http", "--probability 0.5"}
		if mode == ProxyNFTables {
			want = []string{"service-", "lab/web/tcp/http", "numgen random mod 2"}
		}
		for _, w := range want {
			if !strings.Contains(rules, w) {
				t.Errorf("kube-proxy's %s rules lack %q:\n%s", mode, w, rules)
			}
		}
	})

	t.Run("HeadlessDNS", func(t *testing.T) {
		want := map[string][]string{
			"web-headless.lab.svc.cluster.local": slices.Sorted(maps.Keys(backends)),
			"web-headless":                       slices.Sorted(maps.Keys(backends)),
			"web":                                {clusterIP},
		}
		got := resolveIn(ctx, t, clientPod, want)
		for name, addrs := range want {
			if !slices.Equal(got[name], addrs) {
				t.Errorf("%s resolved in %s to %v; want %v", name, clientPod.Netns, got[name], addrs)
			}
		}
	})

	t.Run("Deployment", func(t *testing.T) { deploymentRoundTrip(ctx, t, c, ns) })

	// A node process, as a node agent will be: in the node namespace, and
	// stopped by Close.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := c.StartNodeProcess("agent", []string{sleep, "300"})
	if err != nil {
		t.Fatal(err)
	}

	// Close, then check that nothing is left: namespaces, /etc/netns
	// entries, the directory, the processes.
	var pids []int
	for _, name := range []string{c.NodeNetns(), c.Prefix() + "-coredns"} {
		p, err := netns.Pids(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p...)
	}
	if len(pids) < 7 || !slices.Contains(pids, agent) {
		t.Errorf("found processes %v in the cluster's namespaces; want the 6 components and the node process %d", pids, agent)
	}
	closeStart := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(closeStart).Round(time.Millisecond))
	if keepLogs {
		return
	}
	if !t.Failed() {
		// What KeepLogs kept, under a name the next cluster's CleanStale
		// leaves alone; Close removes it when KeepLogs is false.
		kept := c.Dir()
		if _, _, role, ok := labs.Parse(filepath.Base(kept)); !ok || role != "-logs" {
			t.Errorf("Close kept the logs in %s; want the cluster's directory with the role -logs, which CleanStale keeps", kept)
		}
		if _, err := os.Stat(filepath.Join(kept, "kube-apiserver.log")); err != nil {
			t.Errorf("the kept directory has no kube-apiserver.log: %v", err)
		}
		if _, err := os.Stat(filepath.Join(kept, "etcd")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the kept directory still has etcd's data (stat: %v); want it removed", err)
		}
		if filepath.Dir(c.PodLogDir()) != kept {
			t.Errorf("PodLogDir() = %s after Close; want it under %s", c.PodLogDir(), kept)
		}
		if err := os.RemoveAll(kept); err != nil {
			t.Fatal(err)
		}
	}
	assertGone(t, c, pids)
}

// serveName serves HTTP on pod's port 8080, answering every request with
// name, until the test ends.
func serveName(t *testing.T, pod podnet.Pod, name string) {
	ln, err := netns.Listen(pod.Netns, "tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// createServices creates a selector-less ClusterIP Service "web" and a
// headless Service "web-headless", port 80 to 8080, each with an
// EndpointSlice naming the backends, as a controller outside Kubernetes
// would.
func createServices(ctx context.Context, t *testing.T, c *Cluster, ns string, ips []string) {
	t.Helper()
	for _, name := range []string{"web", "web-headless"} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080),
			}}},
		}
		if name == "web-headless" {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		if _, err := c.Client().CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-lab", Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   ManagedBy,
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(8080))}},
		}
		for _, ip := range ips {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			})
		}
		if _, err := c.Client().DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterIPHits makes n HTTP requests, each on a new connection, from the
// client pod to ip:80 and counts the answers by backend name. It first waits
// until kube-proxy has written the Service's rules (a connection is refused
// until then).
func clusterIPHits(ctx context.Context, t *testing.T, client podnet.Pod, ip string, n int) map[string]int {
	t.Helper()
	httpc := &http.Client{Transport: &http.Transport{DialContext: netns.Dialer(client.Netns), DisableKeepAlives: true}, Timeout: 5 * time.Second}
	url := "http://" + net.JoinHostPort(ip, "80") + "/"
	get := func() (string, error) {
		resp, err := httpc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := get()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("the Service never answered on %s from %s: %v", url, client.Netns, err)
		}
		time.Sleep(100 * time.Millisecond) // polling kube-proxy's sync: there is no event to wait on
	}
	hits := map[string]int{}
	for range n {
		name, err := get()
		if err != nil {
			t.Fatalf("GET %s from %s: %v", url, client.Netns, err)
		}
		hits[name]++
	}
	return hits
}

// resolveIn runs the test binary as a resolver helper in the pod's
// namespace until the answers equal want (CoreDNS learns of new slices
// within moments) or 20 s pass, and returns the last answers.
func resolveIn(ctx context.Context, t *testing.T, pod podnet.Pod, want map[string][]string) map[string][]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv, err := netns.ExecArgs(pod.Netns, self)
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(want))
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), helperEnv+"=resolve", "ROTOR_CLUSTER_TEST_NAMES="+strings.Join(names, " "))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("resolver helper in %s: %v", pod.Netns, err)
		}
		got := map[string][]string{}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("resolver helper printed %q: %v", out, err)
		}
		same := true
		for name, addrs := range want {
			same = same && slices.Equal(got[name], addrs)
		}
		if same || time.Now().After(deadline) {
			return got
		}
		time.Sleep(200 * time.Millisecond) // polling DNS answers: there is no event to wait on
	}
}

// deploymentRoundTrip creates a Deployment of two replicas and watches its
// pods until the controllers have made them and the scheduler has bound
// both to the node (no kubelet runs them yet), then deletes it.
func deploymentRoundTrip(ctx context.Context, t *testing.T, c *Cluster, ns string) {
	labels := map[string]string{"app": "round-trip"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "round-trip", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "rotor.invalid/app"}}},
			},
		},
	}
	pods := c.Client().CoreV1().Pods(ns)
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "app=round-trip"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{}
	timeout := time.After(60 * time.Second)
	for len(bound) < 2 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the pod watch ended early")
			}
			if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && pod.Spec.NodeName == c.NodeName() {
				bound[pod.Name] = true
			}
		case <-timeout:
			t.Fatalf("60 s after creating a Deployment of 2, %d pods were bound to %s; see the logs in %s", len(bound), c.NodeName(), c.Dir())
		}
	}
	if err := c.Client().AppsV1().Deployments(ns).Delete(ctx, dep.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertGone checks that Close left no namespace, /etc/netns entry,
// directory or process of the cluster.
func assertGone(t *testing.T, c *Cluster, pids []int) {
	t.Helper()
	names, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	if etc, err := os.ReadDir(netns.ConfigDir); err == nil {
		for _, e := range etc {
			names = append(names, netns.ConfigDir+"/"+e.Name())
		}
	}
	for _, name := range names {
		if strings.Contains(name, c.Prefix()) {
			t.Errorf("%s is still there after Close", name)
		}
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Close (stat: %v)", c.Dir(), err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d of the cluster still runs after Close", pid)
		}
	}
}
