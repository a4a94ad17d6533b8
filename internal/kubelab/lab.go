package kubelab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
	"github.com/rotorkit/rotor/internal/netns"
)

// ErrClosed is returned by operations on a closed lab.
var ErrClosed = errors.New("kubelab: lab is closed")

// ServicePort is one port of the lab's Services. Every pod serves it on the
// same port number (targetPort equals port).
type ServicePort struct {
	// Name is the port's name in the Service, e.g. "grpc"; kube-proxy's
	// chain names and comments include it. Required, unique, a DNS label.
	Name string
	// Port is the TCP port, 1 to 65535, on the ClusterIP and on every pod.
	Port int
}

// Command is the program a pod runs.
type Command struct {
	// Path is the program, absolute or found in PATH by ip netns exec.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is added to the lab's own environment, before POD_NAME, POD_IP
	// and POD_NAMESPACE, which the lab always sets.
	Env []string
}

// Config describes a lab. The zero value of every field but ServerCommand
// has a documented default.
type Config struct {
	// Replicas is the number of pods New starts, 0 to 245. Zero starts none
	// (the Services then have no endpoints and refuse connections).
	Replicas int
	// Ports are the ports of both Services (ClusterIP and headless). Empty
	// means a single port {Name: "grpc", Port: 50051}.
	Ports []ServicePort
	// ServerCommand returns the command a pod runs. It is called once per
	// pod, with the pod's Name, Index, IP and LogPath filled in, possibly
	// from several goroutines at once when pods start together. The server
	// should listen on every port in Ports and exit on SIGTERM. Required.
	ServerCommand func(Pod) Command
	// Service is the Services' name: the ClusterIP Service is Service, the
	// headless one Service+"-headless". Empty means "hello".
	Service string
	// Namespace is the Kubernetes namespace in names and chain comments.
	// Empty means "lab".
	Namespace string
	// L7 starts nginx as a per-request gRPC balancer in front of the ready
	// pods (see Lab.L7Addr). Needs nginx (see AvailableL7).
	L7 bool
	// L7Port is the Service port nginx listens on and forwards to. Zero
	// means the first of Ports; otherwise it must be one of Ports.
	L7Port int
	// L7Workers is nginx's worker_processes. Zero means 1, which makes its
	// round robin exact; negative is an error.
	L7Workers int
	// TerminationGracePeriod is how long a deleted pod may take to exit
	// after SIGTERM before it gets SIGKILL. Zero means 30 s, Kubernetes'
	// default; negative is an error.
	TerminationGracePeriod time.Duration
	// ReadyTimeout bounds each wait for readiness: a pod's ports, dnsmasq
	// and nginx answering, a reload taking effect. Zero means 10 s;
	// negative is an error.
	ReadyTimeout time.Duration
	// TempDir is where the lab creates its directory for logs and
	// configuration. Empty means os.TempDir().
	TempDir string
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.ServerCommand == nil {
		return c, errors.New("kubelab: Config.ServerCommand is nil; it must return the command each pod runs")
	}
	if c.Replicas < 0 || c.Replicas > maxPodSlots {
		return c, fmt.Errorf("kubelab: Config.Replicas is %d; it must be 0 to %d", c.Replicas, maxPodSlots)
	}
	if len(c.Ports) == 0 {
		c.Ports = []ServicePort{{Name: "grpc", Port: 50051}}
	}
	c.Ports = slices.Clone(c.Ports)
	seenName, seenPort := map[string]bool{}, map[int]bool{}
	for i, p := range c.Ports {
		if !dnsLabel.MatchString(p.Name) || seenName[p.Name] {
			return c, fmt.Errorf("kubelab: Config.Ports[%d].Name is %q; it must be a unique lowercase DNS label", i, p.Name)
		}
		if p.Port < 1 || p.Port > 65535 || seenPort[p.Port] {
			return c, fmt.Errorf("kubelab: Config.Ports[%d].Port is %d; it must be a unique port 1 to 65535", i, p.Port)
		}
		seenName[p.Name], seenPort[p.Port] = true, true
	}
	if c.Service == "" {
		c.Service = "hello"
	}
	if c.Namespace == "" {
		c.Namespace = "lab"
	}
	if !dnsLabel.MatchString(c.Service) || len(c.Service) > 40 {
		return c, fmt.Errorf("kubelab: Config.Service is %q; it must be a lowercase DNS label of at most 40 characters", c.Service)
	}
	if !dnsLabel.MatchString(c.Namespace) {
		return c, fmt.Errorf("kubelab: Config.Namespace is %q; it must be a lowercase DNS label", c.Namespace)
	}
	if c.L7Port == 0 {
		c.L7Port = c.Ports[0].Port
	} else if !seenPort[c.L7Port] {
		return c, fmt.Errorf("kubelab: Config.L7Port is %d; it must be one of Config.Ports", c.L7Port)
	}
	for _, err := range []error{
		conf.Default("Config.L7Workers", &c.L7Workers, 1),
		conf.Default("Config.TerminationGracePeriod", &c.TerminationGracePeriod, 30*time.Second),
		conf.Default("Config.ReadyTimeout", &c.ReadyTimeout, 10*time.Second),
	} {
		if err != nil {
			return c, fmt.Errorf("kubelab: %w", err)
		}
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	return c, nil
}

// Lab is a running Kubernetes-node lab. Its methods are safe for concurrent
// use; operations that change the pods run one at a time.
type Lab struct {
	cfg          Config
	prefix       string // "rotorlab-<owner pid>-<6 hex>"
	dir          string
	ipPath       string
	ipt          iptablesTools
	nsNode       string
	nsClient     string
	nsL7         string
	templateHash string

	ctx    context.Context // ends when Close starts, aborting operations in flight
	cancel context.CancelFunc
	opMu   sync.Mutex // serialises operations that change the lab

	// Set by New, then changed only by operations holding opMu.
	chains []string // nat chains the last iptables update left in place
	dns    *dnsServer
	l7     *l7Server

	mu          sync.Mutex // guards the fields below and each pod's ready and proc
	closed      bool
	pods        []*pod
	terminating map[*pod]struct{} // pods RollPod sent SIGTERM, not gone yet
	terminated  sync.WaitGroup    // one per terminating pod
	nextIndex   int
	nextSlot    int
}

// New builds a lab: the node, client and (with Config.L7) nginx namespaces,
// the Services' iptables rules and DNS, and Config.Replicas ready pods.
// It first removes labs left by processes that died without closing them
// (see CleanStale). On error everything New created is removed again.
// Callers must Close the lab.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.L7 {
		if err := AvailableL7(); err != nil {
			return nil, err
		}
	}
	ipPath, err := netns.FindTool("ip")
	if err != nil {
		return nil, err
	}
	_, _ = CleanStale(ctx) // best effort: a stale lab is only wasted memory

	prefix, err := labs.New()
	if err != nil {
		return nil, fmt.Errorf("kubelab: %w", err)
	}
	l := &Lab{cfg: cfg, prefix: prefix, ipPath: ipPath}
	l.nsNode, l.nsClient = l.nsName("node"), l.nsName("client")
	if cfg.L7 {
		l.nsL7 = l.nsName("l7")
	}
	// Pod names carry a pod-template-hash like a Deployment's pods do.
	sum := sha256.Sum256([]byte(cfg.Namespace + "/" + cfg.Service))
	l.templateHash = hex.EncodeToString(sum[:2])
	l.ctx, l.cancel = context.WithCancel(context.Background())

	if err := l.setup(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// setup creates everything but the pods' namespaces, then the pods.
func (l *Lab) setup(ctx context.Context) error {
	ctx, done, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer done()

	l.dir = filepath.Join(l.cfg.TempDir, l.prefix)
	if err := os.Mkdir(l.dir, 0o700); err != nil {
		l.dir = ""
		return fmt.Errorf("kubelab: %w", err)
	}
	if err := netns.Add(ctx, l.nsNode); err != nil {
		return err
	}
	if err := addBridge(ctx, l.nsNode); err != nil {
		return err
	}
	if err := netns.Add(ctx, l.nsClient); err != nil {
		return err
	}
	if err := attachToBridge(ctx, l.nsNode, "vc", l.nsClient, clientAddr, true); err != nil {
		return err
	}
	if err := l.writeClientResolvConf(); err != nil {
		return err
	}
	if l.ipt, err = chooseIPTables(ctx, l.ipPath, l.nsClient); err != nil {
		return err
	}
	if err := l.ipt.restoreIn(ctx, l.ipPath, l.nsClient, portalsInput); err != nil {
		return err
	}
	if err := l.syncIPTables(ctx); err != nil {
		return err
	}
	if err := l.startDNS(ctx); err != nil {
		return err
	}
	if l.cfg.L7 {
		if err := netns.Add(ctx, l.nsL7); err != nil {
			return err
		}
		if err := attachToBridge(ctx, l.nsNode, "vl7", l.nsL7, l7Addr, true); err != nil {
			return err
		}
		if err := l.startL7(ctx); err != nil {
			return err
		}
	}
	if l.cfg.Replicas > 0 {
		if _, err := l.startPods(ctx, l.cfg.Replicas); err != nil {
			return err
		}
	}
	return nil
}

// begin starts an operation that changes the lab: it waits for the previous
// one and returns a context that also ends when Close starts.
func (l *Lab) begin(ctx context.Context) (context.Context, func(), error) {
	l.opMu.Lock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.opMu.Unlock()
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		l.opMu.Unlock()
	}, nil
}

// syncEndpoints publishes the ready pods: one iptables-restore transaction,
// then dnsmasq and nginx, each waited for until it serves the new set.
func (l *Lab) syncEndpoints(ctx context.Context) error {
	if err := l.syncIPTables(ctx); err != nil {
		return err
	}
	ready := l.readyAddrs()
	if l.dns != nil {
		if err := l.reloadDNS(ctx, ready); err != nil {
			return err
		}
	}
	if l.l7 != nil {
		if err := l.reloadL7(ctx, ready); err != nil {
			return err
		}
	}
	return nil
}

// syncIPTables rewrites the Services' rules for the ready pods.
func (l *Lab) syncIPTables(ctx context.Context) error {
	rules := serviceRules{
		namespace: l.cfg.Namespace,
		service:   l.cfg.Service,
		clusterIP: clusterIP,
		ports:     l.cfg.Ports,
		endpoints: l.readyAddrs(),
	}
	input, chains := rules.render(l.chains)
	if err := l.ipt.restoreIn(ctx, l.ipPath, l.nsClient, input); err != nil {
		return err
	}
	l.chains = chains
	return nil
}

// ScaleTo changes the number of pods to replicas, like scaling a
// Deployment. New pods are started together and become endpoints in one
// update once all are ready. Removed pods are chosen as a ReplicaSet does
// (pods that are not running or not ready first, then the newest) and
// deleted like DeletePod. ScaleTo returns when the change is complete.
func (l *Lab) ScaleTo(ctx context.Context, replicas int) error {
	if replicas < 0 || replicas > maxPodSlots {
		return fmt.Errorf("kubelab: ScaleTo(%d): replicas must be 0 to %d", replicas, maxPodSlots)
	}
	ctx, done, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer done()

	l.mu.Lock()
	current := slices.Clone(l.pods)
	l.mu.Unlock()
	switch {
	case replicas > len(current):
		_, err := l.startPods(ctx, replicas-len(current))
		return err
	case replicas < len(current):
		l.mu.Lock()
		slices.SortStableFunc(current, func(a, b *pod) int {
			if a.proc.Exited() != b.proc.Exited() {
				if a.proc.Exited() {
					return -1
				}
				return 1
			}
			if a.ready != b.ready {
				if !a.ready {
					return -1
				}
				return 1
			}
			return b.index - a.index
		})
		l.mu.Unlock()
		return l.removePods(ctx, current[:len(current)-replicas], l.cfg.TerminationGracePeriod)
	}
	return nil
}

// ReplacePod performs one step of a rolling restart: it starts a new pod,
// waits until it is ready and an endpoint, then deletes the pod with the
// given Index like DeletePod. It returns the new pod.
func (l *Lab) ReplacePod(ctx context.Context, index int) (Pod, error) {
	return l.surge(ctx, index, func(ctx context.Context, old *pod) error {
		return l.removePods(ctx, []*pod{old}, l.cfg.TerminationGracePeriod)
	})
}

// surge is a step of a rollout with maxSurge 1 and maxUnavailable 0: it
// starts a new pod and waits until it is ready and an endpoint, then hands
// the pod with the given Index to retire. It returns the new pod.
func (l *Lab) surge(ctx context.Context, index int, retire func(context.Context, *pod) error) (Pod, error) {
	var fresh Pod
	err := l.withPod(ctx, index, func(ctx context.Context, old *pod) error {
		started, err := l.startPods(ctx, 1)
		if err != nil {
			return err
		}
		err = retire(ctx, old)
		l.mu.Lock()
		fresh = started[0].snapshot()
		l.mu.Unlock()
		return err
	})
	return fresh, err
}

// withPod runs op, an operation that changes the lab (see begin), on the
// pod with the given Index.
func (l *Lab) withPod(ctx context.Context, index int, op func(context.Context, *pod) error) error {
	ctx, done, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	p, err := l.podByIndex(index)
	if err != nil {
		return err
	}
	return op(ctx, p)
}

// RollPod performs one step of a Deployment's rollout (maxSurge 1,
// maxUnavailable 0): it starts a new pod and waits until it is ready and an
// endpoint; then the pod with the given Index leaves the endpoints
// (iptables, DNS, nginx) and gets SIGTERM, and RollPod returns the new pod
// without waiting for the old one to exit, as a rollout moves on while old
// pods terminate. The old pod's end (its termination grace period, SIGKILL,
// the removal of its namespace) goes on in the background and is no longer
// in Pods; WaitTerminated waits for it, and Close ends it.
func (l *Lab) RollPod(ctx context.Context, index int) (Pod, error) {
	return l.surge(ctx, index, l.terminateInBackground)
}

// terminateInBackground takes the pod out of the endpoints and sends it
// SIGTERM; its grace period, SIGKILL and the removal of its namespace go on
// in the background, counted by l.terminated.
func (l *Lab) terminateInBackground(ctx context.Context, old *pod) error {
	l.mu.Lock()
	old.ready = false
	l.mu.Unlock()
	err := l.syncEndpoints(ctx)
	l.forgetPod(old)
	l.mu.Lock()
	if l.terminating == nil {
		l.terminating = map[*pod]struct{}{}
	}
	l.terminating[old] = struct{}{}
	l.terminated.Add(1)
	l.mu.Unlock()
	if old.proc != nil {
		_ = old.proc.Signal(syscall.SIGTERM)
	}
	go func() {
		defer l.terminated.Done()
		if old.proc != nil {
			old.proc.Await(l.ctx, l.cfg.TerminationGracePeriod)
		}
		_ = l.destroyPod(old)
		l.mu.Lock()
		delete(l.terminating, old)
		l.mu.Unlock()
	}()
	return err
}

// WaitTerminated waits until every pod RollPod sent SIGTERM has exited (or
// got SIGKILL at the end of its grace period) and is removed, or ctx ends.
func (l *Lab) WaitTerminated(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		l.terminated.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DeletePod deletes the pod with the given Index as Kubernetes deletes a
// pod, with nothing to replace it: its endpoint is removed from iptables, DNS
// and nginx first, then the server gets SIGTERM, then SIGKILL if it has not
// exited after Config.TerminationGracePeriod.
func (l *Lab) DeletePod(ctx context.Context, index int) error {
	return l.withPod(ctx, index, func(ctx context.Context, p *pod) error {
		return l.removePods(ctx, []*pod{p}, l.cfg.TerminationGracePeriod)
	})
}

// KillPod sends SIGKILL to the server of the pod with the given Index and
// waits until it is gone, without touching its endpoint: like a crashed pod
// before Kubernetes notices, the Services keep sending it connections. The
// pod stays in Pods (Running false) until DeletePod, ReplacePod or ScaleTo
// removes it.
func (l *Lab) KillPod(index int) error {
	return l.withPod(context.Background(), index, func(_ context.Context, p *pod) error {
		p.proc.Kill()
		return nil
	})
}

// Pods returns the lab's pods in creation order.
func (l *Lab) Pods() []Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	pods := make([]Pod, 0, len(l.pods))
	for _, p := range l.pods {
		if p.proc != nil {
			pods = append(pods, p.snapshot())
		}
	}
	slices.SortFunc(pods, func(a, b Pod) int { return a.Index - b.Index })
	return pods
}

// ClusterIP returns the ClusterIP Service's address for port, such as
// "198.19.0.10:50051". Dial it from the client namespace.
func (l *Lab) ClusterIP(port int) string {
	return netip.AddrPortFrom(clusterIP, uint16(port)).String()
}

// DNSServer returns the address of the lab's DNS server, "198.18.0.1:53".
func (l *Lab) DNSServer() string {
	return netip.AddrPortFrom(bridgeAddr, dnsPort).String()
}

// HeadlessName returns the headless Service's fully qualified name, such as
// "hello-headless.lab.svc.cluster.local"; it resolves to the ready pods.
func (l *Lab) HeadlessName() string { return l.headlessName() }

// ServiceName returns the ClusterIP Service's fully qualified name, such as
// "hello.lab.svc.cluster.local"; it resolves to the ClusterIP.
func (l *Lab) ServiceName() string { return l.serviceName() }

// HeadlessTarget returns a gRPC target that resolves the headless Service
// with the lab's DNS server, such as
// "dns://198.18.0.1:53/hello-headless.lab.svc.cluster.local:50051". grpc-go
// dials the DNS server itself, so the client must run in the client
// namespace (see ClientCommand).
func (l *Lab) HeadlessTarget(port int) string {
	return fmt.Sprintf("dns://%s/%s:%d", l.DNSServer(), l.headlessName(), port)
}

// L7Addr returns where nginx accepts gRPC (HTTP/2 without TLS), such as
// "198.18.0.3:50051", or "" when Config.L7 is off.
func (l *Lab) L7Addr() string {
	if !l.cfg.L7 {
		return ""
	}
	return l.l7AddrPort().String()
}

// DialContext connects to address from inside the client namespace, so a
// connection to the ClusterIP goes through kube-proxy's rules. The address
// must be an IP address and port; Resolve turns names into addresses. It
// fits net/http's Transport.DialContext and, wrapped, grpc.WithContextDialer.
func (l *Lab) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return netns.Dial(ctx, l.nsClient, network, address)
}

// ClientCommand returns a command that runs path inside the client
// namespace (through ip netns exec, which execs path, so the command's PID is
// the program's). Its /etc/resolv.conf is the lab's, as a pod's is the
// cluster's: the lab's DNS server, with the search path
// <Namespace>.svc.cluster.local svc.cluster.local cluster.local, so that
// "dns:///hello-headless:50051" resolves in any gRPC library. The caller runs
// and waits for it; Close kills it if it is still running then.
func (l *Lab) ClientCommand(ctx context.Context, path string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, l.ipPath, append([]string{"netns", "exec", l.nsClient, path}, args...)...)
}

// IPTablesSave returns iptables-save output for the nat and filter tables
// of the client namespace, where the lab's kube-proxy rules live.
func (l *Lab) IPTablesSave(ctx context.Context) (string, error) {
	return l.ipt.saveIn(ctx, l.ipPath, l.nsClient, "nat", "filter")
}

// IPTablesVariant returns which iptables implementation the lab uses:
// "nft", "legacy" or "default".
func (l *Lab) IPTablesVariant() string { return l.ipt.variant }

// ConntrackCount returns how many connection-tracking entries of the client
// namespace have the ClusterIP as original destination: the connections
// kube-proxy's rules have pinned to a pod.
func (l *Lab) ConntrackCount(ctx context.Context) (int, error) {
	conntrack, err := netns.FindTool("conntrack")
	if err != nil {
		return 0, err
	}
	out, err := netns.Run(ctx, nil, l.ipPath, "netns", "exec", l.nsClient, conntrack, "-L", "-p", "tcp", "--orig-dst", clusterIP.String())
	if err != nil {
		return 0, err
	}
	return strings.Count(string(out), "\n"), nil
}

// Prefix returns the prefix of the lab's namespace and directory names,
// "rotorlab-<owner pid>-<6 hex>".
func (l *Lab) Prefix() string { return l.prefix }

// Dir returns the lab's directory (logs, hosts file, nginx configuration).
// Close removes it.
func (l *Lab) Dir() string { return l.dir }

// nsName returns the name of one of the lab's namespaces.
func (l *Lab) nsName(role string) string { return l.prefix + "-" + role }

// Logs returns the last maxBytes of every pod's log and of the dnsmasq and
// nginx logs, for a failing test to print before Close removes them.
func (l *Lab) Logs(maxBytes int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	section := func(title, path string) {
		fmt.Fprintf(&b, "==> %s (%s) <==\n%s\n", title, path, tailFile(path, maxBytes))
	}
	for _, p := range l.pods {
		if p.proc != nil {
			section(fmt.Sprintf("pod %s pid %d %s", p.name, p.proc.PID(), p.proc.ExitStatus()), p.proc.LogPath())
		}
	}
	if l.dns != nil {
		section("dnsmasq "+l.dns.proc.ExitStatus(), l.dns.proc.LogPath())
	}
	if l.l7 != nil {
		section("nginx "+l.l7.proc.ExitStatus(), l.l7.logPath)
	}
	return b.String()
}

// tailFile returns up to the last n bytes of a file, or why it cannot.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// readFrom returns a file's content from offset on, or "" if it cannot.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}
