package podnet_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/cluster/podnet"
	"github.com/rotorkit/rotor/internal/netns"
)

func TestResolvConf(t *testing.T) {
	got := string(podnet.ResolvConf(netip.MustParseAddr("198.19.0.10"), "lab", ""))
	want := "nameserver 198.19.0.10\nsearch lab.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if got != want {
		t.Errorf("ResolvConf = %q; want %q", got, want)
	}
}

func TestHostIfName(t *testing.T) {
	a, b := podnet.HostIfName("x-pod-a"), podnet.HostIfName("x-pod-b")
	if len(a) > 15 || a == b || !strings.HasPrefix(a, "rk") {
		t.Errorf("HostIfName gave %q and %q; want distinct names of at most 15 bytes starting with rk", a, b)
	}
}

// TestPodToPod wires two pods to a node namespace and sends a TCP message
// from one to the other, which the node routes; then removes everything.
func TestPodToPod(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := netns.FindTool("ip"); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("rotorkube-%d-%06x", os.Getpid(), time.Now().UnixNano()&0xffffff)
	node := prefix + "-node"
	t.Cleanup(func() { _ = netns.Delete(context.Background(), node) })
	if err := netns.Add(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := netns.IP(ctx, node, "addr add 198.18.0.1/32 dev lo"); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(node, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	network := podnet.Network{NodeNetns: node, Gateway: netip.MustParseAddr("198.18.0.1"), DNS: netip.MustParseAddr("198.19.0.10")}
	var pods []podnet.Pod
	for i, ip := range []string{"198.18.255.3", "198.18.255.4"} {
		pod, err := network.Add(ctx, fmt.Sprintf("%s-pod-%d", prefix, i), netip.MustParseAddr(ip), "lab")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = network.Remove(context.Background(), pod) })
		pods = append(pods, pod)
	}

	ln, err := netns.Listen(pods[1].Netns, "tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, conn.RemoteAddr().(*net.TCPAddr).IP.String())
	}()
	conn, err := netns.Dial(ctx, pods[0].Netns, "tcp", "198.18.255.4:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seen, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) != "198.18.255.3" {
		t.Errorf("the server saw the client as %q; want 198.18.255.3 (routed, not NATed)", seen)
	}
	resolv, err := os.ReadFile(filepath.Join(netns.ConfigDir, pods[0].Netns, "resolv.conf"))
	if err != nil || !strings.Contains(string(resolv), "nameserver 198.19.0.10") {
		t.Errorf("resolv.conf of %s: %q, %v", pods[0].Netns, resolv, err)
	}

	for _, pod := range pods {
		if err := network.Remove(ctx, pod); err != nil {
			t.Error(err)
		}
		if netns.Exists(pod.Netns) {
			t.Errorf("%s still exists after Remove", pod.Netns)
		}
		if _, err := os.Stat(filepath.Join(netns.ConfigDir, pod.Netns)); !os.IsNotExist(err) {
			t.Errorf("/etc/netns/%s still exists after Remove", pod.Netns)
		}
	}
	if err := netns.Delete(ctx, node); err != nil {
		t.Error(err)
	}
}
