package k8s

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/rotorkit/rotor/example/internal/realcluster"
	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
	"github.com/rotorkit/rotor/internal/cluster/ops"
	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/testkit"
)

// The example's objects, as the manifests name them.
const (
	exampleNS        = realcluster.Namespace
	serverDeploy     = realcluster.ServerDeployment
	serverContainer  = realcluster.ServerContainer
	clusterIPClients = realcluster.ClusterIPClients
	headlessClients  = realcluster.HeadlessClients
	adminPort        = 9090
)

// How many client pods the tests run: the manifests' client Deployments,
// scaled through the API. 20 ClusterIP clients are 20 connections, which
// fair share can spread evenly over 2 and over 5 pods; each client calls
// every 200 ms (its -interval in client.yaml).
const (
	clusterIPClientPods = 20
	headlessClientPods  = 2
)

// TestRealCluster applies example/k8s as it is, through the API, to a real
// Kubernetes control plane (internal/cluster: kube-apiserver, controller
// manager, scheduler, kube-proxy, CoreDNS, v1.37.2) whose two Nodes run
// pods as processes (internal/cluster/nodeagent), with calls flowing from
// the manifests' own client Deployments, and does to it what an operator
// does, checking what the users see:
//
//   - RolloutRestart: kubectl rollout restart of hello-server; no client
//     call fails, ClusterIP or headless (dns:///hello-headless:50051).
//   - Crash: the server process of a pod is killed; its container is
//     restarted (restartCount 1) and the pod turns Ready again.
//   - Drain: hello-server scaled to 4 (2 a Node: the manifests spread them),
//     then a Node drained through the Eviction API; the example's
//     PodDisruptionBudget must refuse the second server eviction until the
//     first pod's replacement is Ready, and no call may fail; then the
//     Node is uncordoned and the server scaled back to 2.
//   - ScaleUp: the headless clients scaled to 0 (fair share is for
//     ClusterIP fleets), fair share turned on (kubectl set env
//     ROTOR_FAIR_SHARE=true, a rollout that loses no call either), then
//     2 → 5 replicas; over the last 30 s of the 90 s after it, max/mean
//     calls per pod ≤ 1.15.
//
// It runs in kube-proxy's iptables and nftables modes; -short runs the
// iptables mode without the drain. It needs root and the components
// tools/kube-build.sh builds; it skips and says so without them.
// ROTOR_K8S_SERVER_BINARY runs a build of the example server of your own
// (another commit's, say) in place of this tree's.
func TestRealCluster(t *testing.T) {
	modes := []cluster.ProxyMode{cluster.ProxyIPTables, cluster.ProxyNFTables}
	if testing.Short() {
		modes = modes[:1]
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			rc := startRealCluster(t, mode)
			t.Run("RolloutRestart", rc.testRolloutRestart)
			t.Run("Crash", rc.testCrash)
			if !testing.Short() {
				t.Run("Drain", rc.testDrain)
			}
			t.Run("ScaleUp", rc.testScaleUp)
		})
	}
}

// realCluster is a cluster with the example applied and calls flowing.
type realCluster struct {
	mode   cluster.ProxyMode
	c      *cluster.Cluster
	client kubernetes.Interface
	http   *http.Client // dials from the node's namespace, as a scraper on the node would
}

func startRealCluster(t *testing.T, mode cluster.ProxyMode) *realCluster {
	cfg := cluster.Config{ProxyMode: mode, Nodes: 2, NodeAgent: true}
	if err := cluster.Available(cfg); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := realcluster.Build(ctx, t.TempDir(), os.Getenv("ROTOR_K8S_SERVER_BINARY"))
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c := cluster.NewForTest(ctx, t, cfg)
	if err := realcluster.StartNodeAgents(ctx, c, bins); err != nil {
		t.Fatal(err)
	}
	rc := &realCluster{
		mode:   mode,
		c:      c,
		client: c.Client(),
		http:   &http.Client{Transport: &http.Transport{DialContext: netns.Dialer(c.NodeNetns())}, Timeout: 5 * time.Second},
	}
	t.Logf("%s: cluster of %d Nodes with node agents up in %v (%s)", mode, len(c.Nodes()), time.Since(start).Round(time.Millisecond), c.Dir())

	// What the README tells a user to do, in its order.
	applyStart := time.Now()
	n, err := realcluster.Deploy(ctx, c, ".")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d objects applied (kustomize build .); every Deployment available %v later", n, time.Since(applyStart).Round(time.Millisecond))

	for name, n := range map[string]int32{clusterIPClients: clusterIPClientPods, headlessClients: headlessClientPods} {
		if err := ops.Scale(ctx, rc.client, exampleNS, name, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{clusterIPClients, headlessClients} {
		if err := ops.WaitRollout(ctx, rc.client, exampleNS, d); err != nil {
			rc.dumpPods(t)
			t.Fatal(err)
		}
	}
	// Let every client make calls before the first operation.
	rc.waitCalls(ctx, t, 3*time.Second)
	return rc
}

// testRolloutRestart restarts the server's rollout (maxSurge 1,
// maxUnavailable 0) and wants no failed call, ClusterIP or headless, from
// the restart until the old pods are gone.
func (rc *realCluster) testRolloutRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	before := rc.clientCalls(t)
	old := rc.serverPods(ctx, t)
	start := time.Now()
	if err := ops.RolloutRestart(ctx, rc.client, exampleNS, serverDeploy, start); err != nil {
		t.Fatal(err)
	}
	if err := ops.WaitRollout(ctx, rc.client, exampleNS, serverDeploy); err != nil {
		rc.dumpPods(t)
		t.Fatal(err)
	}
	rolledOut := time.Since(start)
	rc.waitGone(ctx, t, old)
	gone := time.Since(start)
	rc.waitCalls(ctx, t, 3*time.Second) // calls after the last pod left
	after := rc.clientCalls(t)
	d := after.minus(before)
	t.Logf("%s: rollout restart of %d pods: rolled out (kubectl rollout status) in %v, old pods gone in %v; %s",
		rc.mode, len(old), rolledOut.Round(100*time.Millisecond), gone.Round(100*time.Millisecond), d)
	d.wantNoFailures(t)
}

// testDrain scales the server to 4 so that a Node holds two of its pods,
// drains the Node that holds the most, as kubectl drain does, and wants
// the PodDisruptionBudget to have refused an eviction and no call to have
// failed; it then uncordons the Node and scales the server back to 2.
func (rc *realCluster) testDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ops.Scale(ctx, rc.client, exampleNS, serverDeploy, 4); err != nil {
		t.Fatal(err)
	}
	if err := ops.WaitRollout(ctx, rc.client, exampleNS, serverDeploy); err != nil {
		rc.dumpPods(t)
		t.Fatal(err)
	}
	onNode := map[string]int{}
	for _, p := range rc.serverPods(ctx, t) {
		onNode[p.Spec.NodeName]++
	}
	node := ""
	for n, k := range onNode {
		if node == "" || k > onNode[node] || k == onNode[node] && n < node {
			node = n
		}
	}
	before := rc.clientCalls(t)
	start := time.Now()
	evictions, err := ops.Drain(ctx, rc.client, node)
	if err != nil {
		rc.dumpPods(t)
		t.Fatal(err)
	}
	drained := time.Since(start)
	for _, d := range []string{serverDeploy, clusterIPClients, headlessClients} {
		if err := ops.WaitRollout(ctx, rc.client, exampleNS, d); err != nil {
			rc.dumpPods(t)
			t.Fatal(err)
		}
	}
	available := time.Since(start)
	refused := 0
	var servers []string
	for _, e := range evictions {
		refused += e.Refused
		if strings.HasPrefix(e.Name, serverDeploy+"-") {
			servers = append(servers, fmt.Sprintf("%s evicted at +%v (refused %d×), gone at +%v", e.Name,
				e.Evicted.Sub(start).Round(100*time.Millisecond), e.Refused, e.Gone.Sub(start).Round(100*time.Millisecond)))
		}
	}
	rc.waitCalls(ctx, t, 3*time.Second)
	d := rc.clientCalls(t).minus(before)
	t.Logf("%s: drain of %s: %d pods evicted, %d evictions refused by the PodDisruptionBudget; drained in %v, every Deployment available %v after the start; %s\n%s",
		rc.mode, node, len(evictions), refused, drained.Round(100*time.Millisecond), available.Round(100*time.Millisecond), d, strings.Join(servers, "\n"))
	if len(servers) != onNode[node] {
		t.Errorf("the drain of %s evicted %d server pods, want the %d it held", node, len(servers), onNode[node])
	}
	if onNode[node] >= 2 && refused == 0 {
		t.Errorf("the PodDisruptionBudget (maxUnavailable 1) refused none of %d server evictions made at once", onNode[node])
	}
	d.wantNoFailures(t)
	if err := ops.Cordon(ctx, rc.client, node, false); err != nil {
		t.Fatal(err)
	}
	pods := rc.serverPods(ctx, t)
	if err := ops.Scale(ctx, rc.client, exampleNS, serverDeploy, 2); err != nil {
		t.Fatal(err)
	}
	if err := ops.WaitRollout(ctx, rc.client, exampleNS, serverDeploy); err != nil {
		t.Fatal(err)
	}
	// The ReplicaSet has marked 2 pods for deletion by now.
	rc.waitGone(ctx, t, podsOtherThan(pods, rc.serverPods(ctx, t)))
}

// podsOtherThan returns the pods of all that have left, or are leaving,
// the set now: those deleted or being deleted.
func podsOtherThan(all, now []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range all {
		i := slices.IndexFunc(now, func(q corev1.Pod) bool { return q.UID == p.UID })
		if i < 0 || now[i].DeletionTimestamp != nil {
			out = append(out, p)
		}
	}
	return out
}

// testCrash kills a server pod's process, as a crash would: the node
// agent must restart the container by the pod's restartPolicy (Always),
// the pod must leave Ready while it is down and come back Ready.
func (rc *realCluster) testCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := rc.serverPods(ctx, t)[0]
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s reports %d container statuses, want 1", pod.Name, len(pod.Status.ContainerStatuses))
	}
	cs := pod.Status.ContainerStatuses[0]
	pid, ok := nodeagent.ContainerPID(cs.ContainerID)
	if !ok {
		t.Fatalf("pod %s: containerID %q is not one of the node agent's", pod.Name, cs.ContainerID)
	}
	w, err := rc.client.CoreV1().Pods(exampleNS).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + pod.Name, ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	before := rc.clientCalls(t)
	start := time.Now()
	// The agent started this process for the test's pod; it is ours to kill.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the server process %d of pod %s: %v", pid, pod.Name, err)
	}
	var notReady, readyAgain time.Duration
	var last *corev1.Pod
	for readyAgain == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s: not Ready again 2 minutes after its server was killed; last status: %+v", pod.Name, last.Status)
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the pod watch ended")
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				t.Fatalf("pod %s: %s event", pod.Name, ev.Type)
			}
			last = p
			ready := podReady(p)
			switch {
			case !ready && notReady == 0:
				notReady = time.Since(start)
			case ready && notReady > 0:
				readyAgain = time.Since(start)
			}
		}
	}
	st := last.Status.ContainerStatuses[0]
	if st.RestartCount != cs.RestartCount+1 {
		t.Errorf("restartCount %d after the crash, want %d", st.RestartCount, cs.RestartCount+1)
	}
	if lt := st.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 || lt.Signal != int32(syscall.SIGKILL) {
		t.Errorf("lastState %+v, want terminated with exit code 137 (SIGKILL)", st.LastTerminationState)
	}
	rc.waitCalls(ctx, t, 3*time.Second)
	d := rc.clientCalls(t).minus(before)
	t.Logf("%s: server process of %s killed: pod not Ready after %v, container restarted (restartCount %d), Ready again after %v; %s",
		rc.mode, pod.Name, notReady.Round(10*time.Millisecond), st.RestartCount, readyAgain.Round(10*time.Millisecond), d)
}

// testScaleUp stops the headless clients, turns fair share on as an
// operator would (kubectl set env: every flag of the example server has a
// ROTOR_ variable), which rolls the server out (no call may fail), then
// scales 2 → 5 and measures how the ClusterIP clients' calls spread: the
// new pods' time to fair (their trailing 5 s share stays ≥ 0.8 of their
// fair 3/5) and the imbalance (max/mean calls per pod) over the last 30 s
// of the 90 s after the scale-up, which must be ≤ 1.15. The headless
// clients come back at the end.
func (rc *realCluster) testScaleUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Fair share is for ClusterIP fleets (README): a headless Service's
	// round_robin clients come back to the pod that sheds them, which
	// makes it back off. So the headless clients stop for this test (an
	// operator's scale to 0), and come back for the next.
	calling := []string{clusterIPClients}
	if err := ops.Scale(ctx, rc.client, exampleNS, headlessClients, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ops.Scale(ctx, rc.client, exampleNS, headlessClients, headlessClientPods); err != nil {
			t.Error(err)
		}
		if err := ops.WaitRollout(ctx, rc.client, exampleNS, headlessClients); err != nil {
			t.Error(err)
		}
	}()
	if err := ops.WaitRollout(ctx, rc.client, exampleNS, headlessClients); err != nil {
		t.Fatal(err)
	}
	before := rc.clientCalls(t)
	old := rc.serverPods(ctx, t)
	// As the README says to: fair share on, and age rotation at minutes,
	// since every age GOAWAY is a random kube-proxy pick that fair share
	// then has to even out again.
	if err := ops.SetFlags(ctx, rc.client, exampleNS, serverDeploy, serverContainer, map[string]string{"fair-share": "", "max-connection-age": "5m"}); err != nil {
		t.Fatal(err)
	}
	if err := ops.WaitRollout(ctx, rc.client, exampleNS, serverDeploy); err != nil {
		rc.dumpPods(t)
		t.Fatal(err)
	}
	rc.waitGone(ctx, t, old)
	d := rc.clientCalls(t).minus(before)
	t.Logf("%s: fair share turned on (a rollout): %s", rc.mode, d)
	d.wantNoFailures(t, calling...)
	rc.waitCalls(ctx, t, 10*time.Second) // fair share settles over 2 pods

	// The imbalance is that of the last 30 s of the 90 s after the scale.
	// A fleet of 5 often ends its first moves one connection off, a pod at 5
	// and one at 3 for a mean of 4. A shed of the pod at 5 lands, kube-proxy
	// picking at random, on the pod at 3 one time in five; otherwise it
	// moves the excess to another pod, which sheds about 2 s later: a random
	// walk of 5 steps on average. In the 18 halves with logs of 10 runs
	// (both modes) on 2026-12-03, the last shed came 4-29 s after the new
	// pods' first round; a walk begun 10 s after the scale misses 25 times
	// in a row, 0.8^25 = 0.4 %, to be still going at 60 s. One half (logs
	// lost) ended the minute at 1.21 with a pod at 5 through the last 30 s,
	// a cause this window does not address if it was a back-off carried
	// through the scale-up (example/balance/fair-share-runs.md, CI run 56).
	// (example/balance/testdata/runs-2026-12-03/real-cluster-scale-up-settle.txt)
	const (
		measure = 90 * time.Second
		tail    = 30 * time.Second
		window  = 5 * time.Second
	)
	oldPods := map[string]bool{}
	for _, p := range rc.serverPods(ctx, t) {
		oldPods[p.Name] = true
	}
	before = rc.clientCalls(t)
	var samples []callSample
	samples = append(samples, rc.sampleCalls(ctx, t))
	start := time.Now()
	if err := ops.Scale(ctx, rc.client, exampleNS, serverDeploy, 5); err != nil {
		t.Fatal(err)
	}
	var readyAt time.Duration
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for time.Since(start) < measure {
		select {
		case <-ctx.Done():
			t.Fatal(context.Cause(ctx))
		case <-ticker.C:
		}
		s := rc.sampleCalls(ctx, t)
		samples = append(samples, s)
		if readyAt == 0 && s.ready == 5 {
			readyAt = time.Since(start)
		}
	}
	d = rc.clientCalls(t).minus(before)

	// Time to fair: from the scale-up, the new pods' share of the calls of
	// the trailing 5 s stays ≥ 0.8 × 3/5 to the end.
	fairFrom := time.Duration(-1)
	for i := range samples {
		j := i - 1
		for j >= 0 && samples[i].at.Sub(samples[j].at) < window-500*time.Millisecond {
			j--
		}
		if j < 0 {
			continue
		}
		share := newShare(samples[j], samples[i], oldPods)
		switch {
		case share >= 0.8*3/5 && fairFrom < 0:
			fairFrom = samples[i].at.Sub(start)
		case share < 0.8*3/5:
			fairFrom = -1
		}
	}
	last := samples[len(samples)-1]
	i := slices.IndexFunc(samples, func(s callSample) bool { return last.at.Sub(s.at) <= tail })
	perPod := last.minus(samples[i])
	imbalance := maxOverMean(perPod)
	toFair := "never"
	if fairFrom >= 0 {
		toFair = fairFrom.Round(100 * time.Millisecond).String()
	}
	rotations := map[string]float64{}
	for reason, n := range last.rotations {
		rotations[reason] = n - samples[0].rotations[reason]
	}
	t.Logf("%s: scale-up 2 → 5 with fair share: 5 pods Ready after %v; new pods at ≥ 0.8 of their fair share from %s on; calls per pod over the last %v: %v, imbalance (max/mean) %.2f; connections open at the end %v; GOAWAYs since the scale-up by reason %v; %s",
		rc.mode, readyAt.Round(100*time.Millisecond), toFair, last.at.Sub(samples[i].at).Round(time.Second), perPod, imbalance, last.conns, rotations, d)
	d.wantNoFailures(t, calling...)
	if len(perPod) != 5 {
		t.Errorf("calls over the last 30 s reached %d pods, want 5: %v", len(perPod), perPod)
	}
	if imbalance > 1.15 {
		t.Errorf("imbalance over the last %v is %.2f (calls per pod %v), want ≤ 1.15; fair share read, on average over those seconds: %s",
			tail, imbalance, perPod, fairShareReading(samples[i:]))
	}
}

// fairShareReading sums up what fair share read over samples, by pod: its
// client connections and its load per connection against the fleet's,
// averaged over the samples that scraped the pod. A pod at more
// connections than the mean whose load per connection reads low holds its
// excess as within its share; one at the mean whose load per connection
// reads high sheds. As in fair share, a connection counts in the load only
// a second after its first call, so a pod a client just moved to reads low
// for that second.
func fairShareReading(samples []callSample) string {
	conns, load, n := map[string]float64{}, map[string]float64{}, map[string]float64{}
	var sumConns, sumLoad float64
	for _, s := range samples {
		for pod, c := range s.fsConns {
			conns[pod] += c
			load[pod] += s.fsLoad[pod]
			n[pod]++
			sumConns += c
			sumLoad += s.fsLoad[pod]
		}
	}
	var b strings.Builder
	for _, pod := range slices.Sorted(maps.Keys(conns)) {
		perConn := 0.0
		if conns[pod] > 0 && sumLoad > 0 {
			perConn = load[pod] / conns[pod] / (sumLoad / sumConns)
		}
		fmt.Fprintf(&b, "%s %.1f connections, load per connection %.2f of the fleet's; ", pod, conns[pod]/n[pod], perConn)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// newShare is the share of the calls between two samples that went to pods
// not in old.
func newShare(from, to callSample, old map[string]bool) float64 {
	var total, fresh float64
	for pod, n := range to.minus(from) {
		total += n
		if !old[pod] {
			fresh += n
		}
	}
	if total == 0 {
		return 0
	}
	return fresh / total
}

func maxOverMean(perPod map[string]float64) float64 {
	if len(perPod) == 0 {
		return 0
	}
	var sum, top float64
	for _, n := range perPod {
		sum += n
		top = max(top, n)
	}
	return top / (sum / float64(len(perPod)))
}

// callSample is every server pod's count of Hello.Hi calls handled, read
// from its /metrics (admin port 9090) at one moment, with its open client
// connections and the GOAWAYs it has sent, by reason.
type callSample struct {
	at        time.Time
	calls     map[string]float64 // by pod name
	conns     map[string]float64
	rotations map[string]float64 // by reason, every pod
	// Fair share's reading at its last round, by pod: client connections
	// and load (rotor_fairshare_own_connections, rotor_fairshare_own_load).
	fsConns, fsLoad map[string]float64
	ready           int
}

func (s callSample) minus(earlier callSample) map[string]float64 {
	d := map[string]float64{}
	for pod, n := range s.calls {
		d[pod] = n - earlier.calls[pod]
	}
	return d
}

// sampleCalls scrapes every running server pod's grpc_server_handled_total
// for hello.v1.Hello/Hi, as Prometheus would from the pods' annotations.
func (rc *realCluster) sampleCalls(ctx context.Context, t *testing.T) callSample {
	t.Helper()
	s := callSample{at: time.Now(), calls: map[string]float64{}, conns: map[string]float64{}, rotations: map[string]float64{},
		fsConns: map[string]float64{}, fsLoad: map[string]float64{}}
	for _, p := range rc.serverPods(ctx, t) {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		if podReady(&p) {
			s.ready++
		}
		m, err := rc.scrape(ctx, p.Status.PodIP)
		if err != nil {
			continue // not serving yet, or restarting
		}
		s.calls[p.Name] = m.sum("grpc_server_handled_total", map[string]string{"grpc_service": "hello.v1.Hello", "grpc_method": "Hi"})
		s.conns[p.Name] = m.sum("rotor_connections_open", nil)
		s.fsConns[p.Name] = m.sum("rotor_fairshare_own_connections", nil)
		s.fsLoad[p.Name] = m.sum("rotor_fairshare_own_load", nil)
		for _, reason := range m.values("rotor_rotations_total", "reason") {
			s.rotations[reason] += m.sum("rotor_rotations_total", map[string]string{"reason": reason})
		}
	}
	return s
}

// metrics are the families of one /metrics page.
type metrics map[string]*dto.MetricFamily

// sum adds up the samples of a counter or gauge whose labels include want.
func (m metrics) sum(name string, want map[string]string) float64 {
	return testkit.Sum(m, name, want)
}

// values lists the values a label takes in a family.
func (m metrics) values(name, label string) []string {
	var vs []string
	for _, s := range m[name].GetMetric() {
		for _, lp := range s.GetLabel() {
			if lp.GetName() == label && !slices.Contains(vs, lp.GetValue()) {
				vs = append(vs, lp.GetValue())
			}
		}
	}
	return vs
}

func (rc *realCluster) scrape(ctx context.Context, podIP string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/metrics", podIP, adminPort), nil)
	if err != nil {
		return nil, err
	}
	resp, err := rc.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	return metrics(families), err
}

// clientCalls is what the client pods have logged so far: calls served
// and failed, per client Deployment.
type clientCalls struct {
	served, failed map[string]int // by Deployment
	firstFailures  []string
}

func (c clientCalls) minus(before clientCalls) clientCalls {
	d := clientCalls{served: map[string]int{}, failed: map[string]int{}}
	for k, v := range c.served {
		d.served[k] = v - before.served[k]
	}
	for k, v := range c.failed {
		d.failed[k] = v - before.failed[k]
	}
	// Failures are rare; the lines of those in the window are the ones
	// not already there before.
	seen := map[string]bool{}
	for _, l := range before.firstFailures {
		seen[l] = true
	}
	for _, l := range c.firstFailures {
		if !seen[l] {
			d.firstFailures = append(d.firstFailures, l)
		}
	}
	return d
}

func (c clientCalls) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.served)) {
		parts = append(parts, fmt.Sprintf("%s: %d calls served, %d failed", k, c.served[k], c.failed[k]))
	}
	return strings.Join(parts, "; ")
}

// wantNoFailures fails the test if a call failed, or if one of the client
// Deployments named (both when none is) had no call served.
func (c clientCalls) wantNoFailures(t *testing.T, calling ...string) {
	t.Helper()
	if len(calling) == 0 {
		calling = []string{clusterIPClients, headlessClients}
	}
	for _, k := range calling {
		if c.served[k] == 0 {
			t.Errorf("%s: no call served in the window", k)
		}
	}
	total := 0
	for _, n := range c.failed {
		total += n
	}
	if total > 0 {
		t.Errorf("%d calls failed (%s); the first:\n%s", total, c, strings.Join(c.firstFailures[:min(len(c.firstFailures), 10)], "\n"))
	}
}

// clientCalls reads every client container's log, which the example
// client writes a line to for each call ("#N served by POD (…)" or "#N
// failed: …"). Logs of pods that are gone stay in the node agents' log
// directory.
func (rc *realCluster) clientCalls(t *testing.T) clientCalls {
	t.Helper()
	c := clientCalls{served: map[string]int{}, failed: map[string]int{}}
	for _, deploy := range []string{clusterIPClients, headlessClients} {
		files, err := filepath.Glob(filepath.Join(rc.c.PodLogDir(), exampleNS+"_"+deploy+"-*", "client", "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			served, failed, lines, err := countCalls(f)
			if err != nil {
				t.Fatal(err)
			}
			c.served[deploy] += served
			c.failed[deploy] += failed
			for _, l := range lines {
				c.firstFailures = append(c.firstFailures, filepath.Base(filepath.Dir(filepath.Dir(f)))+": "+l)
			}
		}
	}
	return c
}

func countCalls(path string) (served, failed int, failures []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		_, rest, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(rest, "served by "):
			served++
		case strings.HasPrefix(rest, "failed: "):
			failed++
			failures = append(failures, line)
		}
	}
	return served, failed, failures, sc.Err()
}

// waitCalls lets the clients call for d.
func (rc *realCluster) waitCalls(ctx context.Context, t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatal(context.Cause(ctx))
	case <-time.After(d): // calls flowing for d is the point: nothing to wait on
	}
}

// serverPods lists the server's pods, oldest first.
func (rc *realCluster) serverPods(ctx context.Context, t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := rc.client.CoreV1().Pods(exampleNS).List(ctx, metav1.ListOptions{
		LabelSelector: realcluster.ServerPodSelector(),
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return list.Items
}

// waitGone watches until every pod in pods has left the API (its node
// agent made the final delete).
func (rc *realCluster) waitGone(ctx context.Context, t *testing.T, pods []corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		for {
			cur, err := rc.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			w, err := rc.client.CoreV1().Pods(p.Namespace).Watch(ctx, metav1.ListOptions{
				FieldSelector: "metadata.name=" + p.Name, ResourceVersion: cur.ResourceVersion,
			})
			if err != nil {
				t.Fatal(err)
			}
			gone := false
			for ev := range w.ResultChan() {
				if ev.Type == watch.Deleted {
					gone = true
					break
				}
			}
			w.Stop()
			if gone {
				break
			}
			if ctx.Err() != nil {
				rc.dumpPods(t)
				t.Fatalf("pod %s still there: %v", p.Name, context.Cause(ctx))
			}
		}
	}
}

func podReady(p *corev1.Pod) bool { return realcluster.PodReady(p) }

// dumpPods logs every pod and Deployment of the example, for a failure's
// diagnosis.
func (rc *realCluster) dumpPods(t *testing.T) {
	t.Log(realcluster.DescribePods(context.Background(), rc.client))
}
