package kubelab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/testkit"
)

// The ClusterIP balances connections, not requests: fresh connections reach
// every pod, while every request over one connection reaches the same pod.
func TestClusterIPBalancesConnectionsNotRequests(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 3})
	addr := lab.ClusterIP(httpPort)

	counts := spread(t, lab, addr, 200)
	for _, name := range podNames(lab.Pods()) {
		// Each pod's share is Binomial(200, 1/3): fewer than 20 is 7 standard
		// deviations off, so this fails only if the rules are wrong.
		if counts[name] < 20 {
			t.Errorf("pod %s got %d of 200 fresh connections, want about 67: %v", name, counts[name], counts)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialHTTP(ctx, lab, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pinned := map[string]int{}
	for range 200 {
		name, err := c.ask()
		if err != nil {
			t.Fatal(err)
		}
		pinned[name]++
	}
	if len(pinned) != 1 {
		t.Errorf("200 requests over one connection reached %d pods, want 1: %v", len(pinned), pinned)
	}

	// The ClusterIP Service's name resolves to the ClusterIP.
	got, err := lab.Resolve(ctx, lab.ServiceName())
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("198.19.0.10") {
		t.Errorf("Resolve(%s) = %v, %v; want [198.19.0.10]", lab.ServiceName(), got, err)
	}
	// Commands run inside the client namespace.
	out, err := lab.ClientCommand(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "198.18.0.2/24") {
		t.Errorf("ClientCommand ip addr = %q, %v; want the client's address 198.18.0.2/24", out, err)
	}
}

// Scaling up does not move established connections (conntrack keeps them on
// their pod) while new connections reach the new pods; the rules are
// kube-proxy's, rewritten for four endpoints.
func TestScaleUpKeepsEstablishedConnections(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 2})
	ctx := testkit.Context(t, 30*time.Second)

	c, err := dialHTTP(ctx, lab, lab.ClusterIP(httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := c.ask()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := lab.ConntrackCount(ctx); err != nil || n < 1 {
		t.Errorf("ConntrackCount = %d, %v; want at least the open connection", n, err)
	}

	if err := lab.ScaleTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	pods := lab.Pods()
	if len(pods) != 4 {
		t.Fatalf("Pods() = %v, want 4", podNames(pods))
	}
	for _, p := range pods {
		if !p.Ready || !p.Running {
			t.Errorf("pod %+v not ready and running", p)
		}
	}
	for range 50 {
		name, err := c.ask()
		if err != nil {
			t.Fatal(err)
		}
		if name != first {
			t.Fatalf("established connection moved from %s to %s after scale-up", first, name)
		}
	}

	counts := spread(t, lab, lab.ClusterIP(httpPort), 200)
	for _, p := range pods {
		if counts[p.Name] == 0 {
			t.Errorf("no fresh connection reached pod %s: %v", p.Name, counts)
		}
	}

	save, err := lab.IPTablesSave(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc := svcChainName("lab/hello:http", "tcp")
	for _, want := range []string{
		"-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
		"-d 198.19.0.10/32 -p tcp -m comment --comment \"lab/hello:http cluster IP\" -m tcp --dport 8080 -j " + svc,
		"--probability 0.2500000",
		"--probability 0.3333333",
		"--probability 0.5000000",
	} {
		if !strings.Contains(save, want) {
			t.Errorf("iptables-save (%s) lacks %q:\n%s", lab.IPTablesVariant(), want, save)
		}
	}
	for _, p := range pods {
		dnat := regexp.MustCompile(`(?m)^-A (KUBE-SEP-[A-Z2-7]{16}) .*-j DNAT --to-destination ` +
			regexp.QuoteMeta(p.IP.String()+":8080") + `$`).FindStringSubmatch(save)
		if dnat == nil || dnat[1] != sepChainName("lab/hello:http", "tcp", p.IP.String()+":8080") {
			t.Errorf("no kube-proxy KUBE-SEP chain with DNAT to %s:8080 in:\n%s", p.IP, save)
		}
	}
	if got := strings.Count(save, "-j KUBE-SEP-"); got != 8 {
		t.Errorf("%d jumps to KUBE-SEP chains, want 4 endpoints × 2 ports", got)
	}
}

// The headless Service's DNS answer is exactly the ready pods, following
// scale-up and scale-down; with no pods the ClusterIP refuses connections.
func TestHeadlessDNSFollowsReadyPods(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 3})
	ctx := testkit.Context(t, 30*time.Second)
	if want := "dns://198.18.0.1:53/hello-headless.lab.svc.cluster.local:50051"; lab.HeadlessTarget(grpcPort) != want {
		t.Errorf("HeadlessTarget = %s, want %s", lab.HeadlessTarget(grpcPort), want)
	}

	check := func(wantPods int) {
		t.Helper()
		var want []netip.Addr
		for _, p := range lab.Pods() {
			want = append(want, p.IP)
		}
		if len(want) != wantPods {
			t.Fatalf("%d pods, want %d", len(want), wantPods)
		}
		want = sortedAddrs(want)
		for _, name := range []string{lab.HeadlessName(), "hello-headless"} {
			got, err := lab.Resolve(ctx, name)
			if err != nil {
				t.Fatalf("Resolve(%s): %v", name, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Resolve(%s) = %v, want the ready pods %v", name, got, want)
			}
		}
	}
	check(3)
	if err := lab.ScaleTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	check(5)
	if err := lab.ScaleTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check(2)
	if idx := []int{lab.Pods()[0].Index, lab.Pods()[1].Index}; idx[0] != 0 || idx[1] != 1 {
		t.Errorf("scale-down kept pods %v, want the oldest, 0 and 1", idx)
	}
	if err := lab.ScaleTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check(0)
	// kube-proxy rejects connections to a Service without endpoints.
	start := time.Now()
	_, err := askFresh(ctx, lab, lab.ClusterIP(httpPort))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial to a Service without endpoints: %v, want connection refused", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("refusal took %v, want it at once", time.Since(start))
	}
}

// Scale-down removes the endpoint before SIGTERM: no connection dialled
// after the pod got SIGTERM reaches it, although it keeps serving for a
// while (like a preStop sleep); then the process exits. A pod that ignores
// SIGTERM is killed after the grace period.
func TestScaleDownRemovesEndpointBeforeSIGTERM(t *testing.T) {
	t.Parallel()
	echoPath := echoBinary(t)
	const grace = time.Second
	lab := newLab(t, Config{
		Replicas:               2,
		TerminationGracePeriod: grace,
		ServerCommand: func(p Pod) Command {
			args := []string{"-grpc", strconv.Itoa(grpcPort), "-http", strconv.Itoa(httpPort), "-term-delay", "300ms"}
			if p.Index == 2 {
				args = append(args, "-ignore-term")
			}
			return Command{Path: echoPath, Args: args}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	victim := lab.Pods()[1]
	addr := lab.ClusterIP(httpPort)

	type sample struct {
		dialed time.Time
		pod    string
	}
	var samples []sample
	stop := make(chan struct{})
	var hammerErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			dialed := time.Now()
			name, err := askFresh(ctx, lab, addr)
			if err != nil {
				hammerErr = err
				return
			}
			samples = append(samples, sample{dialed, name})
		}
	})
	err := lab.ScaleTo(ctx, 1)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if hammerErr != nil {
		t.Errorf("a connection failed during scale-down: %v", hammerErr)
	}

	log, err := os.ReadFile(victim.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sigterm-at=(\d+)`).FindSubmatch(log)
	if m == nil {
		t.Fatalf("pod %s never got SIGTERM; log:\n%s", victim.Name, log)
	}
	ns, _ := strconv.ParseInt(string(m[1]), 10, 64)
	sigterm := time.Unix(0, ns)
	var after, victimAfter int
	for _, s := range samples {
		if s.dialed.After(sigterm) {
			after++
			if s.pod == victim.Name {
				victimAfter++
			}
		}
	}
	if after == 0 {
		t.Fatalf("no connection was dialled after SIGTERM (%d samples); the test proves nothing", len(samples))
	}
	if victimAfter > 0 {
		t.Errorf("%d of %d connections dialled after SIGTERM reached the terminating pod %s", victimAfter, after, victim.Name)
	}
	if !processGone(victim.PID) {
		t.Errorf("pod %s (pid %d) still exists after scale-down", victim.Name, victim.PID)
	}
	if pods := lab.Pods(); len(pods) != 1 || pods[0].Name == victim.Name {
		t.Errorf("Pods() = %v after scale-down, want only the survivor", podNames(pods))
	}
	counts := spread(t, lab, addr, 20)
	if counts[lab.Pods()[0].Name] != 20 {
		t.Errorf("connections after scale-down went to %v, want all on the survivor", counts)
	}

	// A pod that ignores SIGTERM gets SIGKILL after the grace period.
	if err := lab.ScaleTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	stubborn := lab.Pods()[1]
	if stubborn.Index != 2 {
		t.Fatalf("new pod has index %d, want 2", stubborn.Index)
	}
	start := time.Now()
	if err := lab.ScaleTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < grace || took > grace+3*time.Second {
		t.Errorf("deleting a pod that ignores SIGTERM took %v, want the grace period %v", took, grace)
	}
	if !processGone(stubborn.PID) {
		t.Errorf("pod %s (pid %d) survived SIGKILL", stubborn.Name, stubborn.PID)
	}
}

// nginx balances requests, not connections: calls over one gRPC connection
// reach every pod, and a pod added by a scale-up gets requests without
// reconnecting.
func TestL7BalancesRequests(t *testing.T) {
	t.Parallel()
	if err := AvailableL7(); err != nil {
		t.Skip(err)
	}
	lab := newLab(t, Config{Replicas: 3, L7: true, L7Port: grpcPort})
	ctx := testkit.Context(t, 30*time.Second)
	if lab.L7Addr() != "198.18.0.3:50051" {
		t.Errorf("L7Addr = %s", lab.L7Addr())
	}
	conn, err := grpc.NewClient("passthrough:///"+lab.L7Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return lab.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	calls := func(n int) map[string]int {
		t.Helper()
		counts := map[string]int{}
		for range n {
			var header metadata.MD
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header)); err != nil {
				t.Fatalf("Check through nginx: %v", err)
			}
			counts[strings.Join(header.Get("pod-name"), ",")]++
		}
		return counts
	}

	counts := calls(30)
	for _, name := range podNames(lab.Pods()) {
		if counts[name] == 0 {
			t.Errorf("no call over one connection reached pod %s: %v", name, counts)
		}
	}
	if err := lab.ScaleTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	newest := lab.Pods()[3].Name
	if counts := calls(40); counts[newest] == 0 {
		t.Errorf("no call reached the new pod %s after scale-up: %v", newest, counts)
	}
}

// Close removes every namespace and process the lab created, including
// nginx's workers and client commands, and can be called twice.
func TestCloseRemovesEverything(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	withL7 := AvailableL7() == nil
	lab, err := New(context.Background(), Config{
		Replicas: 2, Ports: testPorts, ServerCommand: echoCommand(t), L7: withL7, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{lab.dns.proc.PID()}
	for _, p := range lab.Pods() {
		pids = append(pids, p.PID)
	}
	if withL7 {
		pids = append(pids, lab.l7.proc.PID())
	}
	client := lab.ClientCommand(context.Background(), "sleep", "60")
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	if len(labNamespaces(t, lab.Prefix())) == 0 {
		t.Fatal("no namespaces found with the lab's prefix")
	}

	if err := lab.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := client.Wait(); err == nil {
		t.Error("client command survived Close")
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := labNamespaces(t, lab.Prefix()); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if _, err := os.Stat(lab.Dir()); !os.IsNotExist(err) {
		t.Errorf("lab directory %s left after Close: %v", lab.Dir(), err)
	}
	if err := lab.ScaleTo(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("ScaleTo after Close: %v, want ErrClosed", err)
	}
}

// A New that fails half-way (a pod never becomes ready) removes what it had
// created: namespaces, dnsmasq, the started pods and the directory.
func TestNewFailureCleansUp(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	echoPath := echoBinary(t)
	tmp := t.TempDir()
	_, err := New(context.Background(), Config{
		Replicas:     2,
		Ports:        testPorts,
		ReadyTimeout: 3 * time.Second,
		TempDir:      tmp,
		ServerCommand: func(p Pod) Command {
			if p.Index == 1 {
				return Command{Path: "/nonexistent/server"}
			}
			return Command{Path: echoPath, Args: []string{"-grpc", "50051", "-http", "8080"}}
		},
	})
	if err == nil {
		t.Fatal("New succeeded with a pod that cannot start")
	}
	if !strings.Contains(err.Error(), "hello-") || !strings.Contains(err.Error(), "exited") {
		t.Errorf("error does not say which pod failed and how: %v", err)
	}
	// No lab runs in parallel with this test, so any namespace of this
	// process is a leftover.
	if left := labNamespaces(t, fmt.Sprintf("rotorlab-%d-", os.Getpid())); len(left) > 0 {
		t.Errorf("namespaces left after a failed New: %v", left)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("files left in the lab's TempDir after a failed New: %v", entries)
	}
}

// CleanStale removes a lab whose owner died, with what still runs in it,
// and leaves labs of live processes alone.
func TestCleanStale(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ipPath, _ := netns.FindTool("ip")
	ctx := context.Background()
	dead := testkit.DeadPID(t)
	stale := fmt.Sprintf("rotorlab-%d-c0ffee-node", dead)
	live := fmt.Sprintf("rotorlab-%d-c0ffee-node", os.Getpid())
	for _, ns := range []string{stale, live} {
		if err := netns.Add(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	defer netns.Delete(ctx, live)
	defer netns.Delete(ctx, stale)
	orphan := exec.Command(ipPath, "netns", "exec", stale, "sleep", "60")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	// The orphan is a process that lives in the stale lab: wait until it
	// has entered the namespace (ip netns exec becomes sleep, same PID).
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command(ipPath, "netns", "pids", stale).Output()
		if slices.Contains(strings.Fields(string(out)), strconv.Itoa(orphan.Process.Pid)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the orphan did not enter the stale namespace within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	left, err := Leftovers()
	if err != nil || !slices.Contains(left, stale) || slices.Contains(left, live) {
		t.Errorf("Leftovers() = %v, %v; want %s and not %s", left, err, stale, live)
	}
	removed, err := CleanStale(ctx)
	if err != nil || !slices.Contains(removed, stale) {
		t.Errorf("CleanStale() = %v, %v; want %s removed", removed, err, stale)
	}
	if err := orphan.Wait(); err == nil {
		t.Error("process in the stale lab survived CleanStale")
	}
	names, _ := netns.List()
	if slices.Contains(names, stale) || !slices.Contains(names, live) {
		t.Errorf("after CleanStale namespaces are %v; want %s gone and %s kept", names, stale, live)
	}
}

// A killed pod stays an endpoint, so some new connections fail, until it is
// replaced; ReplacePod brings a ready pod in before the old one goes.
func TestKillAndReplacePod(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 2})
	ctx := testkit.Context(t, 30*time.Second)
	addr := lab.ClusterIP(httpPort)
	killed := lab.Pods()[0]
	if err := lab.KillPod(killed.Index); err != nil {
		t.Fatal(err)
	}
	if p := lab.Pods()[0]; p.Running || !p.Ready {
		t.Errorf("killed pod: Running %v Ready %v, want not running but still an endpoint", p.Running, p.Ready)
	}
	failed := 0
	for range 40 {
		if _, err := askFresh(ctx, lab, addr); err != nil {
			failed++
		}
	}
	// Each fresh connection goes to the dead pod with probability 1/2.
	if failed == 0 {
		t.Error("no connection failed while a killed pod was still an endpoint")
	}

	replacement, err := lab.ReplacePod(ctx, killed.Index)
	if err != nil {
		t.Fatal(err)
	}
	pods := lab.Pods()
	if len(pods) != 2 || slices.Contains(podNames(pods), killed.Name) || !slices.Contains(podNames(pods), replacement.Name) {
		t.Fatalf("Pods() = %v, want the survivor and %s", podNames(pods), replacement.Name)
	}
	if replacement.IP == killed.IP {
		t.Errorf("replacement reuses the dead pod's address %s", killed.IP)
	}
	counts := spread(t, lab, addr, 100)
	if counts[replacement.Name] == 0 || len(counts) != 2 {
		t.Errorf("after ReplacePod connections went to %v, want both live pods", counts)
	}
	got, err := lab.Resolve(ctx, lab.HeadlessName())
	if err != nil || slices.Contains(got, killed.IP) || !slices.Contains(got, replacement.IP) {
		t.Errorf("headless DNS = %v, %v; want the replacement %s and not %s", got, err, replacement.IP, killed.IP)
	}
	if err := lab.DeletePod(ctx, killed.Index); err == nil {
		t.Error("DeletePod of a pod that is already gone succeeded")
	}
}

// signalHelperEnv makes the test binary act as a command that owns a lab
// with CloseOnSignal (see TestMain).
const signalHelperEnv = "KUBELAB_SIGNAL_HELPER_ECHO"

// runSignalHelper builds a lab, prints its prefix and waits for a signal.
func runSignalHelper(echoPath string) {
	lab, err := New(context.Background(), Config{
		Replicas: 2, Ports: testPorts,
		ServerCommand: func(Pod) Command { return Command{Path: echoPath, Args: []string{"-grpc", "50051", "-http", "8080"}} },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	lab.CloseOnSignal()
	fmt.Println(lab.Prefix())
	select {}
}

// SIGTERM to a command that called CloseOnSignal removes its lab, and the
// command still dies of the signal.
func TestCloseOnSignal(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), signalHelperEnv+"="+echoBinary(t))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	prefix, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper printed no lab prefix: %v", err)
	}
	prefix = strings.TrimSpace(prefix)
	if len(labNamespaces(t, prefix)) == 0 {
		t.Fatalf("helper's lab %s has no namespaces", prefix)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("helper ended with %v, want death by SIGTERM", err)
	}
	if left := labNamespaces(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after SIGTERM: %v", left)
	}
}

// RollPod moves on as a Deployment's rollout does: the new pod is ready and
// an endpoint, the old pod is out of the endpoints and got SIGTERM, and
// RollPod returns while the old pod still serves its termination grace
// period (here a 2 s preStop-like delay). WaitTerminated then sees it go,
// with its namespace.
func TestRollPodDoesNotWaitForTheOldPod(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 1, ServerCommand: echoCommand(t, "-term-delay", "2s")})
	ctx := testkit.Context(t, 30*time.Second)
	old := lab.Pods()[0]
	begin := time.Now()
	fresh, err := lab.RollPod(ctx, old.Index)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 1500*time.Millisecond {
		t.Errorf("RollPod took %v; it must not wait for the old pod's 2 s exit", took)
	}
	if pods := lab.Pods(); len(pods) != 1 || pods[0].Name != fresh.Name || !pods[0].Ready {
		t.Errorf("Pods() = %+v, want only the new, ready pod %s", pods, fresh.Name)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", old.PID)); err != nil {
		t.Errorf("the old pod's server is gone at once (%v); it should be serving its termination delay", err)
	}
	addrs, err := lab.Resolve(ctx, lab.HeadlessName())
	if err != nil || len(addrs) != 1 || addrs[0] != fresh.IP {
		t.Errorf("the headless name resolves to %v (%v), want only the new pod %v", addrs, err, fresh.IP)
	}
	if err := lab.WaitTerminated(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 2*time.Second {
		t.Errorf("the old pod was gone after %v, before its 2 s termination delay", took)
	}
	names, _ := netns.List()
	for _, n := range names {
		if strings.HasSuffix(n, fmt.Sprintf("-pod%d", old.Index)) && strings.HasPrefix(n, lab.Prefix()) {
			t.Errorf("the old pod's namespace %s is still there", n)
		}
	}
}

// Programs in the client namespace resolve the lab's names as pods do,
// through the /etc/resolv.conf the lab gives them, and Close removes it.
func TestClientCommandUsesTheLabsDNS(t *testing.T) {
	t.Parallel()
	lab := newLab(t, Config{Replicas: 2})
	ctx := testkit.Context(t, 30*time.Second)
	out, err := lab.ClientCommand(ctx, "getent", "ahostsv4", "hello-headless").Output()
	if err != nil {
		t.Fatalf("getent in the client namespace: %v", err)
	}
	for _, p := range lab.Pods() {
		if !strings.Contains(string(out), p.IP.String()) {
			t.Errorf("the short name resolved to %q, missing pod %v", out, p.IP)
		}
	}
	conf := filepath.Join(netns.ConfigDir, lab.Prefix()+"-client")
	if _, err := os.Stat(conf); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("%s is left after Close (%v)", conf, err)
	}
}
