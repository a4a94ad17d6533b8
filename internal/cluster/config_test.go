package cluster

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	t.Setenv("ROTOR_KUBE_DIR", "/opt/kube")
	got, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.BinDir != "/opt/kube/bin" || got.ProxyMode != ProxyIPTables || got.NodeName != "node-1" ||
		got.StartTimeout != 2*time.Minute || got.TempDir == "" {
		t.Errorf("Config{}.withDefaults() = %+v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // in the error
	}{
		{Config{ProxyMode: "ipvs"}, "no IPVS"},
		{Config{ProxyMode: "userspace"}, `Config.ProxyMode is "userspace"`},
		{Config{NodeName: "Node_1"}, `Config.NodeName is "Node_1"`},
		{Config{StartTimeout: -time.Second}, "Config.StartTimeout is -1s"},
	} {
		_, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v; want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

// The lab's ranges must nest as the package documentation says.
func TestAddressPlan(t *testing.T) {
	for _, tc := range []struct {
		outer netip.Prefix
		inner netip.Prefix
	}{
		{ClusterCIDR, NodePodCIDR},
		{ClusterCIDR, HarnessPodCIDR},
		{netip.MustParsePrefix("198.18.0.0/15"), ClusterCIDR},
		{netip.MustParsePrefix("198.18.0.0/15"), ServiceCIDR},
	} {
		if !tc.outer.Contains(tc.inner.Addr()) || tc.inner.Bits() < tc.outer.Bits() {
			t.Errorf("%v is not inside %v", tc.inner, tc.outer)
		}
	}
	if NodePodCIDR.Overlaps(HarnessPodCIDR) || ClusterCIDR.Overlaps(ServiceCIDR) || ClusterCIDR.Contains(NodeIP) {
		t.Error("the node's pod range, the harness's pod range, the Service range and the node address must not overlap")
	}
	if !HarnessPodCIDR.Contains(CoreDNSIP) || !ServiceCIDR.Contains(DNSServiceIP) || !ServiceCIDR.Contains(KubernetesServiceIP) {
		t.Error("CoreDNS's address, the kube-dns and kubernetes ClusterIPs must be in their ranges")
	}
	if got := lastAddr(HarnessPodCIDR); got != netip.MustParseAddr("198.18.255.255") {
		t.Errorf("lastAddr(%v) = %v", HarnessPodCIDR, got)
	}
}

func TestNodeNames(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "node-1"},
		{Config{Nodes: 3}, "node-1 node-2 node-3"},
		{Config{NodeName: "worker-9", Nodes: 2}, "worker-9 worker-10"},
		{Config{NodeName: "lab", Nodes: 3}, "lab lab-2 lab-3"},
	} {
		cfg, err := tc.cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.nodeNames(), " "); got != tc.want {
			t.Errorf("%+v: nodes %q, want %q", tc.cfg, got, tc.want)
		}
	}
	if got := nodePodCIDR(2); got != netip.MustParsePrefix("198.18.130.0/24") {
		t.Errorf("the third Node's pod CIDR is %v", got)
	}
	for i := range maxNodes {
		if p := nodePodCIDR(i); !ClusterCIDR.Contains(p.Addr()) || p.Overlaps(HarnessPodCIDR) {
			t.Errorf("Node %d's pod CIDR %v is outside %v or overlaps the harness's %v", i, p, ClusterCIDR, HarnessPodCIDR)
		}
	}
	if _, err := (Config{Nodes: maxNodes + 1}).withDefaults(); err == nil || !strings.Contains(err.Error(), "Config.Nodes is 9") {
		t.Errorf("Config{Nodes: 9}: %v; want an error naming the field", err)
	}
}
