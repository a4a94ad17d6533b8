package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rotorkit/rotor/internal/lifecycle"
	"github.com/rotorkit/rotor/internal/netns"
)

// Node heartbeat, as a kubelet does it by default: a Lease of 40 s renewed
// every 10 s (a quarter of it).
const (
	leaseDuration = 40 * time.Second
	leaseRenew    = 10 * time.Second
)

// ManagedBy is the endpointslice.kubernetes.io/managed-by label of the
// EndpointSlices the harness writes; the EndpointSlice controller leaves
// slices managed by anyone else alone.
const ManagedBy = "rotor-lab"

// registerNodes registers every Node of the cluster (Config.Nodes).
func (c *Cluster) registerNodes(ctx context.Context) error {
	for _, n := range c.Nodes() {
		if err := c.registerNode(ctx, n.Name, n.PodCIDR); err != nil {
			return err
		}
	}
	return nil
}

// registerNode creates a Node, Ready, with the node address, capacity and
// podCIDR a kubelet would report, and its Lease.
func (c *Cluster) registerNode(ctx context.Context, name string, podCIDR netip.Prefix) error {
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       runtime.GOOS,
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR.String(), PodCIDRs: []string{podCIDR.String()}},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: NodeIP.String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			Conditions: []corev1.NodeCondition{
				condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "registered by the rotor lab harness"),
				condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "registered by the rotor lab harness"),
				condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "registered by the rotor lab harness"),
				condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "registered by the rotor lab harness"),
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  KubernetesVersion,
				OperatingSystem: runtime.GOOS,
				Architecture:    runtime.GOARCH,
			},
		},
	}
	created, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("cluster: register Node %s: %w", name, err)
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: corev1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: created.Name, UID: created.UID,
			}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &created.Name,
			LeaseDurationSeconds: new(int32(leaseDuration / time.Second)),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if _, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create the Node's Lease: %w", err)
	}
	return nil
}

// startHeartbeat renews every Node's Lease every leaseRenew until Close.
func (c *Cluster) startHeartbeat() {
	ctx, cancel := context.WithCancel(context.Background())
	c.heartbeatStop = cancel
	c.heartbeatDone = make(chan struct{})
	go func() {
		defer close(c.heartbeatDone)
		lifecycle.Every(ctx, leaseRenew, func() {
			leases := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
			for _, n := range c.Nodes() {
				lease, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
				if err != nil {
					continue // the next tick tries again, as a kubelet would
				}
				lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, _ = leases.Update(ctx, lease, metav1.UpdateOptions{})
			}
		})
	}()
}

// addDNSObjects creates what kubeadm's CoreDNS add-on creates, less the
// Deployment: the coredns ServiceAccount with its ClusterRole and binding,
// the kube-dns Service (selector-less here, since CoreDNS is not a pod the
// API knows) and an EndpointSlice naming CoreDNS's pod address. CoreDNS's
// kubeconfig carries a token of its ServiceAccount from the TokenRequest
// API, as a projected token volume would, and points at the kubernetes
// Service's ClusterIP, as in-cluster configuration does, so CoreDNS reaches
// the API through kube-proxy.
func (c *Cluster) addDNSObjects(ctx context.Context) error {
	const ns = metav1.NamespaceSystem
	labels := map[string]string{"k8s-app": "kube-dns"}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns}}
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create ServiceAccount coredns: %w", err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	if _, err := c.client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create ClusterRole system:coredns: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:coredns"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: ns}},
	}
	if _, err := c.client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create ClusterRoleBinding system:coredns: %w", err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(certValidity / time.Second))}}
	tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "coredns", tr, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("cluster: token for ServiceAccount coredns: %w", err)
	}
	inCluster := fmt.Sprintf("https://%s:443", KubernetesServiceIP)
	if err := writeKubeconfig(c.kubeconfig("coredns"), inCluster, c.pki.caPEM, "coredns", tr.Status.Token); err != nil {
		return err
	}

	ports := []struct {
		name     string
		protocol corev1.Protocol
		port     int32
	}{{"dns", corev1.ProtocolUDP, 53}, {"dns-tcp", corev1.ProtocolTCP, 53}, {"metrics", corev1.ProtocolTCP, coreDNSMetricsPort}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: ns, Labels: labels},
		Spec:       corev1.ServiceSpec{ClusterIP: DNSServiceIP.String()},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-lab", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: "kube-dns",
			discoveryv1.LabelManagedBy:   ManagedBy,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{CoreDNSIP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			NodeName:   &c.cfg.NodeName,
		}},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.name, Protocol: p.protocol, Port: p.port, TargetPort: intstr.FromInt32(p.port)})
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: new(p.name), Protocol: new(p.protocol), Port: new(p.port)})
	}
	if _, err := c.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create Service kube-dns: %w", err)
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: create EndpointSlice for kube-dns: %w", err)
	}
	return nil
}

// lookupViaService resolves the kubernetes Service's name through the
// kube-dns ClusterIP from the node namespace and wants its ClusterIP.
func (c *Cluster) lookupViaService(ctx context.Context) error {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return netns.Dial(ctx, c.nodeNS, network, net.JoinHostPort(DNSServiceIP.String(), "53"))
		},
	}
	name := "kubernetes.default.svc." + ClusterDomain + "."
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	if !slices.Equal(addrs, []string{KubernetesServiceIP.String()}) {
		return fmt.Errorf("%s resolved to %v; want [%s]", name, addrs, KubernetesServiceIP)
	}
	return nil
}
