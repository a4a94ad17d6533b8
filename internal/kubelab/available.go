package kubelab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/rotorkit/rotor/internal/netns"
)

// Available reports whether this host can run a lab. It returns nil, or an
// error naming everything that is missing and how to get it, meant to be the
// message of a skipped test.
func Available() error {
	var missing []string
	if euid := os.Geteuid(); euid != 0 {
		missing = append(missing, fmt.Sprintf("root (running as uid %d; network namespaces and iptables need it)", euid))
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		missing = append(missing, "a kernel with network namespaces")
	}
	tools := []struct{ name, pkg string }{
		{"ip", "iproute2"},
		{"conntrack", "conntrack"},
		{"dnsmasq", "dnsmasq-base"},
	}
	for _, t := range tools {
		if _, err := netns.FindTool(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t.name, t.pkg))
		}
	}
	if len(findIPTables()) == 0 {
		missing = append(missing, "iptables with iptables-restore and iptables-save (apt-get install iptables)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubelab: this host cannot run the lab; missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

// AvailableL7 reports whether this host can run a lab with Config.L7: what
// Available needs, plus nginx built with HTTP/2 and gRPC proxying.
func AvailableL7() error {
	if err := Available(); err != nil {
		return err
	}
	nginx, err := netns.FindTool("nginx")
	if err != nil {
		return errors.New("kubelab: this host cannot run the lab's L7 balancer; missing: nginx (apt-get install nginx-light or nginx)")
	}
	// nginx -V prints its build configuration on stderr.
	out, err := exec.Command(nginx, "-V").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubelab: %s -V: %w: %s", nginx, err, out)
	}
	if !strings.Contains(string(out), "--with-http_v2_module") || strings.Contains(string(out), "--without-http_grpc_module") {
		return fmt.Errorf("kubelab: %s lacks HTTP/2 or gRPC proxying (needs --with-http_v2_module and the grpc module)", nginx)
	}
	return nil
}
