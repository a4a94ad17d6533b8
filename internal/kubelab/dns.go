package kubelab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// dnsPort is where dnsmasq answers, on the bridge address.
const dnsPort = 53

// dnsServer is a dnsmasq serving the Services' names from a hosts file.
type dnsServer struct {
	proc      *proc.Process
	hostsPath string
}

// headlessName is the fully qualified name of the headless Service, whose A
// records are the ready pods' addresses.
func (l *Lab) headlessName() string {
	return fmt.Sprintf("%s-headless.%s.svc.cluster.local", l.cfg.Service, l.cfg.Namespace)
}

// serviceName is the fully qualified name of the ClusterIP Service.
func (l *Lab) serviceName() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", l.cfg.Service, l.cfg.Namespace)
}

// renderHosts returns the hosts file dnsmasq serves: the ClusterIP Service
// and one line per ready pod for the headless Service, each under its full
// and its short name, as cluster DNS answers them for a client in the
// Service's namespace.
func renderHosts(serviceFQDN, headlessFQDN string, ready []netip.Addr) string {
	short := func(fqdn string) string { name, _, _ := strings.Cut(fqdn, "."); return name }
	var b strings.Builder
	b.WriteString("# Written by kubelab; dnsmasq re-reads it on SIGHUP.\n")
	fmt.Fprintf(&b, "%s %s %s\n", clusterIP, serviceFQDN, short(serviceFQDN))
	for _, ip := range ready {
		fmt.Fprintf(&b, "%s %s %s\n", ip, headlessFQDN, short(headlessFQDN))
	}
	return b.String()
}

// startDNS writes the hosts file and starts dnsmasq in the node namespace,
// then waits until it answers from the client namespace.
func (l *Lab) startDNS(ctx context.Context) error {
	dnsmasq, err := netns.FindTool("dnsmasq")
	if err != nil {
		return err
	}
	hosts := filepath.Join(l.dir, "hosts")
	if err := writeFileAtomic(hosts, renderHosts(l.serviceName(), l.headlessName(), nil)); err != nil {
		return err
	}
	args := []string{
		// Stay in the foreground so the lab owns the PID and reaps it, and
		// log to stderr, which is the lab's log file.
		"--keep-in-foreground", "--log-facility=-",
		// Nothing from the host: not /etc/dnsmasq.conf, not /etc/hosts, no
		// upstream servers (so no query leaves the lab), and a pid file in
		// the lab's directory rather than the system dnsmasq's.
		"--conf-file=/dev/null", "--no-hosts", "--no-resolv",
		"--pid-file=" + filepath.Join(l.dir, "dnsmasq.pid"),
		// The Services' records; dnsmasq re-reads the file on SIGHUP.
		"--addn-hosts=" + hosts,
		// TTL 0 (CoreDNS's default is 5 s) and no negative caching, so an
		// answer never lags the pod set the lab has published.
		"--local-ttl=0", "--no-negcache",
		// Names under cluster.local and single-label names are answered from
		// the hosts file alone, and the rest of them get NXDOMAIN, as from
		// cluster DNS, rather than REFUSED. For single-label names that takes
		// --domain-needed: dnsmasq 2.90 still refuses them with --local=//
		// when it has no upstream server.
		"--local=/cluster.local/", "--domain-needed",
		// Listen on the bridge address only. --bind-dynamic binds that
		// address rather than the wildcard, and unlike --bind-interfaces it
		// does not warn about answering on other interfaces.
		"--listen-address=" + bridgeAddr.String(), "--bind-dynamic", fmt.Sprintf("--port=%d", dnsPort),
		// Staying root keeps the 0700 lab directory readable when SIGHUP
		// makes dnsmasq re-read the hosts file.
		"--user=root", "--group=root",
	}
	p, err := startProcess(l.nsNode, "dnsmasq", filepath.Join(l.dir, "dnsmasq.log"), os.Environ(), dnsmasq, args...)
	if err != nil {
		return err
	}
	l.dns = &dnsServer{proc: p, hostsPath: hosts}
	return l.waitDNS(ctx, l.serviceName(), []netip.Addr{clusterIP})
}

// reloadDNS rewrites the hosts file with the ready pods, sends SIGHUP and
// waits until dnsmasq answers with exactly those addresses.
func (l *Lab) reloadDNS(ctx context.Context, ready []netip.Addr) error {
	if err := writeFileAtomic(l.dns.hostsPath, renderHosts(l.serviceName(), l.headlessName(), ready)); err != nil {
		return err
	}
	if err := l.dns.proc.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	return l.waitDNS(ctx, l.headlessName(), ready)
}

// waitDNS polls dnsmasq from the client namespace until name resolves to
// want. dnsmasq reloads asynchronously and says nothing when done, so its
// answers are the only signal there is.
func (l *Lab) waitDNS(ctx context.Context, name string, want []netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ReadyTimeout)
	defer cancel()
	want = sortedAddrs(want)
	var got []netip.Addr
	var err error
	for {
		if l.dns.proc.Exited() {
			return fmt.Errorf("kubelab: dnsmasq exited (%s): %s", l.dns.proc.ExitStatus(), tailFile(l.dns.proc.LogPath(), 2048))
		}
		qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		got, err = l.Resolve(qctx, name)
		qcancel()
		if err == nil && slices.Equal(sortedAddrs(got), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubelab: dnsmasq at %s does not answer %s with %v (last answer %v, %v): %w",
				l.DNSServer(), name, want, got, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Resolve asks the lab's DNS server for the IPv4 addresses of name, from
// inside the client namespace. A name that does not exist (a headless
// Service with no ready pods) resolves to no addresses and no error.
func (l *Lab) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return netns.Dial(ctx, l.nsClient, network, l.DNSServer())
		},
	}
	// A trailing dot makes the name absolute, so the host's resolv.conf
	// search list never turns it into a different question.
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	addrs, err := r.LookupNetIP(ctx, "ip4", name)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, nil
	}
	if err != nil {
		// The error names the host's resolv.conf server, which Dial ignored.
		return nil, fmt.Errorf("kubelab: resolve %s at %s: %w", name, l.DNSServer(), err)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return sortedAddrs(addrs), nil
}

// sortedAddrs returns a sorted copy of addrs.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	s := slices.Clone(addrs)
	slices.SortFunc(s, netip.Addr.Compare)
	return s
}

// writeFileAtomic replaces path with content in one rename, so a reader
// (dnsmasq, nginx) never sees half a file.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	return nil
}
