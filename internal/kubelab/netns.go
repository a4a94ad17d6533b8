package kubelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where "ip netns add" pins named namespaces.
const netnsDir = "/run/netns"

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

// runIP runs the ip command and returns its error with the command's output.
func runIP(ctx context.Context, ipPath string, args ...string) error {
	_, err := runTool(ctx, nil, ipPath, args...)
	return err
}

// runTool runs a tool, feeding it stdin, and returns its stdout. Errors carry
// the command line and its stderr, which is where these tools say what failed.
func runTool(ctx context.Context, stdin []byte, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("kubelab: %s %s: %w: %s", filepath.Base(path), strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// addNetns creates a named namespace with its loopback up; many programs
// (and the kernel's own local routes) assume lo works.
// etcNetnsDir holds files that ip netns exec mounts over /etc for the
// programs it runs in a namespace: /etc/netns/<ns>/resolv.conf becomes
// their /etc/resolv.conf.
const etcNetnsDir = "/etc/netns"

// writeClientResolvConf gives programs run in the client namespace the
// lab's DNS server, as the kubelet gives a pod the cluster's.
func (l *Lab) writeClientResolvConf() error {
	dir := filepath.Join(etcNetnsDir, l.nsClient)
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

func addNetns(ctx context.Context, ipPath, ns string) error {
	if err := runIP(ctx, ipPath, "netns", "add", ns); err != nil {
		return err
	}
	return runIP(ctx, ipPath, "-n", ns, "link", "set", "lo", "up")
}

// attachToBridge creates a veth pair whose bridge end, hostIf, is a port of
// the node's bridge and whose other end is eth0 in ns with address addr/24.
// A default route via the bridge address is added when withRoute is set.
func attachToBridge(ctx context.Context, ipPath, nodeNS, hostIf, ns string, addr netip.Addr, withRoute bool) error {
	node := fmt.Sprintf("link add %s type veth peer name eth0 netns %s\nlink set %s master %s up\n",
		hostIf, ns, hostIf, bridgeName)
	if _, err := runTool(ctx, []byte(node), ipPath, "-n", nodeNS, "-batch", "-"); err != nil {
		return err
	}
	inside := fmt.Sprintf("addr add %s/%d dev eth0\nlink set eth0 up\n", addr, subnetBits)
	if withRoute {
		inside += fmt.Sprintf("route add default via %s\n", bridgeAddr)
	}
	_, err := runTool(ctx, []byte(inside), ipPath, "-n", ns, "-batch", "-")
	return err
}

// bridgeMAC is a locally administered address for the bridge. Without a MAC
// of its own a Linux bridge takes the lowest MAC of its ports, so every pod
// added could change it under the neighbours' ARP caches, and packets to the
// bridge address (DNS queries) would vanish until ARP noticed, seconds later.
const bridgeMAC = "02:00:c6:12:00:01"

// addBridge creates the node's bridge with the lab's gateway and DNS address.
func addBridge(ctx context.Context, ipPath, nodeNS string) error {
	cmds := fmt.Sprintf("link add %s address %s type bridge\naddr add %s/%d dev %s\nlink set %s up\n",
		bridgeName, bridgeMAC, bridgeAddr, subnetBits, bridgeName, bridgeName)
	_, err := runTool(ctx, []byte(cmds), ipPath, "-n", nodeNS, "-batch", "-")
	return err
}

// inNetns runs fn on an OS thread that has entered the named namespace.
// Sockets keep the namespace they were created in, so a connection dialled
// inside fn stays in that namespace after the thread returns to its own.
func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("kubelab: open own network namespace: %w", err)
	}
	defer unix.Close(self)
	target, err := unix.Open(filepath.Join(netnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("kubelab: open namespace %s: %w", ns, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("kubelab: enter namespace %s: %w", ns, err)
	}
	fnErr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the lab's namespace. Returning while still
		// locked makes the runtime terminate the thread instead of reusing it.
		return errors.Join(fnErr, fmt.Errorf("kubelab: return from namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// dialIn dials address from inside the namespace ns. The address must be an
// IP literal: a name lookup would run on other threads, outside ns.
func dialIn(ctx context.Context, ns, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("kubelab: dial %q: %w", address, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("kubelab: dial %q: need an IP address, not a name (resolve it with Lab.Resolve first)", address)
	}
	var conn net.Conn
	err = inNetns(ns, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	return conn, err
}
