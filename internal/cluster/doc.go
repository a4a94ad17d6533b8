// Package cluster runs a real Kubernetes control plane, kube-proxy and
// CoreDNS on one machine, inside Linux network namespaces, for rotor's tests
// and reports. It replaces the imitation in internal/kubelab with the
// components themselves, built from source by tools/kube-build.sh at pinned
// versions (Kubernetes v1.37.2, etcd v3.7.3, CoreDNS v1.15.0).
//
// # What runs, real
//
//   - etcd (go.etcd.io/etcd/server/v3's own main package), on the node
//     namespace's loopback, data in the cluster's directory, without fsync.
//   - kube-apiserver: TLS with a CA the harness makes (crypto/x509), static
//     bearer tokens (--token-auth-file) for the admin and the components,
//     Node and RBAC authorization, NodeRestriction admission, service-account
//     tokens signed with a key pair of its own, --service-cluster-ip-range
//     198.19.0.0/16, advertising the node's address 198.18.0.1 (not
//     loopback, so the kubernetes Service's endpoint is reachable from pods).
//   - kube-controller-manager with every default controller (EndpointSlice,
//     ReplicaSet, Deployment, disruption, node-lifecycle, garbage collector,
//     namespace, service-account, …) except the horizontal pod autoscaler,
//     which is off because there is no metrics-server to feed it. Each
//     controller uses its own service account's credentials, as in kubeadm.
//   - kube-scheduler.
//   - kube-proxy in the node namespace, as in a node's root namespace, in
//     iptables or nftables mode ([Config.ProxyMode]); IPVS mode cannot run
//     because the lab's kernel has no ip_vs. It sets the conntrack TCP
//     timeouts of the node namespace as on a node (established 24 h) and
//     leaves the global table size alone (--conntrack-max-per-core=0).
//   - CoreDNS as the cluster DNS, in a pod namespace (198.18.255.2) behind
//     the kube-system/kube-dns Service (198.19.0.10), with kubeadm's
//     default Corefile less forwarding (see corefile in components.go); it
//     reads the API through the kubernetes Service's ClusterIP with a token
//     of its ServiceAccount, bound to kubeadm's system:coredns ClusterRole.
//
// # What the harness does in place of Kubernetes
//
//   - Node registration: New creates each Node ([Config.Nodes]: Ready, its
//     address, capacity and podCIDR) and its Lease, and renews the Leases
//     every 10 s as a kubelet does, unless [Config.NodeAgent] hands that to
//     node agents.
//   - The kubelet: [Cluster.StartNodeAgents] starts a node agent per Node
//     (package nodeagent, which says what of the kubelet it does and leaves
//     out), which runs the pods bound to its Node as processes in their own
//     network namespaces, probes them, reports their status, restarts and
//     stops them. Images map to programs built from this repository.
//   - The pod network: package podnet wires each pod namespace to the node
//     with a veth and /32 routes (a routed layout like Calico's), in place of
//     a CNI plugin.
//   - CoreDNS is a process the harness runs, not a pod the API knows: its
//     Service is selector-less, with an EndpointSlice the harness writes
//     (managed-by [ManagedBy]).
//
// # What is left out
//
// Without node agents, pods the API schedules are bound to a node but never
// run. There is no container runtime or image (see package nodeagent for
// what that leaves out), no cloud provider, no node IPAM
// (--allocate-node-cidrs=false: the harness gives each Node its podCIDR),
// no metrics-server (so no HorizontalPodAutoscaler controller), no kubectl
// logs or exec. The Nodes share the node namespace, its address and one
// kube-proxy, which writes the same ClusterIP rules each node's would; only
// Local traffic policies would tell the nodes apart. Components do not
// elect leaders (--leader-elect=false).
//
// # Topology
//
// All names start with rotorkube-<owner pid>-<6 hex> ([Cluster.Prefix]), so
// parallel clusters never collide and a crashed run's leftovers are found by
// CleanStale. All addresses come from 198.18.0.0/15 (RFC 2544), and nothing
// leaves the lab's namespaces; the harness reaches the API server by
// dialling from a thread inside the node namespace (rotor's internal/netns,
// which internal/kubelab uses too).
//
//	node namespace (PREFIX-node)
//	  lo 127.0.0.1, 198.18.0.1/32     kube-apiserver :6443 on every address;
//	  ip_forward=1                    etcd, controller manager, scheduler and
//	  198.19.0.0/16 dev lo            kube-proxy on 127.0.0.1 only;
//	  198.18.255.2/32 dev rk… ──┐     kube-proxy's rules in this namespace
//	  198.18.255.3/32 dev rk… ──┼─┐
//	                            │ │
//	  PREFIX-coredns            │ │  PREFIX-pod-NAME (AddPod; a node agent's pods,
//	   eth0 198.18.255.2/32 ────┘ │    PREFIX-pod-NODE-…, use 198.18.128.0/24 and up)
//	   default via 198.18.0.1     └── eth0 198.18.255.3/32, default via 198.18.0.1
//	   CoreDNS :53, ready :8181        /etc/netns/PREFIX-pod-NAME/resolv.conf:
//	                                   nameserver 198.19.0.10, search
//	                                   NS.svc.cluster.local svc.cluster.local
//	                                   cluster.local, options ndots:5
//
// The node's address is on its loopback (the lab's kernel has no dummy
// interfaces). The Service CIDR is routed to lo so that a program on the
// node can connect to a ClusterIP: the routing decision comes before
// kube-proxy's OUTPUT DNAT, and a real node has its default route for it.
// Pods need nothing of the kind: their packets reach the node's PREROUTING
// first.
//
// Pod CIDR (kube-proxy's --cluster-cidr) 198.18.128.0/17; Service CIDR
// 198.19.0.0/16, kubernetes 198.19.0.1, kube-dns 198.19.0.10.
//
// # Use
//
// A cluster needs root, ip, conntrack, iptables or nft, and the components
// in [Config.BinDir]; [Available] says what is missing so tests can skip:
//
//	cfg := cluster.Config{ProxyMode: cluster.ProxyNFTables}
//	if err := cluster.Available(cfg); err != nil {
//		t.Skip(err) // it says to run tools/kube-build.sh
//	}
//	c, err := cluster.New(ctx, cfg)
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer c.Close()
//	pod, err := c.AddPod(ctx, "web-1", "default")
//
// With Config{NodeAgent: true}, StartNodeAgents makes the cluster run
// pods; packages manifest and ops apply manifests and act on the cluster as
// kubectl does (example/k8s's TestRealCluster uses all three).
//
// Every component logs to NAME.log in [Cluster.Dir]. A component that fails
// to start or become ready makes New fail with its name and the end of its
// log. Close stops every process the cluster started, by PID, and deletes
// every namespace with its prefix, which takes the veths, routes, rules and
// conntrack entries along; a cluster whose owner died is removed by the next
// New or by [CleanStale].
//
// The zero value of every Config field means its documented default.
package cluster
