package cluster

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Command lines of the real components, with the flags a kubeadm cluster
// gives them where they apply here. Each listens only inside the lab's
// namespaces: etcd, the controller manager's and the scheduler's secure
// ports and kube-proxy's healthz and metrics on the node namespace's
// loopback; kube-apiserver on every address of the node namespace.

func (c *Cluster) etcdArgs() []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	return []string{
		c.bin("etcd"),
		"--name=lab",
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=lab=" + peer,
		"--initial-cluster-state=new",
		// A lab's etcd lives in a temporary directory for minutes: fsync buys
		// nothing and costs seconds of API latency on a shared disk.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

func (c *Cluster) apiserverArgs() []string {
	return []string{
		c.bin("kube-apiserver"),
		"--advertise-address=" + NodeIP.String(),
		"--bind-address=0.0.0.0",
		fmt.Sprintf("--secure-port=%d", apiserverPort),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClientPort),
		"--service-cluster-ip-range=" + ServiceCIDR.String(),
		"--tls-cert-file=" + c.pki.serverCert,
		"--tls-private-key-file=" + c.pki.serverKey,
		"--client-ca-file=" + c.pki.caFile,
		"--token-auth-file=" + filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc." + ClusterDomain,
		"--service-account-key-file=" + c.pki.saPub,
		"--service-account-signing-key-file=" + c.pki.saKey,
		// The aggregation layer's front proxy, as kubeadm sets it up.
		"--requestheader-client-ca-file=" + c.pki.frontProxyCA,
		"--requestheader-allowed-names=" + frontProxyClient,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.pki.proxyClientCert,
		"--proxy-client-key-file=" + c.pki.proxyClientKey,
		"--profiling=false",
		"--v=1",
	}
}

func (c *Cluster) controllerManagerArgs() []string {
	return c.controlPlaneArgs("kube-controller-manager", controllerMgrPort,
		// Every controller that is on by default, less the horizontal pod
		// autoscaler: the lab has no metrics-server to feed it.
		"--controllers=*,-horizontal-pod-autoscaler-controller",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+c.pki.saKey,
		"--root-ca-file="+c.pki.caFile,
		"--cluster-signing-cert-file="+c.pki.caFile,
		"--cluster-signing-key-file="+c.pki.caKeyFile,
		"--cluster-name=rotor-lab",
		"--allocate-node-cidrs=false",
	)
}

func (c *Cluster) schedulerArgs() []string {
	return c.controlPlaneArgs("kube-scheduler", schedulerPort)
}

// controlPlaneArgs is the command line of kube-controller-manager or
// kube-scheduler (name): its kubeconfig, for the API and for checking the
// callers of its secure port, which listens on port of the node namespace's
// loopback with a certificate it makes in its own directory; then extra.
func (c *Cluster) controlPlaneArgs(name string, port int, extra ...string) []string {
	kubeconfig := c.kubeconfig(name)
	args := []string{
		c.bin(name),
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(c.dir, name),
	}
	args = append(args, extra...)
	// One instance: taking a Lease first would only delay the start.
	return append(args, "--leader-elect=false", "--profiling=false", "--v=1")
}

func (c *Cluster) proxyArgs() []string {
	return []string{
		c.bin("kube-proxy"),
		"--kubeconfig=" + c.kubeconfig("kube-proxy"),
		"--proxy-mode=" + string(c.cfg.ProxyMode),
		"--cluster-cidr=" + ClusterCIDR.String(),
		"--hostname-override=" + c.cfg.NodeName,
		"--bind-address=" + NodeIP.String(),
		fmt.Sprintf("--healthz-bind-address=127.0.0.1:%d", proxyHealthzPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", proxyMetricsPort),
		// NodePorts on the node's address only, as kube-proxy recommends
		// (it warns when this is unset).
		"--nodeport-addresses=primary",
		// nf_conntrack_max and the hash size are global (the init network
		// namespace's); zero leaves them alone. The TCP timeouts kube-proxy
		// sets are per namespace and stay at its defaults.
		"--conntrack-max-per-core=0",
		"--conntrack-min=0",
		"--v=2",
	}
}

func (c *Cluster) coreDNSArgs() []string {
	return []string{c.bin("coredns"), "-conf", filepath.Join(c.dir, "Corefile")}
}

// corefile returns kubeadm's default Corefile (cmd/kubeadm/app/phases/
// addons/dns/manifests.go in k8s.io/kubernetes v1.37.2) with two changes:
// the kubernetes plugin reads a kubeconfig, since the lab has no
// service-account volume, and there is no "forward . /etc/resolv.conf" (nor
// "loop", which only guards forwarding), since the lab has no upstream
// resolver; names outside the cluster's zones get SERVFAIL or REFUSED. TTL
// and cache settings are kubeadm's: records carry TTL 30 and the cache
// keeps nothing of cluster.local, so what clients see of a change is
// bounded by their own caching of that TTL.
func (c *Cluster) corefile() string {
	lines := []string{
		".:53 {",
		"    errors",
		"    health {",
		"       lameduck 5s",
		"    }",
		"    ready",
		"    kubernetes " + ClusterDomain + " in-addr.arpa ip6.arpa {",
		"       kubeconfig " + c.kubeconfig("coredns"),
		"       pods insecure",
		"       fallthrough in-addr.arpa ip6.arpa",
		"       ttl 30",
		"    }",
		fmt.Sprintf("    prometheus :%d", coreDNSMetricsPort),
		"    cache 30 {",
		"       disable success " + ClusterDomain,
		"       disable denial " + ClusterDomain,
		"    }",
		"    reload",
		"    loadbalance",
		"}",
	}
	return strings.Join(lines, "\n") + "\n"
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.cfg.BinDir, name) }

func (c *Cluster) kubeconfig(name string) string {
	return filepath.Join(c.dir, name+".kubeconfig")
}
