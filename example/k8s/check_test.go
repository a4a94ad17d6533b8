package k8s

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/rotorkit/rotor/server"
)

// Images whose containers the checker treats as the example's server and
// client (the repository part of the image reference, without registry or
// tag).
const (
	serverImage = "rotor-example-server"
	clientImage = "rotor-example-client"
)

// kustomization is the part of kustomize's Kustomization that these
// manifests use; decoding it strictly catches a misspelt field.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

// bundle is every object of a set of manifests, decoded strictly.
type bundle struct {
	kustomization *kustomization // nil for the output of kustomize build
	files         []string       // the manifest files other than kustomization.yaml
	namespaces    []corev1.Namespace
	deployments   []appsv1.Deployment
	services      []corev1.Service
	hpas          []autoscalingv2.HorizontalPodAutoscaler
	pdbs          []policyv1.PodDisruptionBudget
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode decodes files (name → YAML, possibly several documents each)
// strictly: an unknown field, a duplicated key, or a kind or apiVersion
// these manifests do not use is an error.
func decode(files map[string][]byte) (*bundle, error) {
	b := &bundle{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if name == "kustomization.yaml" {
			var k kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
				return nil, fmt.Errorf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", name, k.APIVersion, k.Kind)
			}
			b.kustomization = &k
			continue
		}
		b.files = append(b.files, name)
		for i, doc := range docSeparator.Split(string(data), -1) {
			if err := b.add([]byte(doc)); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", name, i+1, err)
			}
		}
	}
	return b, nil
}

func (b *bundle) add(doc []byte) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil // only comments
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		err = decodeInto(doc, &b.namespaces)
	case "apps/v1 Deployment":
		err = decodeInto(doc, &b.deployments)
	case "v1 Service":
		err = decodeInto(doc, &b.services)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		err = decodeInto(doc, &b.hpas)
	case "policy/v1 PodDisruptionBudget":
		err = decodeInto(doc, &b.pdbs)
	default:
		return fmt.Errorf("apiVersion %q kind %q: not one the checker knows (v1 Namespace and Service, apps/v1 Deployment, autoscaling/v2 HorizontalPodAutoscaler, policy/v1 PodDisruptionBudget)", tm.APIVersion, tm.Kind)
	}
	return err
}

// decodeInto decodes doc strictly (an unknown field is an error) and
// appends the object to list.
func decodeInto[T any](doc []byte, list *[]T) error {
	var o T
	err := yaml.UnmarshalStrict(doc, &o)
	*list = append(*list, o)
	return err
}

func (b *bundle) deployment(name string) *appsv1.Deployment {
	for i := range b.deployments {
		if b.deployments[i].Name == name {
			return &b.deployments[i]
		}
	}
	return nil
}

func (b *bundle) service(name string) *corev1.Service {
	for i := range b.services {
		if b.services[i].Name == name {
			return &b.services[i]
		}
	}
	return nil
}

// flagDef is one flag of a command, as its -h lists it.
type flagDef struct {
	name, def string
	isBool    bool
}

var (
	flagLine    = regexp.MustCompile(`^  -([^\s]+)(?: (\S+))?$`)
	defaultPart = regexp.MustCompile(`\(default (.*)\)$`)
)

// parseUsage reads the flag definitions from the output of a Go command's
// -h (flag.PrintDefaults): "  -name type" then an indented usage line that
// ends with "(default X)" unless the default is the zero value. A flag with
// no type word is a bool.
func parseUsage(usage string) []flagDef {
	var defs []flagDef
	lines := strings.Split(usage, "\n")
	for i, line := range lines {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := flagDef{name: m[1], isBool: m[2] == ""}
		if i+1 < len(lines) {
			if dm := defaultPart.FindStringSubmatch(strings.TrimSpace(lines[i+1])); dm != nil {
				d.def = dm[1]
				if s, err := strconv.Unquote(d.def); err == nil {
					d.def = s
				}
			}
		}
		defs = append(defs, d)
	}
	return defs
}

// invocation is a container's command line as a command with defs sees it.
type invocation struct {
	values map[string]string // every flag, set or default
	given  map[string]bool   // set by an argument or the environment
	secret map[string]bool   // set from a Secret or ConfigMap: value unknown here
}

// parseInvocation parses c's arguments with defs, then, as
// server.ApplyEnv does, applies c's environment variables named envPrefix +
// FLAG to the flags not given as arguments. An unknown flag, a positional
// argument, or an environment variable with the prefix that names no flag
// is an error.
func parseInvocation(defs []flagDef, c corev1.Container, envPrefix string) (invocation, error) {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, d := range defs {
		if d.isBool {
			fs.Bool(d.name, d.def == "true", "")
		} else {
			fs.String(d.name, d.def, "")
		}
	}
	if len(c.Command) > 0 {
		return invocation{}, fmt.Errorf("container %s: command %q replaces the image's entrypoint; give arguments only", c.Name, c.Command)
	}
	if err := fs.Parse(c.Args); err != nil {
		return invocation{}, fmt.Errorf("container %s: args %q: %w", c.Name, c.Args, err)
	}
	if fs.NArg() > 0 {
		return invocation{}, fmt.Errorf("container %s: positional arguments %q: the command takes flags only", c.Name, fs.Args())
	}
	inv := invocation{values: map[string]string{}, given: map[string]bool{}, secret: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { inv.given[f.Name] = true })
	if envPrefix != "" {
		byEnv := map[string]string{}
		for _, d := range defs {
			byEnv[server.EnvName(envPrefix, d.name)] = d.name
		}
		for _, e := range c.Env {
			if !strings.HasPrefix(e.Name, envPrefix) {
				continue
			}
			name, ok := byEnv[e.Name]
			if !ok {
				return invocation{}, fmt.Errorf("container %s: environment variable %s names no flag", c.Name, e.Name)
			}
			if inv.given[name] {
				continue // arguments win
			}
			inv.given[name] = true
			if e.ValueFrom != nil {
				inv.secret[name] = true
				continue
			}
			if err := fs.Set(name, e.Value); err != nil {
				return invocation{}, fmt.Errorf("container %s: %s=%q: %w", c.Name, e.Name, e.Value, err)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) { inv.values[f.Name] = f.Value.String() })
	return inv, nil
}

// config returns the kit's Config as the server would build it from inv,
// validated by the kit itself.
func (inv invocation) config() (server.Config, error) {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.BindFlags(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if inv.given[f.Name] && !inv.secret[f.Name] && err == nil {
			if serr := fs.Set(f.Name, inv.values[f.Name]); serr != nil {
				err = fmt.Errorf("-%s=%s: %w", f.Name, inv.values[f.Name], serr)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// checker collects every problem of a bundle.
type checker struct {
	b        *bundle
	server   []flagDef // example/server's flags
	client   []flagDef // example/client's flags
	problems []string
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// containerInvocation is a container and the command line it is given.
type containerInvocation struct {
	ct    corev1.Container
	where string // "Deployment D container C", for problems
	inv   invocation
}

// invocations returns the containers of d that run image, with their
// command lines parsed against defs (envPrefix as for parseInvocation); one
// that does not parse is a problem, and left out.
func (c *checker) invocations(d *appsv1.Deployment, image string, defs []flagDef, envPrefix string) []containerInvocation {
	var out []containerInvocation
	for _, ct := range d.Spec.Template.Spec.Containers {
		if imageName(ct.Image) != image {
			continue
		}
		inv, err := parseInvocation(defs, ct, envPrefix)
		if err != nil {
			c.addf("Deployment %s: %v", d.Name, err)
			continue
		}
		out = append(out, containerInvocation{ct: ct, where: fmt.Sprintf("Deployment %s container %s", d.Name, ct.Name), inv: inv})
	}
	return out
}

// check returns every problem of b, joined, or nil.
func check(b *bundle, serverFlags, clientFlags []flagDef) error {
	c := &checker{b: b, server: serverFlags, client: clientFlags}
	c.namespaces()
	c.names()
	for i := range b.deployments {
		c.deploymentBasics(&b.deployments[i])
	}
	servers := c.servers()
	for _, d := range servers {
		c.serverDeployment(d)
	}
	c.services(servers)
	c.clients()
	c.hpas()
	c.pdbs()
	if len(c.problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.problems, "\n"))
}

// namespaces: one Namespace; with a kustomization, it names that
// Namespace and lists every manifest file; objects carry no other namespace.
func (c *checker) namespaces() {
	b := c.b
	if len(b.namespaces) != 1 {
		c.addf("want exactly one Namespace, have %d", len(b.namespaces))
		return
	}
	ns := b.namespaces[0].Name
	if k := b.kustomization; k != nil {
		if k.Namespace != ns {
			c.addf("kustomization.yaml: namespace %q, want the Namespace the manifests create, %q", k.Namespace, ns)
		}
		listed := slices.Sorted(slices.Values(k.Resources))
		if !slices.Equal(listed, b.files) {
			c.addf("kustomization.yaml: resources %q, want every manifest file of the directory, %q", listed, b.files)
		}
		used := map[string]bool{}
		for _, d := range b.deployments {
			for _, ct := range d.Spec.Template.Spec.Containers {
				used[imageName(ct.Image)] = true
			}
		}
		for _, im := range k.Images {
			if !used[im.Name] {
				c.addf("kustomization.yaml: images entry %q matches no container image", im.Name)
			}
		}
	}
	objs := []metav1.ObjectMeta{}
	for _, d := range b.deployments {
		objs = append(objs, d.ObjectMeta)
	}
	for _, s := range b.services {
		objs = append(objs, s.ObjectMeta)
	}
	for _, h := range b.hpas {
		objs = append(objs, h.ObjectMeta)
	}
	for _, p := range b.pdbs {
		objs = append(objs, p.ObjectMeta)
	}
	for _, o := range objs {
		switch {
		case b.kustomization == nil && o.Namespace != ns:
			c.addf("%s: namespace %q, want %q", o.Name, o.Namespace, ns)
		case b.kustomization != nil && o.Namespace != "" && o.Namespace != ns:
			c.addf("%s: namespace %q, want none (kustomization.yaml sets %q)", o.Name, o.Namespace, ns)
		}
	}
}

// names: the API server would reject these, but only at apply time.
func (c *checker) names() {
	for _, s := range c.b.services {
		for _, e := range validation.IsDNS1035Label(s.Name) {
			c.addf("Service %q: %s", s.Name, e)
		}
		for _, p := range s.Spec.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				c.addf("Service %s port %q: %s", s.Name, p.Name, e)
			}
		}
	}
	for _, d := range c.b.deployments {
		for _, e := range validation.IsDNS1123Label(d.Name) {
			c.addf("Deployment %q: %s", d.Name, e)
		}
		for _, ct := range d.Spec.Template.Spec.Containers {
			for _, p := range ct.Ports {
				for _, e := range validation.IsValidPortName(p.Name) {
					c.addf("Deployment %s container %s port %q: %s", d.Name, ct.Name, p.Name, e)
				}
			}
		}
	}
}

// deploymentBasics: what every Deployment here must have.
func (c *checker) deploymentBasics(d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	switch {
	case err != nil:
		c.addf("Deployment %s: selector: %v", d.Name, err)
	case sel.Empty():
		c.addf("Deployment %s: empty selector", d.Name)
	case !sel.Matches(labels.Set(d.Spec.Template.Labels)):
		c.addf("Deployment %s: selector %v does not select its own pod labels %v", d.Name, sel, d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		c.addf("Deployment %s: automountServiceAccountToken must be false: the example needs no Kubernetes API rights", d.Name)
	}
	podNonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
	for _, ct := range pod.Containers {
		where := fmt.Sprintf("Deployment %s container %s", d.Name, ct.Name)
		for _, kind := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := ct.Resources.Requests[kind]; !ok {
				c.addf("%s: no %s request (resources.requests)", where, kind)
			}
			if _, ok := ct.Resources.Limits[kind]; !ok {
				c.addf("%s: no %s limit (resources.limits)", where, kind)
			}
		}
		sc := ct.SecurityContext
		nonRoot := podNonRoot || (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
		if !nonRoot {
			c.addf("%s: runAsNonRoot is not true (pod or container securityContext)", where)
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			c.addf("%s: securityContext.readOnlyRootFilesystem must be true", where)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			c.addf("%s: securityContext.allowPrivilegeEscalation must be false", where)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			c.addf("%s: securityContext.capabilities must drop ALL", where)
		}
	}
}

// servers returns the Deployments that run the example server.
func (c *checker) servers() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for i, d := range c.b.deployments {
		for _, ct := range d.Spec.Template.Spec.Containers {
			if imageName(ct.Image) == serverImage {
				out = append(out, &c.b.deployments[i])
				break
			}
		}
	}
	if len(out) == 0 {
		c.addf("no Deployment runs the %s image", serverImage)
	}
	return out
}

// serverDeployment checks a server Deployment against the flags its
// container is given.
func (c *checker) serverDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		c.addf("Deployment %s: replicas %v, want at least 2 (one pod cannot show balance)", d.Name, ptrValue(d.Spec.Replicas, 1))
	}
	pod := d.Spec.Template.Spec
	for _, ci := range c.invocations(d, serverImage, c.server, "ROTOR_") {
		ct, where, inv := ci.ct, ci.where, ci.inv
		cfg, err := inv.config()
		if err != nil {
			c.addf("%s: the server would refuse its configuration: %v", where, err)
			continue
		}

		if !hasFieldRef(ct, "POD_NAME", "metadata.name") {
			c.addf("%s: POD_NAME must come from the downward API (fieldRef metadata.name): every answer names the pod", where)
		}

		// Declared ports are exactly the ports the server listens on.
		want := map[int32]string{}
		grpcPort := c.listenPort(where, inv, "grpc-addr", want, true)
		c.listenPort(where, inv, "http-addr", want, true)
		c.listenPort(where, inv, "admin-addr", want, false)
		declared := map[int32]string{}
		for _, p := range ct.Ports {
			declared[p.ContainerPort] = p.Name
			if _, ok := want[p.ContainerPort]; !ok {
				c.addf("%s: declares port %d (%s), where the server does not listen (-grpc-addr, -http-addr, and -admin-addr unless loopback)", where, p.ContainerPort, p.Name)
			}
		}
		for port, flagName := range want {
			if _, ok := declared[port]; !ok {
				c.addf("%s: -%s listens on %d, which no container port declares", where, flagName, port)
			}
		}

		// Admin endpoints reachable from other pods need a token.
		if admin := inv.values["admin-addr"]; admin != "" && !isLoopback(admin) {
			if inv.values["admin-public"] != "true" {
				c.addf("%s: -admin-addr=%s is not loopback: the server needs -admin-public", where, admin)
			}
			if !inv.given["admin-token"] {
				c.addf("%s: -admin-addr=%s is reachable from other pods but no admin token is set (-admin-token or ROTOR_ADMIN_TOKEN from a Secret)", where, admin)
			}
		}
		for _, e := range ct.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
				c.addf("%s: %s comes from an optional Secret: without it the server would run with no token", where, e.Name)
			}
		}

		// Probes: native gRPC against the health service on the gRPC port.
		drain := cfg.ShutdownDelay + cfg.DrainTimeout
		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
		}{{"readinessProbe", ct.ReadinessProbe}, {"livenessProbe", ct.LivenessProbe}} {
			switch {
			case pr.probe == nil:
				c.addf("%s: no %s", where, pr.name)
			case pr.probe.GRPC == nil:
				c.addf("%s: %s is not a gRPC probe (grpc: port: %d)", where, pr.name, grpcPort)
			case declared[pr.probe.GRPC.Port] == "":
				c.addf("%s: %s targets port %d, which the container does not declare", where, pr.name, pr.probe.GRPC.Port)
			case pr.probe.GRPC.Port != grpcPort:
				c.addf("%s: %s targets port %d, want the gRPC port %d (-grpc-addr) where the health service is", where, pr.name, pr.probe.GRPC.Port, grpcPort)
			}
		}
		if lp := ct.LivenessProbe; lp != nil {
			period := time.Duration(orDefault(lp.PeriodSeconds, 10)) * time.Second
			failures := time.Duration(orDefault(lp.FailureThreshold, 3))
			if period*failures <= drain {
				c.addf("%s: livenessProbe fails after %v of NOT_SERVING, within a shutdown (-shutdown-delay %v + -drain-timeout %v): it could restart a draining pod",
					where, period*failures, cfg.ShutdownDelay, cfg.DrainTimeout)
			}
		}

		grace := time.Duration(ptrValue(pod.TerminationGracePeriodSeconds, 30)) * time.Second
		if grace < drain {
			c.addf("%s: terminationGracePeriodSeconds %v is shorter than -shutdown-delay %v + -drain-timeout %v = %v: the kubelet would kill the server mid-drain",
				where, grace, cfg.ShutdownDelay, cfg.DrainTimeout, drain)
		}

		// The peer watcher must watch a headless Service of these very pods.
		peer := inv.values["peer-dns"]
		if peer == "" {
			c.addf("%s: no -peer-dns: set it to the headless Service so pods rotate when the fleet grows", where)
		} else {
			name := peerServiceName(peer)
			s := c.b.service(name)
			switch {
			case s == nil:
				c.addf("%s: -peer-dns=%s names no Service of these manifests", where, peer)
			case s.Spec.ClusterIP != corev1.ClusterIPNone:
				c.addf("%s: -peer-dns=%s names a Service that is not headless (clusterIP: None): its DNS answer would be one virtual IP, not the pods", where, peer)
			case !selects(s.Spec.Selector, d):
				c.addf("%s: -peer-dns=%s names a Service that does not select this Deployment's pods", where, peer)
			}
		}
	}
}

// listenPort records in want the port the address flag listens on, unless
// it is empty (the listener is off) or loopback (not reachable from outside
// the pod, so not to be declared).
func (c *checker) listenPort(where string, inv invocation, flagName string, want map[int32]string, required bool) int32 {
	addr := inv.values[flagName]
	if addr == "" {
		if required {
			c.addf("%s: -%s is empty", where, flagName)
		}
		return 0
	}
	if isLoopback(addr) {
		return 0
	}
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || n == 0 {
		c.addf("%s: -%s=%s is not host:port with a fixed port", where, flagName, addr)
		return 0
	}
	want[int32(n)] = flagName
	return int32(n)
}

// services: selectors select server pods, target ports exist, and there is
// one ClusterIP and one headless Service.
func (c *checker) services(servers []*appsv1.Deployment) {
	var clusterIP, headless bool
	for _, s := range c.b.services {
		if len(s.Spec.Selector) == 0 {
			c.addf("Service %s: no selector", s.Name)
			continue
		}
		var selected []*appsv1.Deployment
		for i := range c.b.deployments {
			if selects(s.Spec.Selector, &c.b.deployments[i]) {
				selected = append(selected, &c.b.deployments[i])
			}
		}
		if len(selected) == 0 {
			c.addf("Service %s: selector %v selects no Deployment's pods", s.Name, s.Spec.Selector)
			continue
		}
		for _, d := range selected {
			for _, p := range s.Spec.Ports {
				if !targetsDeclaredPort(p, d) {
					tp := targetPort(p)
					c.addf("Service %s port %s: targetPort %s is not a port declared by Deployment %s", s.Name, p.Name, tp.String(), d.Name)
				}
			}
		}
		selectsServer := slices.ContainsFunc(selected, func(d *appsv1.Deployment) bool { return slices.Contains(servers, d) })
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
				c.addf("Service %s: headless but of type %s", s.Name, s.Spec.Type)
			}
			if s.Spec.PublishNotReadyAddresses {
				c.addf("Service %s: publishNotReadyAddresses must be false: clients would dial pods that are starting or draining", s.Name)
			}
			headless = headless || selectsServer
		} else if s.Spec.Type == "" || s.Spec.Type == corev1.ServiceTypeClusterIP {
			clusterIP = clusterIP || selectsServer
		}
	}
	if !clusterIP {
		c.addf("no ClusterIP Service selects the server's pods")
	}
	if !headless {
		c.addf("no headless Service (clusterIP: None) selects the server's pods")
	}
}

// clients: every client's -target names a Service of these manifests and
// one of its ports; both ways in are shown.
func (c *checker) clients() {
	var viaClusterIP, viaHeadless bool
	for _, d := range c.b.deployments {
		for _, ci := range c.invocations(&d, clientImage, c.client, "") {
			where, inv := ci.where, ci.inv
			target := inv.values["target"]
			dnsScheme := strings.HasPrefix(target, "dns:")
			host, port, err := splitTarget(target)
			if err != nil {
				c.addf("%s: -target=%s: %v", where, target, err)
				continue
			}
			name, ns, _ := strings.Cut(host, ".")
			if ns != "" && len(c.b.namespaces) == 1 && ns != c.b.namespaces[0].Name && !strings.HasPrefix(ns, c.b.namespaces[0].Name+".") {
				c.addf("%s: -target=%s names a Service in another namespace", where, target)
				continue
			}
			s := c.b.service(name)
			if s == nil {
				c.addf("%s: -target=%s names Service %q, which these manifests do not define", where, target, name)
				continue
			}
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
				c.addf("%s: -target=%s uses port %s, which Service %s does not expose", where, target, port, name)
				continue
			}
			if s.Spec.ClusterIP == corev1.ClusterIPNone {
				if !dnsScheme {
					c.addf("%s: -target=%s names a headless Service without the dns:/// scheme", where, target)
				}
				viaHeadless = viaHeadless || dnsScheme
			} else {
				viaClusterIP = true
			}
		}
	}
	if !viaClusterIP {
		c.addf("no client targets a ClusterIP Service")
	}
	if !viaHeadless {
		c.addf("no client targets a headless Service with a dns:/// target")
	}
}

func (c *checker) hpas() {
	for _, h := range c.b.hpas {
		ref := h.Spec.ScaleTargetRef
		d := c.b.deployment(ref.Name)
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			c.addf("HorizontalPodAutoscaler %s: scaleTargetRef %s %s %q is not a Deployment of these manifests", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		lo, hi := ptrValue(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas
		if lo < 2 || lo > hi {
			c.addf("HorizontalPodAutoscaler %s: minReplicas %d, maxReplicas %d: want 2 ≤ min ≤ max", h.Name, lo, hi)
		}
		if r := ptrValue(d.Spec.Replicas, 1); r < lo || r > hi {
			c.addf("HorizontalPodAutoscaler %s: Deployment %s asks for %d replicas, outside [%d, %d]", h.Name, d.Name, r, lo, hi)
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
				cpu = true
			}
		}
		if !cpu {
			c.addf("HorizontalPodAutoscaler %s: no CPU resource metric", h.Name)
		}
	}
	if len(c.b.hpas) == 0 {
		c.addf("no HorizontalPodAutoscaler")
	}
}

func (c *checker) pdbs() {
	for _, p := range c.b.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			c.addf("PodDisruptionBudget %s: selector %v: %v", p.Name, p.Spec.Selector, err)
			continue
		}
		if !slices.ContainsFunc(c.b.deployments, func(d appsv1.Deployment) bool { return sel.Matches(labels.Set(d.Spec.Template.Labels)) }) {
			c.addf("PodDisruptionBudget %s: selector %v selects no Deployment's pods", p.Name, sel)
		}
	}
}

// imageName is the repository of an image reference without registry, tag
// or digest: "reg.example/team/rotor-example-server:v1" → "rotor-example-server".
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, ":")
	return ref
}

func selects(selector map[string]string, d *appsv1.Deployment) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(d.Spec.Template.Labels))
}

func targetPort(p corev1.ServicePort) intstr.IntOrString {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
		return intstr.FromInt32(p.Port)
	}
	return p.TargetPort
}

func targetsDeclaredPort(p corev1.ServicePort, d *appsv1.Deployment) bool {
	tp := targetPort(p)
	for _, ct := range d.Spec.Template.Spec.Containers {
		for _, cp := range ct.Ports {
			if (tp.Type == intstr.String && cp.Name == tp.StrVal) || (tp.Type == intstr.Int && cp.ContainerPort == tp.IntVal) {
				return protocol(cp.Protocol) == protocol(p.Protocol)
			}
		}
	}
	return false
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func hasFieldRef(c corev1.Container, name, path string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == path {
			return true
		}
	}
	return false
}

// peerServiceName is the Service a -peer-dns value names: "name",
// "name.namespace.svc…" or "dns://SERVER/name".
func peerServiceName(v string) string {
	if rest, ok := strings.CutPrefix(v, "dns://"); ok {
		_, v, _ = strings.Cut(rest, "/")
	}
	name, _, _ := strings.Cut(v, ".")
	return name
}

// splitTarget returns the host and port of a gRPC target: "host:port",
// "dns:///host:port" or "dns://SERVER/host:port".
func splitTarget(target string) (host, port string, err error) {
	if rest, ok := strings.CutPrefix(target, "dns://"); ok {
		_, target, _ = strings.Cut(rest, "/")
	} else if strings.Contains(target, "://") || strings.HasPrefix(target, "dns:") {
		return "", "", errors.New("want host:port or dns:///host:port")
	}
	host, port, err = net.SplitHostPort(target)
	if err != nil {
		return "", "", err
	}
	if host == "" || port == "" {
		return "", "", errors.New("want a host and a port")
	}
	return host, port, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func ptrValue[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func orDefault(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}
