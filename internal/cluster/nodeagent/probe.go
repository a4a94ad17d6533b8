package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeKind is which of a container's probes a worker runs.
type probeKind int

const (
	readiness probeKind = iota
	liveness
	startup
)

func (k probeKind) String() string {
	return [...]string{"Readiness", "Liveness", "Startup"}[k]
}

// result is a probe's outcome as kubelet's results manager keeps it.
type result int

const (
	unknown result = iota
	success
	failure
)

// probeUserAgent is the user agent of kubelet's probes in the Kubernetes
// version the lab runs (v1.37).
const probeUserAgent = "kube-probe/1.37"

// probeOnce runs one probe of a container of a pod at podIP, as kubelet's
// prober does (pkg/probe/{http,tcp,grpc} in k8s.io/kubernetes v1.37.2),
// and returns its result and, on failure, why. Exec probes need a
// container runtime and always fail here.
func probeOnce(ctx context.Context, p *corev1.Probe, c *corev1.Container, podIP netip.Addr) (result, string) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return probeHTTP(ctx, p.HTTPGet, c, podIP, timeout)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return failure, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP.String()
		}
		conn, err := probeDialer().DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return failure, fmt.Sprintf("dial tcp %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), err)
		}
		_ = conn.Close()
		return success, ""
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return probeGRPC(ctx, podIP, int(p.GRPC.Port), service, timeout)
	case p.Exec != nil:
		return failure, "exec probes need a container runtime, which the lab's node agent does not have"
	}
	return failure, "the probe has no handler"
}

// probeDialer closes probe connections with a 1 s linger, so that they do
// not pile up in TIME-WAIT, as kubelet's does (pkg/probe/dialer_others.go).
func probeDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
		})
	}}
}

// resolvePort turns a probe's or hook's port, a number or the name of one
// of the container's ports, into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal < 1 || port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %d", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("couldn't find port %q in container %s", port.StrVal, c.Name)
}

// httpGetURL returns the URL and headers of an httpGet probe or hook.
func httpGetURL(h *corev1.HTTPGetAction, c *corev1.Container, podIP netip.Addr) (*url.URL, http.Header, error) {
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return nil, nil, err
	}
	host := h.Host
	if host == "" {
		host = podIP.String()
	}
	scheme := "http"
	if h.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + h.Path)
	if err != nil {
		return nil, nil, err
	}
	header := http.Header{}
	for _, hd := range h.HTTPHeaders {
		header.Add(hd.Name, hd.Value)
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", probeUserAgent)
	}
	if header.Get("Accept") == "" {
		header.Set("Accept", "*/*")
	}
	return u, header, nil
}

// httpGet makes the request of an httpGet probe or hook: no certificate
// check for HTTPS, redirects followed only to the same host (one to another
// host ends the request with the redirect as its answer).
func httpGet(ctx context.Context, u *url.URL, header http.Header, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header = header
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       probeDialer().DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != u.Hostname() || len(via) >= 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return client.Do(req)
}

func probeHTTP(ctx context.Context, h *corev1.HTTPGetAction, c *corev1.Container, podIP netip.Addr, timeout time.Duration) (result, string) {
	u, header, err := httpGetURL(h, c, podIP)
	if err != nil {
		return failure, err.Error()
	}
	resp, err := httpGet(ctx, u, header, timeout)
	if err != nil {
		return failure, fmt.Sprintf("Get %q: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return success, ""
	}
	return failure, fmt.Sprintf("HTTP probe failed with statuscode: %d (%s)", resp.StatusCode, truncate(string(body), 200))
}

// probeGRPC asks grpc.health.v1.Health/Check for service on a fresh
// connection, plaintext, as kubelet's gRPC prober does.
func probeGRPC(ctx context.Context, podIP netip.Addr, port int, service string, timeout time.Duration) (result, string) {
	addr := net.JoinHostPort(podIP.String(), strconv.Itoa(port))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(probeUserAgent),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return probeDialer().DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		return failure, fmt.Sprintf("error: failed to connect service at %q: %v", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout)
		}
		return failure, fmt.Sprintf("error: health rpc probe failed: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return success, ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// probeView is what a probe worker needs to know of its container.
type probeView struct {
	podTerminal  bool
	deleting     bool
	containerID  string
	running      bool
	terminated   bool
	startedAt    time.Time
	started      bool // the startup probe has succeeded, or there is none
	neverRestart bool // restartPolicy Never
	podIP        netip.Addr
}

// probeWorker runs one probe of one container, as kubelet's prober worker
// does (pkg/kubelet/prober/worker.go): a result counts once it has repeated
// failureThreshold or successThreshold times in a row; nothing is probed
// before initialDelaySeconds of the container's running or, but for the
// startup probe, before it has started; the startup probe stops once it
// has succeeded; liveness and startup probing stops, with success, once the
// pod is being deleted, while readiness probing goes on; a liveness or
// startup failure holds probing until a new container replaces the one it
// condemned.
type probeWorker struct {
	kind probeKind
	spec *corev1.Probe
	ctr  *corev1.Container
	view func() probeView
	// report sets the worker's result for a container; unhealthy records
	// a failed probe (kubelet's Unhealthy event), counted or not.
	report    func(kind probeKind, containerID string, r result)
	unhealthy func(kind probeKind, msg string)
	trigger   chan struct{} // a probe now, as kubelet's manual trigger
	stop      chan struct{}

	containerID string
	lastResult  result
	run         int
	onHold      bool
}

func (w *probeWorker) initial() result {
	switch w.kind {
	case readiness:
		return failure
	case liveness:
		return success
	}
	return unknown
}

// loop probes every periodSeconds until stop is closed or the container
// is gone for good. jitter delays the first probe by a random part of a
// period, as kubelet does for probes it starts just after its own start.
func (w *probeWorker) loop(ctx context.Context, jitter bool) {
	period := time.Duration(w.spec.PeriodSeconds) * time.Second
	if period <= 0 {
		period = 10 * time.Second
	}
	if jitter {
		select {
		case <-time.After(time.Duration(rand.Float64() * float64(period))):
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		}
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for w.probe(ctx) {
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.trigger:
		}
	}
}

// probe probes once and reports the result; it returns whether to go on.
func (w *probeWorker) probe(ctx context.Context) bool {
	v := w.view()
	if v.podTerminal {
		return false
	}
	if v.containerID == "" {
		return true // not started yet
	}
	if v.containerID != w.containerID {
		w.containerID = v.containerID
		w.lastResult, w.run, w.onHold = unknown, 0, false
		w.report(w.kind, w.containerID, w.initial())
	}
	if w.onHold {
		return true
	}
	if !v.running {
		w.report(w.kind, w.containerID, failure)
		return !(v.terminated && v.neverRestart)
	}
	if v.deleting && (w.kind == liveness || w.kind == startup) {
		w.report(w.kind, w.containerID, success)
		return false
	}
	if time.Since(v.startedAt) < time.Duration(w.spec.InitialDelaySeconds)*time.Second {
		return true
	}
	if w.kind == startup && v.started {
		return true // done; kept for a restarted container
	}
	if w.kind != startup && !v.started {
		return true // the others wait for the startup probe
	}
	r, msg := probeOnce(ctx, w.spec, w.ctr, v.podIP)
	if ctx.Err() != nil {
		return false
	}
	if r == w.lastResult {
		w.run++
	} else {
		w.lastResult, w.run = r, 1
	}
	threshold := w.spec.FailureThreshold
	if r == success {
		threshold = w.spec.SuccessThreshold
	}
	if r == failure {
		w.unhealthy(w.kind, msg)
	}
	if w.run < int(max(threshold, 1)) {
		return true
	}
	w.report(w.kind, w.containerID, r)
	if r == failure && (w.kind == liveness || w.kind == startup) {
		w.onHold, w.run = true, 0
	}
	return true
}
