package nodeagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/rotorkit/rotor/internal/cluster/podnet"
)

// Kubelet's defaults that the agent keeps (k8s.io/kubernetes v1.37.2,
// pkg/kubelet/kubelet.go and kuberuntime): container restarts back off from
// 10 s, doubling, to 5 minutes; a container always gets at least 2 s
// between SIGTERM and SIGKILL; a pod whose start failed for a reason that
// may pass (a missing Secret) is retried every 10 s.
const (
	DefaultRestartBackoff    = 10 * time.Second
	DefaultMaxRestartBackoff = 5 * time.Minute
	minimumGracePeriod       = 2 * time.Second
	podRetryPeriod           = 10 * time.Second
)

// Node heartbeat, as a kubelet does it by default: a Lease of 40 s renewed
// every 10 s, and the Node's status posted at least every minute (kubelet:
// computed every 10 s, posted when it changes or every 5 minutes).
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
	nodeStatusInterval = time.Minute
)

// Image is what an image reference runs: a program built from this
// repository, standing in for the image's one binary.
type Image struct {
	// Binary is the program's path on the host. The agent copies it into
	// Config.ImageDir (its "pull") so that any user can run it. Required.
	Binary string `json:"binary"`
	// Entrypoint is the image's ENTRYPOINT, e.g. "/server": a container
	// whose command names it runs Binary; any other command fails as a
	// runtime would fail to find it. Empty means the container must not set
	// a command.
	Entrypoint string `json:"entrypoint,omitempty"`
	// UID and GID are the image's USER, used when the pod sets no
	// runAsUser or runAsGroup. Nil means root, as in an image without USER.
	UID *int64 `json:"uid,omitempty"`
	GID *int64 `json:"gid,omitempty"`
}

// Config is a node agent's configuration, read by the node-agent command
// from a JSON file. Durations are nanoseconds in JSON. The zero value of an
// optional field means its documented default.
type Config struct {
	// NodeName is the Node the agent runs, as in the API. Required.
	NodeName string `json:"nodeName"`
	// Kubeconfig is the path of a kubeconfig with the node's credentials
	// (user system:node:NodeName in group system:nodes), which the Node
	// authorizer and NodeRestriction confine as they confine a kubelet.
	// Required.
	Kubeconfig string `json:"kubeconfig"`
	// Network is the node side of the pod network: every pod is wired to
	// Network.NodeNetns, routes through Network.Gateway (also the address
	// reported as the pods' hostIP) and, with dnsPolicy ClusterFirst, gets
	// a resolv.conf naming Network.DNS. Required but for DNS.
	Network podnet.Network `json:"network"`
	// PodNetnsPrefix starts the name of every pod's network namespace:
	// PodNetnsPrefix + "-" + the pod's name (cut to 40 bytes) + "-" + 5
	// characters of its UID. Required; the cluster harness passes
	// Cluster.Prefix()+"-pod-"+node so that its Close removes them.
	PodNetnsPrefix string `json:"podNetnsPrefix"`
	// LogDir receives every container's output, laid out as a kubelet lays
	// out /var/log/pods: LogDir/NAMESPACE_NAME_UID/CONTAINER/RESTARTS.log,
	// raw (no CRI timestamp and stream prefix). Logs stay after the pod is
	// gone. Required.
	LogDir string `json:"logDir"`
	// ImageDir is where the agent puts the images' binaries, readable and
	// executable by every user (the example's containers run as 65532).
	// Every directory above it must be searchable by those users.
	// Required.
	ImageDir string `json:"imageDir"`
	// Images maps an image name, without tag or digest
	// ("rotor-example-server"), to what it runs. A pod whose image is not
	// here stays Pending with its container waiting in ErrImagePull.
	Images map[string]Image `json:"images"`
	// RestartBackoff is the first back-off of a crashing container (the
	// first restart is immediate, the second waits this long after the exit,
	// then it doubles). Zero means DefaultRestartBackoff (10 s).
	RestartBackoff time.Duration `json:"restartBackoff,omitempty"`
	// MaxRestartBackoff caps the back-off. Zero means
	// DefaultMaxRestartBackoff (5 min); less than RestartBackoff lowers
	// RestartBackoff to it.
	MaxRestartBackoff time.Duration `json:"maxRestartBackoff,omitempty"`
}

// ReadConfig reads a Config from a JSON file and validates it.
func ReadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("nodeagent: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("nodeagent: config %s: %w", path, err)
	}
	return cfg.withDefaults()
}

// WriteFile writes cfg as JSON for the node-agent command's -config flag.
func (c Config) WriteFile(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	return nil
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	req := func(field, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("nodeagent: Config.%s is empty; it is required", field))
		}
	}
	req("NodeName", c.NodeName)
	req("Kubeconfig", c.Kubeconfig)
	req("Network.NodeNetns", c.Network.NodeNetns)
	req("PodNetnsPrefix", c.PodNetnsPrefix)
	req("LogDir", c.LogDir)
	req("ImageDir", c.ImageDir)
	if !c.Network.Gateway.Is4() {
		errs = append(errs, fmt.Errorf("nodeagent: Config.Network.Gateway is %v; it must be an IPv4 address", c.Network.Gateway))
	}
	for name, img := range c.Images {
		if name == "" || imageName(name) != name {
			errs = append(errs, fmt.Errorf("nodeagent: Config.Images has the name %q; want an image name without tag or digest", name))
		}
		if !filepath.IsAbs(img.Binary) {
			errs = append(errs, fmt.Errorf("nodeagent: Config.Images[%q].Binary is %q; it must be an absolute path", name, img.Binary))
		}
	}
	switch {
	case c.RestartBackoff < 0:
		errs = append(errs, fmt.Errorf("nodeagent: Config.RestartBackoff is %v; it must be 0 (meaning %v) or more", c.RestartBackoff, DefaultRestartBackoff))
	case c.RestartBackoff == 0:
		c.RestartBackoff = DefaultRestartBackoff
	}
	switch {
	case c.MaxRestartBackoff < 0:
		errs = append(errs, fmt.Errorf("nodeagent: Config.MaxRestartBackoff is %v; it must be 0 (meaning %v) or more", c.MaxRestartBackoff, DefaultMaxRestartBackoff))
	case c.MaxRestartBackoff == 0:
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	c.RestartBackoff = min(c.RestartBackoff, c.MaxRestartBackoff)
	return c, errors.Join(errs...)
}

// hostIP is the address reported as the pods' status.hostIP.
func (c Config) hostIP() netip.Addr { return c.Network.Gateway }
