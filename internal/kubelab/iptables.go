package kubelab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/rotorkit/rotor/internal/netns"
)

// iptablesTools names one iptables implementation's binaries.
type iptablesTools struct {
	variant string // "nft", "legacy" or "default"
	bin     string
	restore string
	save    string
}

// iptablesCandidates lists the implementations in order of preference.
//
// iptables-nft comes first: it is what Debian's plain "iptables" points to,
// what kube-proxy ends up using on a node whose rules live in nf_tables, and
// it needs only nf_tables in the kernel, whereas iptables-legacy needs the
// x_tables/ip_tables modules that recent kernels may be built without.
// iptables-legacy is the fallback for old kernels without nf_tables NAT. The
// choice is made by applying a probe rule set in the lab's own fresh client
// namespace, so whatever the host itself uses does not matter.
var iptablesCandidates = []iptablesTools{
	{variant: "nft", bin: "iptables-nft", restore: "iptables-nft-restore", save: "iptables-nft-save"},
	{variant: "legacy", bin: "iptables-legacy", restore: "iptables-legacy-restore", save: "iptables-legacy-save"},
	{variant: "default", bin: "iptables", restore: "iptables-restore", save: "iptables-save"},
}

// findIPTables returns the candidates whose three binaries are installed.
func findIPTables() []iptablesTools {
	var found []iptablesTools
	for _, c := range iptablesCandidates {
		bin, err1 := netns.FindTool(c.bin)
		restore, err2 := netns.FindTool(c.restore)
		save, err3 := netns.FindTool(c.save)
		if err1 == nil && err2 == nil && err3 == nil {
			found = append(found, iptablesTools{variant: c.variant, bin: bin, restore: restore, save: save})
		}
	}
	return found
}

// iptablesProbe uses every match and target the lab's rules need, in a chain
// nothing jumps to, so applying it changes no traffic.
const iptablesProbe = `*filter
:KUBE-LAB-PROBE - [0:0]
-A KUBE-LAB-PROBE -m conntrack --ctstate NEW -m comment --comment "kubelab probe" -m tcp -p tcp -d 198.19.0.1/32 --dport 9 -j REJECT
COMMIT
*nat
:KUBE-LAB-PROBE - [0:0]
-A KUBE-LAB-PROBE -m comment --comment "kubelab probe" -m tcp -p tcp -d 198.19.0.1/32 --dport 9 -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 198.18.0.9:9
COMMIT
`

const iptablesProbeCleanup = `*filter
:KUBE-LAB-PROBE - [0:0]
-X KUBE-LAB-PROBE
COMMIT
*nat
:KUBE-LAB-PROBE - [0:0]
-X KUBE-LAB-PROBE
COMMIT
`

// chooseIPTables returns the first implementation that can apply and remove
// the probe rule set inside the namespace ns.
func chooseIPTables(ctx context.Context, ipPath, ns string) (iptablesTools, error) {
	candidates := findIPTables()
	if len(candidates) == 0 {
		return iptablesTools{}, errors.New("kubelab: no iptables, iptables-restore and iptables-save found (apt-get install iptables)")
	}
	var errs []error
	for _, c := range candidates {
		restore := []string{"netns", "exec", ns, c.restore, "--noflush"}
		if _, err := netns.Run(ctx, []byte(iptablesProbe), ipPath, restore...); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.variant, err))
			continue
		}
		if _, err := netns.Run(ctx, []byte(iptablesProbeCleanup), ipPath, restore...); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.variant, err))
			continue
		}
		return c, nil
	}
	return iptablesTools{}, fmt.Errorf("kubelab: no iptables variant works in a fresh namespace: %w", errors.Join(errs...))
}

// kube-proxy's chain name prefixes and the comment on its jump from OUTPUT.
const (
	servicesChain  = "KUBE-SERVICES"
	svcChainPrefix = "KUBE-SVC-"
	sepChainPrefix = "KUBE-SEP-"
	portalsComment = "kubernetes service portals"
	protocolTCP    = "tcp"
)

// portProtoHash is kube-proxy's hash for chain names: iptables limits chain
// names to 28 characters, so kube-proxy keeps 16 base32 characters of a
// SHA-256 of the service port name and the lowercase protocol.
func portProtoHash(servicePortName, protocol string) string {
	hash := sha256.Sum256([]byte(servicePortName + protocol))
	return base32.StdEncoding.EncodeToString(hash[:])[:16]
}

// svcChainName is kube-proxy's KUBE-SVC chain of one service port.
func svcChainName(servicePortName, protocol string) string {
	return svcChainPrefix + portProtoHash(servicePortName, protocol)
}

// sepChainName is kube-proxy's KUBE-SEP chain of one endpoint ("ip:port") of
// a service port.
func sepChainName(servicePortName, protocol, endpoint string) string {
	hash := sha256.Sum256([]byte(servicePortName + protocol + endpoint))
	return sepChainPrefix + base32.StdEncoding.EncodeToString(hash[:])[:16]
}

// probability formats a statistic match probability the way kube-proxy does:
// ten digits, so 1/3 is not rounded to a visibly uneven split.
func probability(n int) string {
	return fmt.Sprintf("%0.10f", 1.0/float64(n))
}

// serviceRules is the state the lab's kube-proxy writes: one Service with a
// ClusterIP, its ports and the ready endpoints' addresses.
type serviceRules struct {
	namespace string
	service   string
	clusterIP netip.Addr
	ports     []ServicePort
	endpoints []netip.Addr
}

// render returns an iptables-restore input that makes the nat and filter
// tables hold exactly these rules, and the nat chains it leaves in place.
// Chains in previous (from an earlier render) that are no longer needed are
// flushed and deleted in the same transaction, as kube-proxy does, so a
// reader never sees a half-updated Service.
func (s serviceRules) render(previous []string) (input string, chains []string) {
	var filterRules, natChains, natRules bytes.Buffer
	line := func(b *bytes.Buffer, words ...string) {
		b.WriteString(strings.Join(words, " "))
		b.WriteByte('\n')
	}
	chainLine := func(chain string) { line(&natChains, ":"+chain, "-", "[0:0]") }
	chainLine(servicesChain)
	active := map[string]bool{servicesChain: true}

	// kube-proxy lists endpoints sorted by their "ip:port" string.
	endpoints := slices.Clone(s.endpoints)
	slices.SortFunc(endpoints, func(a, b netip.Addr) int { return strings.Compare(a.String(), b.String()) })

	for _, p := range s.ports {
		portName := fmt.Sprintf("%s/%s:%s", s.namespace, s.service, p.Name)
		port := strconv.Itoa(p.Port)
		dest := s.clusterIP.String() + "/32"
		if len(endpoints) == 0 {
			// kube-proxy rejects connections to a Service without endpoints
			// instead of letting them time out.
			line(&filterRules, "-A", servicesChain, "-m", "comment", "--comment", quote(portName+" has no endpoints"),
				"-m", protocolTCP, "-p", protocolTCP, "-d", dest, "--dport", port, "-j", "REJECT")
			continue
		}
		svcChain := svcChainName(portName, protocolTCP)
		chainLine(svcChain)
		active[svcChain] = true
		line(&natRules, "-A", servicesChain, "-m", "comment", "--comment", quote(portName+" cluster IP"),
			"-m", protocolTCP, "-p", protocolTCP, "-d", dest, "--dport", port, "-j", svcChain)
		n := len(endpoints)
		for i, ep := range endpoints {
			endpoint := netip.AddrPortFrom(ep, uint16(p.Port)).String()
			sepChain := sepChainName(portName, protocolTCP, endpoint)
			chainLine(sepChain)
			active[sepChain] = true
			rule := []string{"-A", svcChain, "-m", "comment", "--comment", quote(portName + " -> " + endpoint)}
			if i < n-1 {
				// Rule i sees only the traffic rules 0..i-1 did not take, so
				// 1/(n-i) of it gives every endpoint 1/n overall.
				rule = append(rule, "-m", "statistic", "--mode", "random", "--probability", probability(n-i))
			}
			line(&natRules, append(rule, "-j", sepChain)...)
			line(&natRules, "-A", sepChain, "-m", "comment", "--comment", portName,
				"-m", protocolTCP, "-p", protocolTCP, "-j", "DNAT", "--to-destination", endpoint)
		}
	}
	for _, chain := range previous {
		if !active[chain] {
			// Declaring the chain flushes it, so it can be deleted even
			// though it still has rules and a jump from the old KUBE-SVC.
			chainLine(chain)
			line(&natRules, "-X", chain)
		}
	}

	var b bytes.Buffer
	b.WriteString("*filter\n:" + servicesChain + " - [0:0]\n")
	b.Write(filterRules.Bytes())
	b.WriteString("COMMIT\n*nat\n")
	b.Write(natChains.Bytes())
	b.Write(natRules.Bytes())
	b.WriteString("COMMIT\n")
	for chain := range active {
		chains = append(chains, chain)
	}
	slices.Sort(chains)
	return b.String(), chains
}

// portalsInput hooks KUBE-SERVICES into OUTPUT once, as kube-proxy's
// EnsureRule does; later renders never touch the built-in chains.
const portalsInput = `*filter
:` + servicesChain + ` - [0:0]
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "` + portalsComment + `" -j ` + servicesChain + `
COMMIT
*nat
:` + servicesChain + ` - [0:0]
-A OUTPUT -m comment --comment "` + portalsComment + `" -j ` + servicesChain + `
COMMIT
`

// quote wraps an iptables-restore word that contains spaces.
func quote(s string) string { return `"` + s + `"` }

// restoreIn applies an iptables-restore input inside ns without flushing
// the tables, in one transaction.
func (t iptablesTools) restoreIn(ctx context.Context, ipPath, ns, input string) error {
	_, err := netns.Run(ctx, []byte(input), ipPath, "netns", "exec", ns, t.restore, "--noflush")
	return err
}

// saveIn returns iptables-save output of the given tables inside ns.
func (t iptablesTools) saveIn(ctx context.Context, ipPath, ns string, tables ...string) (string, error) {
	var out strings.Builder
	for _, table := range tables {
		b, err := netns.Run(ctx, nil, ipPath, "netns", "exec", ns, t.save, "-t", table)
		if err != nil {
			return "", err
		}
		out.Write(b)
	}
	return out.String(), nil
}
