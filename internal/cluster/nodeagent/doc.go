// Package nodeagent is the cluster lab's stand-in for the kubelet: a node
// agent, on client-go, that keeps a Node alive and runs the pods bound to
// it as processes in network namespaces of their own, so that a real
// control plane (package cluster) drives real programs. The cluster
// harness starts one per Node with the node-agent command
// (internal/cluster/cmd/node-agent, Cluster.StartNodeAgents), inside the
// node's network namespace, with the Node's credentials (system:node:NAME),
// which the Node authorizer and the NodeRestriction admission plugin
// confine as they confine a kubelet. It is a process of its own rather
// than part of the test: it then runs at full speed under a race-detecting
// test, dies with the harness (Pdeathsig), logs to its own file, and
// exercises the node's credentials as a kubelet does.
//
// References are to k8s.io/kubernetes v1.37.2, whose source the Go module
// cache holds once tools/kube-build.sh has run (pkg/kubelet/…); the agent
// copies none of it.
//
// # What it does as the kubelet does
//
//   - Node: registers the Node if it is missing (the harness registers it
//     first, with its podCIDR, since the lab has no node IPAM), posts its
//     status (Ready, addresses, kubelet version) at start and every minute,
//     and renews its Lease in kube-node-lease every 10 s (40 s leases):
//     kubelet_node_status.go, nodelease.
//   - Pods: watches the pods bound to its Node (a spec.nodeName field
//     selector); for each it makes a network namespace (podnet: a veth to the
//     node namespace and /32 routes, the CNI plugin's part) with an address
//     from the Node's podCIDR, handed out in order as CNI's host-local IPAM
//     does, and /etc/resolv.conf by dnsPolicy (ClusterFirst: the cluster DNS
//     and the namespace's search list).
//   - Images: an image name, whatever its tag, maps to a program built from
//     this repository (Config.Images; the harness's caller maps
//     rotor-example-server and rotor-example-client), copied into the
//     agent's image directory at start as a runtime unpacks an image. An
//     unknown image leaves the container waiting in ErrImagePull with the
//     image named, the pod Pending.
//   - Containers: command (which must name the image's entrypoint) and
//     args with $(VAR) expansion; env with plain values, $(VAR) references,
//     fieldRef (metadata.name, .namespace, .uid, .labels['k'],
//     .annotations['k'], spec.nodeName, spec.serviceAccountName,
//     status.podIP(s), status.hostIP(s)), secretKeyRef and configMapKeyRef
//     (optional or not), envFrom; a missing Secret or key leaves the
//     container waiting in CreateContainerConfigError and is tried again
//     every 10 s (kubelet_pods.go makeEnvironmentVariables, pod_workers.go).
//     PATH and HOSTNAME come as a runtime sets them. Ports are honoured where
//     the kubelet honours them: named ports of probes and hooks.
//   - Users: runAsUser, runAsGroup (container over pod over the image's
//     USER), supplementalGroups and fsGroup as groups, runAsNonRoot checked
//     (CreateContainerConfigError, kuberuntime_container.go verifyRunAsNonRoot),
//     allowPrivilegeEscalation false as no_new_privs, capabilities.drop from
//     the bounding set; applied by setpriv(1) after "ip netns exec".
//   - Probes (prober/worker.go, pkg/probe): grpc, httpGet (200–399,
//     redirects followed on the same host, kube-probe/1.37 user agent) and
//     tcpSocket, each on a fresh connection with a 1 s linger; period,
//     timeout, initialDelaySeconds, success and failure thresholds; the
//     initial results (readiness failure, liveness success, startup
//     unknown); readiness and liveness wait for the startup probe; a
//     container that has just started is probed for readiness at once; a
//     failed liveness or startup probe kills the container (preStop, the
//     probe's or the pod's grace period) and holds the probe until the new
//     container; liveness and startup probing stops once the pod is being
//     deleted while readiness probing goes on until its containers have
//     stopped; an Unhealthy event per failed probe.
//   - Restarts by restartPolicy (Always, OnFailure, Never) with kubelet's
//     crash-loop back-off (the first restart at once, then 10 s after the
//     exit, doubling to 5 min, forgotten after 10 min of quiet; client-go's
//     flowcontrol.Backoff as kubelet uses it; Config.RestartBackoff scales
//     it down for tests), CrashLoopBackOff as the waiting reason meanwhile.
//   - Status (status_manager.go, kubelet_pods.go getPhase,
//     status/generate.go): a strategic merge patch of pods/status from the
//     status the API holds, with the pod's UID as a precondition, written
//     only when it changed: phase, podIP(s), hostIP(s), startTime, the
//     conditions PodReadyToStartContainers, Initialized, ContainersReady and
//     Ready (readiness gates included; the others' conditions, such as
//     PodScheduled and DisruptionTarget, kept), containerStatuses with
//     state, lastState, ready, started, restartCount, image and containerID
//     ("rotorlab://PID": ContainerPID reads it).
//   - Deletion (kuberuntime_container.go killContainer, kubelet.go
//     SyncTerminatingPod): once a pod has a deletionTimestamp every
//     container is stopped in parallel: its preStop hook within the grace
//     period (deletionGracePeriodSeconds), SIGTERM with what is left of it
//     (at least 2 s), SIGKILL to its process group at the end; then the
//     namespace is removed, the terminal phase reported (Succeeded if every
//     container exited 0, else Failed) and the pod deleted for good (grace
//     period 0, UID precondition). The EndpointSlice controller drops the
//     pod's endpoints when it sees the deletionTimestamp, so endpoint removal
//     and SIGTERM race as in a cluster. A pod whose containers ran to
//     completion (Never, OnFailure) loses its namespace and stays in the
//     API, Succeeded or Failed, until deleted.
//   - Events as kubelet records them (source kubelet, host the Node):
//     Started, Killing, BackOff, Unhealthy, Failed, FailedPreStopHook,
//     FailedCreatePodSandBox.
//   - Logs: each run of a container writes to
//     LogDir/NAMESPACE_POD_UID/CONTAINER/N.log, as /var/log/pods.
//
// # What it leaves out
//
//   - Container isolation: no cgroups (resources.requests and limits are
//     not enforced, and GOMAXPROCS sees every CPU), no mount, PID, UTS or
//     IPC namespace of the pod's own (a container sees the host's file
//     system and processes; HOSTNAME is set, the host name is not), no
//     seccomp profile (seccompProfile RuntimeDefault is not applied), no
//     AppArmor or SELinux, readOnlyRootFilesystem not enforced,
//     capabilities.add and privileged ignored, procMount and sysctls
//     ignored.
//   - No container runtime: no exec (exec probes always fail; exec preStop
//     and postStart hooks fail with a FailedPreStopHook event, and the
//     container is stopped anyway), no kubectl exec, logs, attach or
//     port-forward (no kubelet API server), no images beyond Config.Images
//     (imagePullPolicy and pull secrets ignored), no postStart hooks.
//   - Volumes of any kind, init containers and sidecars, hostNetwork,
//     hostPort, dnsPolicy None: a pod that asks for them stays Pending, its
//     containers waiting in CreateContainerConfigError (or its sandbox
//     failing) with a message that says so. The service-account token
//     volume that admission adds is left unmounted rather than refused (the
//     example sets automountServiceAccountToken false anyway). Also left
//     out: dnsConfig, service links ({SVC}_SERVICE_HOST… variables),
//     resourceFieldRef.
//   - Shortening a deletion's grace period once it has begun; pod resize;
//     static and mirror pods; eviction under node pressure; node shutdown
//     handling; adopting the containers of an earlier agent (a restarted
//     agent starts the pods afresh, as a kubelet would not).
//   - Kubelet's other loops: the PLEG (a container's exit is seen at once,
//     where kubelet relists every second), image and container garbage
//     collection, the CPU, memory and topology managers, metrics and
//     /stats.
package nodeagent
