// Package kubelab builds a Kubernetes node in Linux network namespaces, so
// tests and reports can watch gRPC traffic go through the same machinery a
// real cluster uses: kube-proxy's iptables rules with conntrack for a
// ClusterIP Service, a real DNS server for a headless Service, and optionally
// nginx as a per-request (L7) balancer.
//
// # Topology
//
// Every lab lives in namespaces named rotorlab-<owner pid>-<6 hex>-<role>, so
// parallel labs never collide and a crashed run can be recognised and removed
// ([CleanStale]). All addresses come from the RFC 2544 benchmarking range
// 198.18.0.0/15, and no traffic leaves the lab's namespaces.
//
//	 client ns (198.18.0.2)                     node ns
//	┌──────────────────────────────┐   ┌──────────────────────────────────┐
//	│ test / ClientCommand         │   │ br0 198.18.0.1/24                │
//	│ nat OUTPUT → KUBE-SERVICES   │   │ dnsmasq 198.18.0.1:53            │
//	│   → KUBE-SVC-… (statistic)   │   │   hello-headless.lab.svc… → pods │
//	│   → KUBE-SEP-… (DNAT podIP)  │   │   hello.lab.svc…  → ClusterIP    │
//	│ conntrack pins each conn     │   │                                  │
//	│ default via 198.18.0.1       │   │                                  │
//	│ eth0 ═══════════ veth ═══════╪═══╪═ vc ─┐                           │
//	└──────────────────────────────┘   │      │ (bridge ports)            │
//	 l7 ns (optional, 198.18.0.3)      │      ├─ vl7 ═══ eth0 l7 ns       │
//	   nginx http2, grpc_pass to the   │      ├─ vp0 ═══ eth0 pod0 ns     │
//	   ready pods (per request)        │      ├─ vp1 ═══ eth0 pod1 ns     │
//	                                   │      └─ vpN ═══ eth0 podN ns     │
//	                                   └──────────────────────────────────┘
//	 pod<i> ns (198.18.0.10+slot): the caller's server, started by ip netns exec
//
// The ClusterIP (198.19.0.10) is not assigned to any interface, exactly as in a
// cluster: it exists only as a DNAT rule. kube-proxy writes its rules in the
// node's root namespace where client pods' packets traverse PREROUTING; here
// the client is a process on the "node" itself, so the same chains hang off
// nat OUTPUT, which is also where kube-proxy hooks them for host-network
// clients. Routing happens before OUTPUT DNAT, so the client needs a route
// that covers the ClusterIP (its default route via the bridge); without one a
// dial fails with "network is unreachable" before any rule is consulted.
//
// # Why it matches kube-proxy
//
// The chain names are kube-proxy's (KUBE-SVC-/KUBE-SEP- plus the first 16
// base32 characters of a SHA-256 of "namespace/service:port" and the
// lowercase protocol, plus "ip:port" for endpoints), the rules carry the same
// comments, and the per-service chain picks an endpoint with "-m statistic
// --mode random --probability 1/n, 1/(n-1), …" printed with %.10f, the last
// rule unconditional. Every endpoint change rewrites the rules in one
// iptables-restore --noflush transaction, as kube-proxy does, and conntrack is
// never flushed for TCP: an established connection stays on the pod it was
// first sent to, whatever the rules say later. That stickiness is the problem
// rotor exists to solve, so the lab must not hide it. kube-proxy deletes
// conntrack entries of removed endpoints for UDP only; the lab's Services are
// TCP, so there is nothing to delete.
//
// A pod joins the endpoints (iptables, DNS, nginx) only once every Service
// port accepts connections, like a readiness probe. Deleting a pod removes its
// endpoint first, then sends SIGTERM, waits up to the termination grace period
// and sends SIGKILL. In a real cluster endpoint removal and SIGTERM race each
// other; the lab makes the order deterministic so tests can rely on it.
//
// # Use
//
// A lab needs root, ip, iptables, conntrack and dnsmasq (nginx for the L7
// option); [Available] and [AvailableL7] say what is missing so tests can skip:
//
//	if err := kubelab.Available(); err != nil {
//		t.Skip(err)
//	}
//	lab, err := kubelab.New(ctx, kubelab.Config{Replicas: 3, ServerCommand: cmd})
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer lab.Close()
//
// Always defer [Lab.Close]; commands should also call [Lab.CloseOnSignal] so
// SIGINT and SIGTERM remove the namespaces before the process dies. A lab that
// was never closed (the process was killed) is removed by the next [New] or by
// [CleanStale].
package kubelab
