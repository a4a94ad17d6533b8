package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
)

// Versions of the components the harness expects in BinDir, as pinned by
// tools/kube/go.mod, tools/etcd/go.mod and tools/kube-build.sh.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
	CoreDNSVersion    = "v1.15.0"
)

// ProxyMode is kube-proxy's --proxy-mode.
type ProxyMode string

// The proxy modes this kernel supports. IPVS is not one: the lab's kernel
// has no ip_vs module.
const (
	ProxyIPTables ProxyMode = "iptables"
	ProxyNFTables ProxyMode = "nftables"
)

// The lab's addresses. All come from 198.18.0.0/15 (RFC 2544, reserved for
// benchmarking), so they cannot clash with a network the host is on, and
// they exist only inside the lab's namespaces.
var (
	// NodeIP is the node's address, on the node namespace's loopback:
	// kube-apiserver advertises it, every pod routes through it.
	NodeIP = netip.MustParseAddr("198.18.0.1")
	// ClusterCIDR holds every pod address (kube-proxy's --cluster-cidr).
	ClusterCIDR = netip.MustParsePrefix("198.18.128.0/17")
	// NodePodCIDR is the first node's spec.podCIDR, which a node agent
	// allocates its pods' addresses from; the Nth node has the Nth /24
	// after it (198.18.129.0/24 for the second).
	NodePodCIDR = netip.MustParsePrefix("198.18.128.0/24")
	// HarnessPodCIDR holds the addresses of the pod namespaces the harness
	// itself makes (CoreDNS, [Cluster.AddPod]); it is inside ClusterCIDR but
	// apart from NodePodCIDR, so the harness and a node agent never hand out
	// the same address.
	HarnessPodCIDR = netip.MustParsePrefix("198.18.255.0/24")
	// CoreDNSIP is the CoreDNS pod's address.
	CoreDNSIP = netip.MustParseAddr("198.18.255.2")
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range.
	ServiceCIDR = netip.MustParsePrefix("198.19.0.0/16")
	// KubernetesServiceIP is the default/kubernetes Service's ClusterIP, the
	// first address of ServiceCIDR.
	KubernetesServiceIP = netip.MustParseAddr("198.19.0.1")
	// DNSServiceIP is the kube-system/kube-dns Service's ClusterIP.
	DNSServiceIP = netip.MustParseAddr("198.19.0.10")
)

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local"

// Well-known ports inside the node namespace.
const (
	apiserverPort      = 6443
	etcdClientPort     = 2379
	etcdPeerPort       = 2380
	controllerMgrPort  = 10257
	schedulerPort      = 10259
	proxyHealthzPort   = 10256
	proxyMetricsPort   = 10249
	coreDNSReadyPort   = 8181
	coreDNSMetricsPort = 9153
)

// Config describes a cluster. The zero value is a valid configuration: every
// field's zero value means its documented default.
type Config struct {
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// kube-proxy, etcd and coredns as tools/kube-build.sh builds them. Empty
	// means $ROTOR_KUBE_DIR/bin, or $HOME/.cache/rotor/kube-v1.37.2/bin
	// when ROTOR_KUBE_DIR is unset (the script's default).
	BinDir string
	// ProxyMode is kube-proxy's mode. Empty means ProxyIPTables.
	ProxyMode ProxyMode
	// NodeName is the first Node's name and kube-proxy's
	// --hostname-override; a lowercase DNS label. Empty means "node-1".
	NodeName string
	// Nodes is how many Nodes New registers, 1 to 8. Zero means 1. The
	// first is NodeName; the others count its trailing number up (node-2,
	// node-3, …), or append -2, -3, … when it has none. Every Node has a
	// pod CIDR of its own and its own credentials, but they share the node
	// namespace, its address and its kube-proxy: a drain has somewhere to
	// move pods to, while traffic crosses the same rules that one node's
	// kube-proxy writes (each node's kube-proxy writes the same ClusterIP
	// rules; only Local traffic policies would tell them apart).
	Nodes int
	// NodeAgent says that node agents will keep the Nodes alive
	// (Cluster.StartNodeAgents). New still registers each Node, Ready, so
	// that kube-proxy finds its address and the scheduler its capacity, but
	// does not renew its Lease; the agents must take over within the
	// node-monitor grace period (50 s) or the node-lifecycle controller
	// marks the Nodes NotReady and taints them. When false the harness
	// renews the Leases every 10 s, like a kubelet, and runs no pod.
	NodeAgent bool
	// StartTimeout bounds the whole of New, each component's readiness
	// included. Zero means 2 minutes; negative is an error.
	StartTimeout time.Duration
	// TempDir is where the cluster's directory (certificates, kubeconfigs,
	// etcd's data, logs) is made. Empty means os.TempDir().
	TempDir string
	// KeepLogs keeps the cluster's directory after Close, for a look at the
	// components' and pods' logs, without etcd's data and the images,
	// under its name with "-logs" added, which the next cluster's
	// CleanStale leaves alone; [Cluster.Dir] returns its path. Nothing
	// removes it then (rm -r /tmp/rotorkube-*-logs). A process killed
	// before Close keeps nothing: the next New removes its directory as a
	// stale cluster's. False removes the directory at Close.
	KeepLogs bool
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.BinDir == "" {
		c.BinDir = DefaultBinDir()
	}
	switch c.ProxyMode {
	case "":
		c.ProxyMode = ProxyIPTables
	case ProxyIPTables, ProxyNFTables:
	case "ipvs":
		return c, fmt.Errorf("cluster: Config.ProxyMode is %q; this kernel has no IPVS (ip_vs), use %q or %q", c.ProxyMode, ProxyIPTables, ProxyNFTables)
	default:
		return c, fmt.Errorf("cluster: Config.ProxyMode is %q; it must be %q or %q", c.ProxyMode, ProxyIPTables, ProxyNFTables)
	}
	if c.NodeName == "" {
		c.NodeName = "node-1"
	}
	if !dnsLabel.MatchString(c.NodeName) {
		return c, fmt.Errorf("cluster: Config.NodeName is %q; it must be a lowercase DNS label", c.NodeName)
	}
	switch {
	case c.Nodes < 0 || c.Nodes > maxNodes:
		return c, fmt.Errorf("cluster: Config.Nodes is %d; it must be 0 (meaning 1) to %d", c.Nodes, maxNodes)
	case c.Nodes == 0:
		c.Nodes = 1
	}
	if err := conf.Default("Config.StartTimeout", &c.StartTimeout, 2*time.Minute); err != nil {
		return c, fmt.Errorf("cluster: %w", err)
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	return c, nil
}

// maxNodes bounds Config.Nodes: each Node takes a /24 of ClusterCIDR
// below HarnessPodCIDR.
const maxNodes = 8

// nodeNames returns the names of the cluster's Nodes (see Config.Nodes).
func (c Config) nodeNames() []string {
	names := []string{c.NodeName}
	m := trailingNumber.FindStringSubmatch(c.NodeName)
	for i := 2; i <= c.Nodes; i++ {
		if m != nil {
			n, _ := strconv.Atoi(m[2])
			names = append(names, fmt.Sprintf("%s%d", m[1], n+i-1))
		} else {
			names = append(names, fmt.Sprintf("%s-%d", c.NodeName, i))
		}
	}
	return names
}

var trailingNumber = regexp.MustCompile(`^(.*?)([0-9]+)$`)

// nodePodCIDR returns the pod CIDR of the i-th Node (from 0).
func nodePodCIDR(i int) netip.Prefix {
	a := NodePodCIDR.Addr().As4()
	a[2] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), NodePodCIDR.Bits())
}

// DefaultBinDir returns where tools/kube-build.sh puts the components:
// $ROTOR_KUBE_DIR/bin, or $HOME/.cache/rotor/kube-v1.37.2/bin.
func DefaultBinDir() string {
	if dir := os.Getenv("ROTOR_KUBE_DIR"); dir != "" {
		return filepath.Join(dir, "bin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "rotor", "kube-"+KubernetesVersion, "bin")
}
