// Package podnet wires a pod's network namespace to its node the way a
// routed CNI plugin (Calico's layout) does: no bridge, one point-to-point
// veth per pod, every packet between pods and to Service IPs routed through
// the node's namespace, where kube-proxy's DNAT and conntrack act.
//
//	 pod namespace                     node namespace
//	┌───────────────────────────┐     ┌─────────────────────────────────┐
//	│ eth0 198.18.255.3/32      │     │ lo 198.18.0.1/32 (the Gateway)  │
//	│ 198.18.0.1 dev eth0 link  │     │ ip_forward=1, kube-proxy's rules│
//	│ default via 198.18.0.1 ═══╪═veth╪═ rk<hash>, no address           │
//	└───────────────────────────┘     │ 198.18.255.3/32 dev rk<hash>    │
//	                                  └─────────────────────────────────┘
//
// The pod's gateway is the node's own address, reached over the veth: the
// node answers ARP for any of its addresses on any interface (arp_ignore=0),
// so no proxy ARP and no fake 169.254.1.1 are needed. The node's veth ends
// have no address; packets the node sends through them take the address on
// its loopback, which the kernel prefers in that case. A bridge would need
// br_netfilter for a pod to reach, through a ClusterIP, a pod on the same
// bridge; a routed layout needs nothing.
//
// The harness (package cluster) calls [Network.Add] for the pod-like
// namespaces it runs itself (CoreDNS, test pods), and a node agent does the
// same for the pods it runs; both must run as root with /run/netns shared
// (see package netns on how the agent should be started).
package podnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/rotorkit/rotor/internal/netns"
)

// Network is the node's side of every pod's network.
type Network struct {
	// NodeNetns names the node's network namespace, which must exist and
	// have Gateway on one of its interfaces and IPv4 forwarding on. Required.
	NodeNetns string
	// Gateway is the node's IPv4 address, every pod's next hop. Required.
	Gateway netip.Addr
	// DNS is the cluster DNS Service's IP that pods' resolv.conf names. The
	// zero value writes no resolv.conf: the pod then sees the host's.
	DNS netip.Addr
	// ClusterDomain is the cluster's DNS domain in the resolv.conf search
	// list. Empty means "cluster.local", Kubernetes' default.
	ClusterDomain string
}

// Pod is one pod's network as [Network.Add] made it.
type Pod struct {
	// Netns names the pod's network namespace.
	Netns string
	// IP is the pod's address, on its eth0 with prefix length 32.
	IP netip.Addr
	// HostIf is the node-side end of the pod's veth, in the node namespace.
	HostIf string
}

// HostIfName returns the name of the node-side veth for a pod namespace:
// "rk" and 12 hex digits of a hash of the name, within Linux's 15-byte limit
// and stable, so a cleaner can find it from the namespace name alone.
func HostIfName(podNetns string) string {
	sum := sha256.Sum256([]byte(podNetns))
	return "rk" + hex.EncodeToString(sum[:6])
}

// ResolvConf returns the resolv.conf the kubelet writes for a pod with
// dnsPolicy ClusterFirst in the given Kubernetes namespace: the cluster DNS
// server, the search list "<namespace>.svc.<domain> svc.<domain> <domain>"
// and ndots:5.
func ResolvConf(dns netip.Addr, namespace, clusterDomain string) []byte {
	if clusterDomain == "" {
		clusterDomain = "cluster.local"
	}
	return fmt.Appendf(nil, "nameserver %s\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n",
		dns, namespace, clusterDomain, clusterDomain, clusterDomain)
}

// Add creates the network namespace podNetns, a veth pair between it and the
// node namespace, the pod's address ip/32 on its eth0 with a default route
// via the node, the node's /32 route back, and, when n.DNS is set,
// /etc/netns/<podNetns>/resolv.conf for a pod of the Kubernetes namespace
// namespace, which programs started with "ip netns exec" read as
// /etc/resolv.conf. On error it removes what it made.
func (n Network) Add(ctx context.Context, podNetns string, ip netip.Addr, namespace string) (Pod, error) {
	if n.NodeNetns == "" || !n.Gateway.Is4() {
		return Pod{}, fmt.Errorf("podnet: Network{NodeNetns: %q, Gateway: %v}: both are required, Gateway an IPv4 address", n.NodeNetns, n.Gateway)
	}
	if !ip.Is4() {
		return Pod{}, fmt.Errorf("podnet: pod IP %v: need an IPv4 address", ip)
	}
	if n.DNS.IsValid() && namespace == "" {
		return Pod{}, errors.New("podnet: a pod with cluster DNS needs its Kubernetes namespace (for the search list)")
	}
	p := Pod{Netns: podNetns, IP: ip, HostIf: HostIfName(podNetns)}
	if err := n.add(ctx, p, namespace); err != nil {
		return Pod{}, errors.Join(err, n.Remove(context.WithoutCancel(ctx), p))
	}
	return p, nil
}

func (n Network) add(ctx context.Context, p Pod, namespace string) error {
	if err := netns.Add(ctx, p.Netns); err != nil {
		return err
	}
	if err := netns.IP(ctx, n.NodeNetns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", p.HostIf, p.Netns),
		fmt.Sprintf("link set %s up", p.HostIf),
	); err != nil {
		return err
	}
	if err := netns.IP(ctx, p.Netns,
		fmt.Sprintf("addr add %s/32 dev eth0", p.IP),
		"link set eth0 up",
		fmt.Sprintf("route add %s dev eth0 scope link", n.Gateway),
		fmt.Sprintf("route add default via %s dev eth0", n.Gateway),
	); err != nil {
		return err
	}
	if err := netns.IP(ctx, n.NodeNetns, fmt.Sprintf("route add %s/32 dev %s scope link", p.IP, p.HostIf)); err != nil {
		return err
	}
	if n.DNS.IsValid() {
		dir := filepath.Join(netns.ConfigDir, p.Netns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("podnet: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), ResolvConf(n.DNS, namespace, n.ClusterDomain), 0o644); err != nil {
			return fmt.Errorf("podnet: %w", err)
		}
	}
	return nil
}

// Remove kills whatever still runs in the pod's namespace, deletes the
// namespace (its veth, and with it the node's route, go too) and its
// /etc/netns entry. Removing a pod that is already gone is not an error.
func (n Network) Remove(ctx context.Context, p Pod) error {
	err := netns.Delete(ctx, p.Netns)
	// The veth normally dies with the namespace; a half-made pod may have
	// left the node end alone.
	if n.NodeNetns != "" && netns.Exists(n.NodeNetns) {
		if e := netns.IP(ctx, n.NodeNetns, "link del "+p.HostIf); e != nil && !strings.Contains(e.Error(), "Cannot find device") {
			err = errors.Join(err, e)
		}
	}
	return err
}
