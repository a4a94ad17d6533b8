package kubelab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	cmd := func(Pod) Command { return Command{Path: "/bin/true"} }
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"defaults", Config{ServerCommand: cmd}, ""},
		{"no command", Config{}, "ServerCommand"},
		{"negative replicas", Config{ServerCommand: cmd, Replicas: -1}, "Replicas"},
		{"too many replicas", Config{ServerCommand: cmd, Replicas: maxPodSlots + 1}, "Replicas"},
		{"duplicate port", Config{ServerCommand: cmd, Ports: []ServicePort{{"a", 1}, {"b", 1}}}, "Ports[1].Port"},
		{"duplicate name", Config{ServerCommand: cmd, Ports: []ServicePort{{"a", 1}, {"a", 2}}}, "Ports[1].Name"},
		{"bad port", Config{ServerCommand: cmd, Ports: []ServicePort{{"a", 70000}}}, "Ports[0].Port"},
		{"bad name", Config{ServerCommand: cmd, Ports: []ServicePort{{"gRPC", 1}}}, "Ports[0].Name"},
		{"bad service", Config{ServerCommand: cmd, Service: "Hello"}, "Service"},
		{"bad namespace", Config{ServerCommand: cmd, Namespace: "a.b"}, "Namespace"},
		{"L7 port not a service port", Config{ServerCommand: cmd, L7Port: 8080}, "L7Port"},
		{"negative workers", Config{ServerCommand: cmd, L7Workers: -1}, "L7Workers"},
		{"negative grace", Config{ServerCommand: cmd, TerminationGracePeriod: -time.Second}, "TerminationGracePeriod"},
		{"negative ready timeout", Config{ServerCommand: cmd, ReadyTimeout: -time.Second}, "ReadyTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Ports) != 1 || got.Ports[0] != (ServicePort{"grpc", 50051}) || got.L7Port != 50051 ||
				got.Service != "hello" || got.Namespace != "lab" || got.L7Workers != 1 ||
				got.TerminationGracePeriod != 30*time.Second || got.ReadyTimeout != 10*time.Second || got.TempDir == "" {
				t.Errorf("defaults = %+v", got)
			}
		})
	}
}

func TestRenderHosts(t *testing.T) {
	got := renderHosts("hello.lab.svc.cluster.local", "hello-headless.lab.svc.cluster.local",
		[]netip.Addr{podAddr(0), podAddr(1)})
	for _, want := range []string{
		"198.19.0.10 hello.lab.svc.cluster.local hello\n",
		"198.18.0.10 hello-headless.lab.svc.cluster.local hello-headless\n",
		"198.18.0.11 hello-headless.lab.svc.cluster.local hello-headless\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, got)
		}
	}
}

func TestRenderNginx(t *testing.T) {
	listen := netip.AddrPortFrom(l7Addr, 50051)
	got := renderNginx("/tmp/x", listen, 50051, []netip.Addr{podAddr(0), podAddr(2)}, 1)
	for _, want := range []string{
		"listen 198.18.0.3:50051 http2;",
		"server 198.18.0.10:50051;",
		"server 198.18.0.12:50051;",
		"grpc_pass grpc://pods;",
		"keepalive 64;",
		"pid /tmp/x/nginx.pid;",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nginx.conf lacks %q:\n%s", want, got)
		}
	}
	if empty := renderNginx("/tmp/x", listen, 50051, nil, 1); !strings.Contains(empty, " down;") {
		t.Errorf("an empty upstream needs a down server:\n%s", empty)
	}
}
