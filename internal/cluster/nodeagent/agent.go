package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
)

// Agent is a node agent: it keeps its Node alive and runs the pods bound
// to it (see the package documentation).
type Agent struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	images   *imageStore
	backoff  *flowcontrol.Backoff // safe for concurrent use; a key per container
	status   *statusManager
	recorder record.EventRecorder
	started  time.Time

	mu      sync.Mutex
	ipam    *ipam
	workers map[types.UID]*podWorker
}

// New validates cfg and makes an agent; Run starts it.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	rc.UserAgent = "rotor-node-agent/" + cfg.NodeName
	// kubelet's defaults (--kube-api-qps 50, --kube-api-burst 100).
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	return &Agent{
		cfg:     cfg,
		log:     log.With("node", cfg.NodeName),
		client:  client,
		backoff: flowcontrol.NewBackOff(cfg.RestartBackoff, cfg.MaxRestartBackoff),
		workers: map[types.UID]*podWorker{},
	}, nil
}

// Run registers the Node (or takes it over), renews its Lease, and runs
// the pods bound to it until ctx ends. Pods keep running after Run
// returns, as containers outlive a kubelet; the cluster harness removes
// their namespaces. It returns an error if the agent cannot start.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	images, err := pullImages(a.cfg.ImageDir, a.cfg.Images)
	if err != nil {
		return err
	}
	a.images = images
	node, err := a.registerNode(ctx)
	if err != nil {
		return err
	}
	cidr, err := netip.ParsePrefix(node.Spec.PodCIDR)
	if err != nil {
		return fmt.Errorf("nodeagent: Node %s has spec.podCIDR %q; the agent needs one to address pods (the lab runs no node IPAM: the harness sets it)", node.Name, node.Spec.PodCIDR)
	}
	if a.ipam, err = newIPAM(cidr); err != nil {
		return err
	}
	if err := a.renewLease(ctx, node); err != nil {
		return err
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	a.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: a.cfg.NodeName})

	a.status = &statusManager{a: a, pending: map[*podWorker]bool{}, kick: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.status.run(ctx) })
	wg.Go(func() { a.heartbeat(ctx, node) })

	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	pods := factory.Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.podSeen(ctx, obj) },
		UpdateFunc: func(_, obj any) { a.podSeen(ctx, obj) },
		DeleteFunc: a.podGone,
	}); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced) {
		return ctx.Err()
	}
	a.log.Info("node agent running", "podCIDR", cidr, "images", len(a.cfg.Images))
	<-ctx.Done()
	return nil
}

// podSeen starts a worker for a pod it does not run yet, or hands the
// worker the newer version.
func (a *Agent) podSeen(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != a.cfg.NodeName {
		return
	}
	a.mu.Lock()
	pw, ok := a.workers[pod.UID]
	if !ok {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			a.mu.Unlock()
			if pod.DeletionTimestamp != nil {
				// Ended before this agent started: only the final delete is left.
				_ = a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
					GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
			}
			return
		}
		pw = newPodWorker(a, pod)
		a.workers[pod.UID] = pw
		a.mu.Unlock()
		go func() {
			pw.run(ctx)
			a.mu.Lock()
			delete(a.workers, pod.UID)
			a.mu.Unlock()
			a.status.forget(pw)
		}()
		return
	}
	a.mu.Unlock()
	pw.update(pod)
}

// podGone tells a pod's worker that the pod left the API.
func (a *Agent) podGone(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	pw := a.workers[pod.UID]
	a.mu.Unlock()
	if pw != nil {
		pw.removed()
	}
}

func (a *Agent) allocateIP() (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ipam.allocate()
}

func (a *Agent) releaseIP(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ipam.release(ip)
}

// event records an event on a pod, as kubelet does (source kubelet, host
// the node).
func (a *Agent) event(pod *corev1.Pod, eventType, reason, format string, args ...any) {
	if a.recorder != nil {
		a.recorder.Eventf(pod, eventType, reason, format, args...)
	}
}

// secret reads a Secret for a container's environment; the Node
// authorizer lets the node read only those its pods refer to.
func (a *Agent) secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	return a.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}

// configMap reads a ConfigMap for a container's environment.
func (a *Agent) configMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	return a.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

// patchStatus writes a pod's status as kubelet's status manager does
// (pkg/util/pod.PatchPodStatus): a strategic merge patch from the status
// the API holds, carrying the pod's UID as a precondition, and nothing at
// all when nothing changed.
func (a *Agent) patchStatus(ctx context.Context, cur *corev1.Pod, st corev1.PodStatus) error {
	oldData, err := json.Marshal(corev1.Pod{Status: cur.Status})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: cur.UID}, Status: st})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, corev1.Pod{})
	if err != nil {
		return err
	}
	if string(patch) == fmt.Sprintf(`{"metadata":{"uid":%q}}`, cur.UID) {
		return nil
	}
	_, err = a.client.CoreV1().Pods(cur.Namespace).Patch(ctx, cur.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// statusManager writes the status of pods whose state changed, one pod at
// a time, as kubelet's status manager does; a write that fails is tried
// again a second later.
type statusManager struct {
	a       *Agent
	mu      sync.Mutex
	pending map[*podWorker]bool
	kick    chan struct{}
}

func (m *statusManager) dirty(pw *podWorker) {
	m.mu.Lock()
	m.pending[pw] = true
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *statusManager) forget(pw *podWorker) {
	m.mu.Lock()
	delete(m.pending, pw)
	m.mu.Unlock()
}

func (m *statusManager) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		}
		m.mu.Lock()
		batch := m.pending
		m.pending = map[*podWorker]bool{}
		m.mu.Unlock()
		for pw := range batch {
			if err := pw.syncStatus(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.a.log.Warn("pod status not written; trying again in 1 s", "pod", pw.uid, "err", err)
				time.AfterFunc(time.Second, func() { m.dirty(pw) })
			}
		}
	}
}
