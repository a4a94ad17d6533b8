package nodeagent

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCredentials(t *testing.T) {
	uid := func(v int64) *int64 { return &v }
	yes, no := true, false
	imageUser := Image{UID: uid(65532), GID: uid(65532)}
	for _, tc := range []struct {
		name string
		psc  *corev1.PodSecurityContext
		csc  *corev1.SecurityContext
		img  Image
		want string // setpriv arguments before "--"; "error: …" for a refusal
	}{
		{"root image, nothing asked", nil, nil, Image{}, ""},
		{"the image's USER", nil, nil, imageUser, "--reuid=65532 --regid=65532 --clear-groups"},
		{"the example's restricted pod",
			&corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: uid(65532), RunAsGroup: uid(65532)},
			&corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			Image{}, "--reuid=65532 --regid=65532 --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all"},
		{"the container's user wins", &corev1.PodSecurityContext{RunAsUser: uid(1000)}, &corev1.SecurityContext{RunAsUser: uid(2000)}, Image{},
			"--reuid=2000 --regid=0 --clear-groups"},
		{"groups", &corev1.PodSecurityContext{RunAsUser: uid(1000), RunAsGroup: uid(1000), SupplementalGroups: []int64{5, 6}, FSGroup: uid(7)}, nil, Image{},
			"--reuid=1000 --regid=1000 --groups=5,6,7"},
		{"some capabilities", nil, &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW", "CAP_SYS_ADMIN"}}}, Image{},
			"--bounding-set=-net_raw,-sys_admin"},
		{"runAsNonRoot with a root image", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, Image{}, "error: container has runAsNonRoot and image will run as root"},
		{"runAsNonRoot, runAsUser 0", &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: uid(0)}, nil, imageUser, "error: container has runAsNonRoot"},
		{"runAsNonRoot with the image's USER", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, imageUser, "--reuid=65532 --regid=65532 --clear-groups"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{SecurityContext: tc.psc}}
		c := &corev1.Container{Name: "c", SecurityContext: tc.csc}
		cr, err := resolveCredentials(pod, c, tc.img)
		if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v, want one saying %q", tc.name, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.want == "" {
			if !cr.keepsRootPower {
				t.Errorf("%s: %+v; want the process run as the agent runs", tc.name, cr)
			}
			continue
		}
		args := cr.setprivArgs("setpriv", []string{"/bin/x", "-a"})
		i := slices.Index(args, "--")
		if got := strings.Join(args[1:i], " "); got != tc.want || !slices.Equal(args[i+1:], []string{"/bin/x", "-a"}) {
			t.Errorf("%s: setpriv %v, want %s -- /bin/x -a", tc.name, args, tc.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	img := Image{Binary: "/images/server", Entrypoint: "/server"}
	env := []string{"PORT=50051", "NAME=x"}
	for _, tc := range []struct {
		command, args []string
		want          string // argv, or "error: …"
	}{
		{nil, nil, "/images/server"},
		{nil, []string{"-grpc-addr=:$(PORT)", "$$(NAME)", "$(NOPE)"}, "/images/server -grpc-addr=:50051 $(NAME) $(NOPE)"},
		{[]string{"/server", "-v"}, []string{"-x"}, "/images/server -v -x"},
		{[]string{"/bin/sh", "-c", "sleep 1"}, nil, `error: "/bin/sh": executable file not found`},
	} {
		argv, err := commandLine(&corev1.Container{Image: "rotor-example-server:dev", Command: tc.command, Args: tc.args}, img, env)
		if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("command %q: error %v, want one saying %q", tc.command, err, want)
			}
			continue
		}
		if got := strings.Join(argv, " "); err != nil || got != tc.want {
			t.Errorf("command %q args %q: %q, %v; want %q", tc.command, tc.args, got, err, tc.want)
		}
	}
}

func TestNetnsName(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hello-server-7c78c8c68b-7vxv2.with.dots-and-a-very-long-tail", UID: "8abfed47-b344-4f8e"}}
	got := netnsName("rotorkube-1-abcdef-pod-node-1", pod)
	if got != "rotorkube-1-abcdef-pod-node-1-hello-server-7c78c8c68b-7vxv2-with-dots-8abfe" {
		t.Errorf("netnsName = %q", got)
	}
}

func TestUnsupported(t *testing.T) {
	token := corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}
	empty := corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want string // "" for none
	}{
		{"plain", corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}, ""},
		{"the token volume admission adds", corev1.PodSpec{Volumes: []corev1.Volume{token},
			Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: token.Name}}}}}, ""},
		{"emptyDir", corev1.PodSpec{Volumes: []corev1.Volume{empty},
			Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "scratch"}}}}}, `mounts volume "scratch"`},
		{"init container", corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i"}}, Containers: []corev1.Container{{Name: "c"}}}, "init containers"},
		{"hostPort", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}}}}, "hostPort 80"},
	} {
		err := unsupported(&corev1.Pod{Spec: tc.spec})
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
