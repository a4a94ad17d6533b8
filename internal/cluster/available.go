package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rotorkit/rotor/internal/netns"
)

// Available reports whether this host can run a cluster with cfg: root,
// the tools kube-proxy and the harness run, and the components built by
// tools/kube-build.sh at the pinned versions in cfg.BinDir (the default
// when empty). It returns nil, or an error naming everything missing and
// how to get it, meant to be the message of a skipped test.
func Available(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	var missing []string
	if euid := os.Geteuid(); euid != 0 {
		missing = append(missing, fmt.Sprintf("root (running as uid %d; network namespaces need it)", euid))
	}
	tools := []struct{ name, pkg string }{{"ip", "iproute2"}, {"conntrack", "conntrack"}}
	if cfg.ProxyMode == ProxyNFTables {
		tools = append(tools, struct{ name, pkg string }{"nft", "nftables"})
	} else {
		tools = append(tools, struct{ name, pkg string }{"iptables-restore", "iptables"}, struct{ name, pkg string }{"iptables-save", "iptables"})
	}
	if cfg.NodeAgent {
		// Node agents run containers as other users through setpriv.
		tools = append(tools, struct{ name, pkg string }{"setpriv", "util-linux"})
	}
	for _, t := range tools {
		if _, err := netns.FindTool(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s, or run tools/kube-build.sh as root)", t.name, t.pkg))
		}
	}
	// tools/kube-build.sh writes bin/.NAME.stamp: "<what> <version> …".
	stamps := []struct{ bin, what, version string }{
		{"kube-apiserver", "kubernetes", KubernetesVersion},
		{"kube-controller-manager", "kubernetes", KubernetesVersion},
		{"kube-scheduler", "kubernetes", KubernetesVersion},
		{"kube-proxy", "kubernetes", KubernetesVersion},
		{"etcd", "etcd", EtcdVersion},
		{"coredns", "coredns", CoreDNSVersion},
	}
	var stale []string
	for _, s := range stamps {
		info, err := os.Stat(filepath.Join(cfg.BinDir, s.bin))
		stamp, _ := os.ReadFile(filepath.Join(cfg.BinDir, "."+s.bin+".stamp"))
		if err != nil || info.Mode()&0o111 == 0 || !strings.HasPrefix(string(stamp), s.what+" "+s.version+" ") {
			stale = append(stale, s.bin+" "+s.version)
		}
	}
	if len(stale) > 0 {
		missing = append(missing, fmt.Sprintf("%s in %s (run tools/kube-build.sh; set ROTOR_KUBE_DIR if it built elsewhere)",
			strings.Join(stale, ", "), cfg.BinDir))
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster: this host cannot run the cluster lab; missing: %s", strings.Join(missing, "; "))
	}
	return nil
}
