package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rotorkit/rotor/internal/cluster/podnet"
	"github.com/rotorkit/rotor/internal/netns"
)

// ErrClosed is returned by operations on a closed cluster.
var ErrClosed = errors.New("cluster: closed")

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// stopGrace is how long Close waits for a component to exit after SIGTERM
// before it kills it.
const stopGrace = 5 * time.Second

// Cluster is a running control plane, kube-proxy and CoreDNS in network
// namespaces (see the package documentation). Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg    Config
	prefix string // "rotorkube-<owner pid>-<6 hex>"
	dir    string
	nodeNS string
	pki    *pki
	ids    map[string]identity
	pods   podnet.Network

	transport *http.Transport // to the API server, dialling in the node namespace
	rest      *rest.Config
	client    kubernetes.Interface
	probe     *http.Client // to health endpoints in the node namespace

	heartbeatStop context.CancelFunc
	heartbeatDone chan struct{}

	ops        sync.WaitGroup // AddPod and RemovePod calls in flight; Close waits for them
	mu         sync.Mutex
	closed     bool
	components []*component // in start order
	nodeProcs  []*component // started by StartNodeProcess
	podNets    map[string]podnet.Pod
	podIPs     map[netip.Addr]bool
	keptDir    string // where Close kept the directory (Config.KeepLogs)
}

// New starts a cluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kube-proxy in a fresh node namespace, a registered
// Node, and CoreDNS in a pod namespace behind the kube-dns Service. It
// returns once every component reports ready and a DNS query through the
// kube-dns ClusterIP, which exercises kube-proxy's rules, is answered. It
// first removes labs left by processes that died without closing theirs
// (see CleanStale). On error everything New made is removed again and the
// error names the component that failed, with the end of its log. Callers
// must Close the cluster.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	c, err := newCluster(ctx, cfg)
	if err != nil {
		if c != nil && cfg.KeepLogs {
			// The error may name logs under the directory Close renamed.
			err = withKeptLogs(err, c.Dir())
		}
		return nil, err
	}
	return c, nil
}

// withKeptLogs adds to the error of a cluster that failed to start where
// Config.KeepLogs kept its logs, dir.
func withKeptLogs(err error, dir string) error {
	return fmt.Errorf("%w (the logs are kept in %s)", err, dir)
}

// newCluster is New, but for a cluster that failed to start it also
// returns the Cluster, closed, whose Dir is where Config.KeepLogs kept its
// logs (nil when it failed before it had a directory).
func newCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Available(cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.StartTimeout,
		fmt.Errorf("cluster: start took longer than Config.StartTimeout (%v)", cfg.StartTimeout))
	defer cancel()
	_, _ = CleanStale(ctx)

	prefix, err := labs.New()
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{
		cfg:     cfg,
		prefix:  prefix,
		dir:     filepath.Join(cfg.TempDir, prefix),
		nodeNS:  prefix + "-node",
		podNets: make(map[string]podnet.Pod),
		podIPs:  map[netip.Addr]bool{CoreDNSIP: true},
	}
	c.pods = podnet.Network{NodeNetns: c.nodeNS, Gateway: NodeIP, DNS: DNSServiceIP, ClusterDomain: ClusterDomain}
	if err := c.start(ctx); err != nil {
		return c, errors.Join(err, c.Close())
	}
	return c, nil
}

// start brings the cluster up; New closes it if start fails.
func (c *Cluster) start(ctx context.Context) error {
	// Searchable but not readable by others: containers of a node agent
	// that run as another user (the example's run as 65532) execute their
	// images from a directory inside; the keys and tokens here are 0600.
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.Chmod(c.dir, 0o711); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := c.addNode(ctx); err != nil {
		return err
	}
	if err := c.writeConfig(); err != nil {
		return err
	}
	c.probe = &http.Client{Transport: &http.Transport{
		DialContext: netns.Dialer(c.nodeNS),
		// The controller manager and the scheduler serve their health with a
		// certificate they sign themselves (--cert-dir), as in kubeadm, whose
		// probes do not verify it either.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}

	etcd, err := c.startNode(ctx, "etcd", c.etcdArgs())
	if err != nil {
		return err
	}
	if err := etcd.waitReady(ctx, c.get(fmt.Sprintf("http://127.0.0.1:%d/health", etcdClientPort), nil)); err != nil {
		return err
	}
	apiserver, err := c.startNode(ctx, "kube-apiserver", c.apiserverArgs())
	if err != nil {
		return err
	}
	c.connect()
	api := &http.Client{Transport: c.transport}
	ready := c.get(fmt.Sprintf("https://%s:%d/readyz", NodeIP, apiserverPort), api)
	if err := apiserver.waitReady(ctx, ready); err != nil {
		return err
	}

	if err := c.registerNodes(ctx); err != nil {
		return err
	}
	if !c.cfg.NodeAgent {
		c.startHeartbeat()
	}
	if err := c.addDNSObjects(ctx); err != nil {
		return err
	}

	kcm, err := c.startNode(ctx, "kube-controller-manager", c.controllerManagerArgs())
	if err != nil {
		return err
	}
	sched, err := c.startNode(ctx, "kube-scheduler", c.schedulerArgs())
	if err != nil {
		return err
	}
	proxy, err := c.startNode(ctx, "kube-proxy", c.proxyArgs())
	if err != nil {
		return err
	}

	waits := []func() error{
		func() error {
			return kcm.waitReady(ctx, c.get(fmt.Sprintf("https://127.0.0.1:%d/healthz", controllerMgrPort), nil))
		},
		func() error {
			return sched.waitReady(ctx, c.get(fmt.Sprintf("https://127.0.0.1:%d/healthz", schedulerPort), nil))
		},
		func() error {
			// CoreDNS reaches the API through the kubernetes Service, so it
			// starts once kube-proxy has written its rules, as its pod would
			// once the node is ready.
			if err := proxy.waitReady(ctx, c.proxySynced); err != nil {
				return err
			}
			coredns, err := c.startCoreDNS(ctx)
			if err != nil {
				return err
			}
			if err := coredns.waitReady(ctx, c.get(fmt.Sprintf("http://%s:%d/ready", CoreDNSIP, coreDNSReadyPort), nil)); err != nil {
				return err
			}
			// An answer through the ClusterIP proves kube-proxy's rules and
			// CoreDNS's view of the API together.
			return coredns.waitReady(ctx, c.lookupViaService)
		},
	}
	errs := make([]error, len(waits))
	var wg sync.WaitGroup
	for i, wait := range waits {
		wg.Go(func() { errs[i] = wait() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// addNode makes the node namespace: the node's address on its loopback
// (the lab's kernel has no dummy interfaces, and the kernel prefers lo's
// addresses as the source of packets leaving an interface without one, as
// the pods' veths are), and IPv4 forwarding, which a routed pod network
// needs.
func (c *Cluster) addNode(ctx context.Context) error {
	if err := netns.Add(ctx, c.nodeNS); err != nil {
		return err
	}
	if err := netns.IP(ctx, c.nodeNS,
		fmt.Sprintf("addr add %s/32 dev lo", NodeIP),
		// A program on the node that connects to a ClusterIP needs a route
		// to it before kube-proxy's OUTPUT DNAT sees the packet; a real
		// node has its default route. The Service CIDR goes to lo, where a
		// packet that no rule rewrote dies as a martian.
		fmt.Sprintf("route add %s dev lo src %s", ServiceCIDR, NodeIP),
	); err != nil {
		return err
	}
	// /proc/sys/net shows the sysctls of the network namespace of the thread
	// that opens it.
	return netns.Do(c.nodeNS, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("cluster: enable IPv4 forwarding in %s: %w", c.nodeNS, err)
		}
		return nil
	})
}

// writeConfig makes the certificates, tokens, kubeconfigs and the Corefile.
func (c *Cluster) writeConfig() error {
	var err error
	if c.pki, err = newPKI(c.dir); err != nil {
		return err
	}
	c.ids = newIdentities(c.cfg.nodeNames())
	if err := writeTokenFile(filepath.Join(c.dir, "tokens.csv"), c.ids); err != nil {
		return err
	}
	for name, id := range c.ids {
		if err := writeKubeconfig(c.kubeconfig(name), c.APIServerURL(), c.pki.caPEM, id.user, id.token); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.dir, "Corefile"), []byte(c.corefile()), 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// connect sets up the admin client, whose connections are made inside the
// node namespace.
func (c *Cluster) connect() {
	roots := x509.NewCertPool()
	roots.AddCert(c.pki.caCert)
	c.transport = &http.Transport{
		DialContext:         netns.Dialer(c.nodeNS),
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	c.rest = &rest.Config{
		Host:        c.APIServerURL(),
		BearerToken: c.ids["admin"].token,
		Transport:   c.transport,
		QPS:         100,
		Burst:       200,
	}
	// NewForConfig fails only on an invalid configuration, which this is not.
	c.client = kubernetes.NewForConfigOrDie(c.rest)
}

// get returns a readiness check: GET url answers 200. With client nil it
// uses the probe client (node namespace, no certificate check).
func (c *Cluster) get(url string, client *http.Client) func(context.Context) error {
	if client == nil {
		client = c.probe
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if client != c.probe {
			req.Header.Set("Authorization", "Bearer "+c.ids["admin"].token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// proxySynced is kube-proxy's readiness: its /healthz answers 200 and it has
// written its IPv4 rules at least once. /healthz alone does not tell the
// second: it also says healthy while kube-proxy is starting up.
func (c *Cluster) proxySynced(ctx context.Context) error {
	if err := c.get(fmt.Sprintf("http://127.0.0.1:%d/healthz", proxyHealthzPort), nil)(ctx); err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", proxyMetricsPort)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.probe.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	// The gauge appears, per IP family, at the end of the first sync.
	const synced = `kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} `
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, synced); ok && strings.TrimSpace(v) != "0" {
			return nil
		}
	}
	return fmt.Errorf("GET %s: no %s yet", url, strings.TrimSpace(synced))
}

// startNode starts a component in the node namespace and records it.
func (c *Cluster) startNode(ctx context.Context, name string, argv []string) (*component, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := startComponent(c.nodeNS, name, filepath.Join(c.dir, name+".log"), argv, false)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.components = append(c.components, p)
	c.mu.Unlock()
	return p, nil
}

// startCoreDNS makes CoreDNS's pod namespace and starts it there. Like
// kubeadm's CoreDNS pod (dnsPolicy Default) it gets no cluster resolv.conf.
func (c *Cluster) startCoreDNS(ctx context.Context) (*component, error) {
	dnsPods := c.pods
	dnsPods.DNS = netip.Addr{}
	pod, err := dnsPods.Add(ctx, c.prefix+"-coredns", CoreDNSIP, "")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.podNets["coredns"] = pod
	c.mu.Unlock()
	argv := c.coreDNSArgs()
	argv, err = netns.ExecArgs(pod.Netns, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	p, err := startComponent(pod.Netns, "coredns", filepath.Join(c.dir, "coredns.log"), argv, true)
	if err != nil {
		return nil, err
	}
	// After SIGTERM CoreDNS keeps answering for its lameduck period (5 s)
	// so that clients move on during a rollout; when the whole cluster
	// goes there is nobody to move to.
	p.grace = time.Second
	c.mu.Lock()
	c.components = append(c.components, p)
	c.mu.Unlock()
	return p, nil
}

// Close stops everything the cluster started, in parallel with SIGTERM and
// after 5 s SIGKILL, etcd last: processes from StartNodeProcess, CoreDNS,
// kube-proxy, the scheduler, the controller manager, the API server. It
// then deletes every namespace whose name starts with the cluster's prefix
// (Prefix), those a node agent made included, which takes the veths,
// routes, kube-proxy's iptables or nftables rules and conntrack entries
// with them, their /etc/netns entries, and the cluster's directory unless
// Config.KeepLogs, which removes etcd's data and the node agents' image
// copies from it and renames it, adding "-logs" to its name, so that the
// next cluster's CleanStale keeps it (see Dir). Close is idempotent and
// safe after a failed New.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	procs := append(slices.Clone(c.nodeProcs), c.components...)
	c.mu.Unlock()
	c.ops.Wait()

	if c.heartbeatStop != nil {
		c.heartbeatStop()
		<-c.heartbeatDone
	}
	var etcd *component
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.Name() == "etcd" {
			etcd = p
			continue
		}
		wg.Go(p.stop)
	}
	wg.Wait()
	if etcd != nil {
		etcd.stop()
	}
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.probe != nil {
		c.probe.CloseIdleConnections()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := []error{labs.Remove(ctx, c.prefix)}
	if !c.cfg.KeepLogs {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
		}
		return errors.Join(errs...)
	}
	// The kept directory takes the role "-logs", which CleanStale leaves
	// alone: under its own name, the next cluster's New would remove it as
	// a stale cluster's, its owner being gone. etcd's data (its write-ahead
	// log preallocates 64 MB) and the images (copies of the binaries) go,
	// so that kept directories do not fill the disk.
	for _, big := range []string{"etcd", "images"} {
		if err := os.RemoveAll(filepath.Join(c.dir, big)); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
		}
	}
	kept := c.dir + "-logs"
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(c.dir, kept); err != nil {
		return errors.Join(append(errs, fmt.Errorf("cluster: keeping the logs: %w", err))...)
	}
	c.keptDir = kept
	return errors.Join(errs...)
}

// APIServerURL returns the API server's URL as the node and pods reach it,
// https://198.18.0.1:6443. From outside the lab's namespaces use Client or
// RESTConfig, which dial inside the node namespace.
func (c *Cluster) APIServerURL() string {
	return fmt.Sprintf("https://%s:%d", NodeIP, apiserverPort)
}

// Client returns a clientset with cluster-admin rights (system:masters)
// that connects from inside the node namespace, so it works from the
// process that made the cluster, in any namespace.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// RESTConfig returns a copy of the admin client's configuration; it shares
// the cluster's transport, which dials inside the node namespace.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// CACert returns the PEM certificate of the cluster's CA, which signed the
// API server's serving certificate.
func (c *Cluster) CACert() []byte { return slices.Clone(c.pki.caPEM) }

// AdminKubeconfig returns the path of a kubeconfig with cluster-admin
// rights for programs inside the lab's namespaces (server APIServerURL).
func (c *Cluster) AdminKubeconfig() string { return c.kubeconfig("admin") }

// NodeKubeconfig returns the path of the first node's kubeconfig: user
// system:node:NAME in group system:nodes, which the Node authorizer and the
// NodeRestriction admission plugin confine to its own Node, Lease and
// pods, as they confine a kubelet. A node agent uses it; Nodes gives every
// Node's.
func (c *Cluster) NodeKubeconfig() string { return c.kubeconfig("node-" + c.cfg.NodeName) }

// NodeName returns the first Node's name.
func (c *Cluster) NodeName() string { return c.cfg.NodeName }

// A Node is one of the cluster's Nodes as New registered it.
type Node struct {
	// Name is the Node's name.
	Name string
	// PodCIDR is its spec.podCIDR.
	PodCIDR netip.Prefix
	// Kubeconfig is the path of a kubeconfig with the Node's credentials
	// (system:node:Name in group system:nodes).
	Kubeconfig string
}

// Nodes returns the cluster's Nodes, the first one NodeName (see
// Config.Nodes).
func (c *Cluster) Nodes() []Node {
	var nodes []Node
	for i, name := range c.cfg.nodeNames() {
		nodes = append(nodes, Node{Name: name, PodCIDR: nodePodCIDR(i), Kubeconfig: c.kubeconfig("node-" + name)})
	}
	return nodes
}

// NodeNetns returns the name of the node's network namespace.
func (c *Cluster) NodeNetns() string { return c.nodeNS }

// Prefix returns the prefix of the names of the cluster's namespaces and
// directory, "rotorkube-<owner pid>-<6 hex digits>". A node agent names
// its pods' namespaces Prefix()+"-pod-"+something so that Close and
// CleanStale remove them.
func (c *Cluster) Prefix() string { return c.prefix }

// Dir returns the cluster's directory: certificates, kubeconfigs, the
// Corefile, etcd's data and a log per component (NAME.log). After Close
// with Config.KeepLogs, it returns where the directory was kept: its path
// with "-logs" added, a name CleanStale leaves alone. The other paths the
// Cluster returns (kubeconfigs) are not updated. Dir takes the Cluster's
// lock: do not call it with the lock held.
func (c *Cluster) Dir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keptDir != "" {
		return c.keptDir
	}
	return c.dir
}

// PodNetwork returns the node side of the pod network, for making pod
// namespaces the way AddPod does.
func (c *Cluster) PodNetwork() podnet.Network { return c.pods }

// AddPod makes the network namespace of a pod called name (a DNS label,
// unique in the cluster) in the Kubernetes namespace namespace: namespace
// Prefix()+"-pod-"+name, an address from HarnessPodCIDR and a resolv.conf
// naming the cluster DNS, which programs started with "ip netns exec" see.
// It registers nothing in the API; the caller publishes the address (an
// EndpointSlice) if it wants. RemovePod or Close removes it.
func (c *Cluster) AddPod(ctx context.Context, name, namespace string) (podnet.Pod, error) {
	if !dnsLabel.MatchString(name) || !dnsLabel.MatchString(namespace) {
		return podnet.Pod{}, fmt.Errorf("cluster: AddPod(%q, %q): name and namespace must be lowercase DNS labels", name, namespace)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return podnet.Pod{}, ErrClosed
	}
	if _, ok := c.podNets[name]; ok {
		c.mu.Unlock()
		return podnet.Pod{}, fmt.Errorf("cluster: AddPod: a pod %q exists already", name)
	}
	var ip netip.Addr
	for a := HarnessPodCIDR.Addr().Next().Next(); HarnessPodCIDR.Contains(a); a = a.Next() {
		if !c.podIPs[a] && a != lastAddr(HarnessPodCIDR) {
			ip = a
			break
		}
	}
	if !ip.IsValid() {
		c.mu.Unlock()
		return podnet.Pod{}, fmt.Errorf("cluster: AddPod: no free address left in %v", HarnessPodCIDR)
	}
	c.podIPs[ip] = true
	c.podNets[name] = podnet.Pod{} // reserved while it is made
	c.ops.Add(1)
	defer c.ops.Done()
	c.mu.Unlock()

	pod, err := c.pods.Add(ctx, c.prefix+"-pod-"+name, ip, namespace)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.podNets, name)
		delete(c.podIPs, ip)
		return podnet.Pod{}, err
	}
	c.podNets[name] = pod
	return pod, nil
}

// RemovePod removes a pod namespace made by AddPod, killing whatever runs
// in it. After Close it returns ErrClosed: Close removed every pod.
func (c *Cluster) RemovePod(ctx context.Context, name string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	pod, ok := c.podNets[name]
	if !ok || !pod.IP.IsValid() || name == "coredns" {
		c.mu.Unlock()
		return fmt.Errorf("cluster: RemovePod: no pod %q made by AddPod", name)
	}
	delete(c.podNets, name)
	c.ops.Add(1)
	defer c.ops.Done()
	c.mu.Unlock()
	err := c.pods.Remove(ctx, pod)
	c.mu.Lock()
	delete(c.podIPs, pod.IP)
	c.mu.Unlock()
	return err
}

// lastAddr returns the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(a)
}

// StartNodeProcess starts argv in the node namespace, as a component of the
// node (a node agent, say), with its output in Dir()/name.log. The process
// keeps the harness's mount namespace (see netns.Start), gets SIGKILL if
// the harness dies, and is stopped first by Close. It returns the PID.
func (c *Cluster) StartNodeProcess(name string, argv []string) (int, error) {
	if !dnsLabel.MatchString(name) || len(argv) == 0 {
		return 0, fmt.Errorf("cluster: StartNodeProcess(%q, %q): need a DNS-label name and a command", name, argv)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	p, err := startComponent(c.nodeNS, name, filepath.Join(c.dir, name+".log"), argv, false)
	if err != nil {
		return 0, err
	}
	c.nodeProcs = append(c.nodeProcs, p)
	return p.PID(), nil
}

// ProxyRules returns kube-proxy's rules in the node namespace as its mode
// keeps them: "iptables-save" output in iptables mode, "nft list table ip
// kube-proxy" in nftables mode.
func (c *Cluster) ProxyRules(ctx context.Context) (string, error) {
	argv := []string{"iptables-save"}
	if c.cfg.ProxyMode == ProxyNFTables {
		argv = []string{"nft", "list", "table", "ip", "kube-proxy"}
	}
	tool, err := netns.FindTool(argv[0])
	if err != nil {
		return "", err
	}
	argv, err = netns.ExecArgs(c.nodeNS, tool, argv[1:]...)
	if err != nil {
		return "", err
	}
	out, err := netns.Run(ctx, nil, argv[0], argv[1:]...)
	return string(out), err
}
