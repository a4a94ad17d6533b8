package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/rotorkit/rotor/internal/netns"
)

// Addresses inside the lab. They come from 198.18.0.0/15 (RFC 2544, reserved
// for benchmarking) so they can never clash with a real network the host is on.
var (
	bridgeAddr = netip.MustParseAddr("198.18.0.1") // node bridge; DNS server
	clientAddr = netip.MustParseAddr("198.18.0.2")
	l7Addr     = netip.MustParseAddr("198.18.0.3")
	clusterIP  = netip.MustParseAddr("198.19.0.10") // never on an interface, as in a cluster
)

const (
	subnetBits = 24
	bridgeName = "br0"
	// firstPodHost is the last octet of the first pod address; pods take
	// 198.18.0.10 to 198.18.0.254.
	firstPodHost = 10
	maxPodSlots  = 255 - firstPodHost
)

// podAddr returns the address of a pod slot.
func podAddr(slot int) netip.Addr {
	b := bridgeAddr.As4()
	b[3] = byte(firstPodHost + slot)
	return netip.AddrFrom4(b)
}

// writeClientResolvConf gives programs run in the client namespace the
// lab's DNS server, as the kubelet gives a pod the cluster's: "ip netns
// exec" mounts netns.ConfigDir/<ns>/resolv.conf over their /etc/resolv.conf.
func (l *Lab) writeClientResolvConf() error {
	dir := filepath.Join(netns.ConfigDir, l.nsClient)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	ns := l.cfg.Namespace
	conf := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", bridgeAddr, ns)
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	return nil
}

// attachToBridge creates a veth pair whose bridge end, hostIf, is a port of
// the node's bridge and whose other end is eth0 in ns with address addr/24.
// A default route via the bridge address is added when withRoute is set.
func attachToBridge(ctx context.Context, nodeNS, hostIf, ns string, addr netip.Addr, withRoute bool) error {
	if err := netns.IP(ctx, nodeNS,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", hostIf, ns),
		fmt.Sprintf("link set %s master %s up", hostIf, bridgeName),
	); err != nil {
		return err
	}
	inside := []string{fmt.Sprintf("addr add %s/%d dev eth0", addr, subnetBits), "link set eth0 up"}
	if withRoute {
		inside = append(inside, fmt.Sprintf("route add default via %s", bridgeAddr))
	}
	return netns.IP(ctx, ns, inside...)
}

// bridgeMAC is a locally administered address for the bridge. Without a MAC
// of its own a Linux bridge takes the lowest MAC of its ports, so every pod
// added could change it under the neighbours' ARP caches, and packets to the
// bridge address (DNS queries) would vanish until ARP noticed, seconds later.
const bridgeMAC = "02:00:c6:12:00:01"

// addBridge creates the node's bridge with the lab's gateway and DNS address.
func addBridge(ctx context.Context, nodeNS string) error {
	return netns.IP(ctx, nodeNS,
		fmt.Sprintf("link add %s address %s type bridge", bridgeName, bridgeMAC),
		fmt.Sprintf("addr add %s/%d dev %s", bridgeAddr, subnetBits, bridgeName),
		fmt.Sprintf("link set %s up", bridgeName),
	)
}
