package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// kubeletVersion is what the agent reports as the Node's kubelet version:
// the Kubernetes release it stands in for.
const kubeletVersion = "v1.37.2"

// registerNode makes sure the Node exists, as kubelet's registration does
// (create it, or take over the one there), and posts its status: Ready,
// the node's address, the agent's version.
func (a *Agent) registerNode(ctx context.Context) (*corev1.Node, error) {
	nodes := a.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: a.cfg.NodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": a.cfg.NodeName,
				"kubernetes.io/os":       runtime.GOOS,
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		}}, metav1.CreateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("nodeagent: register Node %s: %w", a.cfg.NodeName, err)
	}
	if err := a.postNodeStatus(ctx); err != nil {
		return nil, err
	}
	return node, nil
}

// postNodeStatus patches the Node's conditions (heartbeat now), addresses
// and kubelet version, as kubelet's node status updater does.
func (a *Agent) postNodeStatus(ctx context.Context) error {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now}
	}
	status := map[string]any{
		"conditions": []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "the rotor lab's node agent is posting ready status"),
		},
		"addresses": []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.cfg.hostIP().String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		"nodeInfo": map[string]string{"kubeletVersion": kubeletVersion, "operatingSystem": runtime.GOOS, "architecture": runtime.GOARCH},
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	// The strategic merge patch merges conditions by type and keeps each
	// one's lastTransitionTime unless its status changes.
	if _, err := a.client.CoreV1().Nodes().Patch(ctx, a.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("nodeagent: post the status of Node %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

// renewLease renews the Node's Lease in kube-node-lease, creating it if it
// is missing, as kubelet's node lease controller does.
func (a *Agent) renewLease(ctx context.Context, node *corev1.Node) error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:      a.cfg.NodeName,
				Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
				}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &a.cfg.NodeName,
				LeaseDurationSeconds: new(int32(leaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
	} else if err == nil {
		lease.Spec.HolderIdentity = &a.cfg.NodeName
		lease.Spec.LeaseDurationSeconds = new(int32(leaseDuration / time.Second))
		lease.Spec.RenewTime = &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("nodeagent: renew the Lease of Node %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

// heartbeat renews the Lease every 10 s and posts the Node's status every
// minute until ctx ends; a failed renewal is tried again at the next tick.
func (a *Agent) heartbeat(ctx context.Context, node *corev1.Node) {
	lease := time.NewTicker(leaseRenewInterval)
	defer lease.Stop()
	status := time.NewTicker(nodeStatusInterval)
	defer status.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			err = a.renewLease(ctx, node)
		case <-status.C:
			err = a.postNodeStatus(ctx)
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat", "err", err)
		}
	}
}
