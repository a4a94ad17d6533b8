// Package netns creates, enters and removes named Linux network namespaces
// (the ones "ip netns" pins under /run/netns), runs code, sockets and
// processes inside them without leaving the caller's mount namespace, and
// finds and removes the namespaces of labs whose owner died ([Labs]).
//
// It is the low layer of rotor's two labs: internal/kubelab (one node, its
// pods and a client, with kube-proxy's rules written by hand) and the real
// cluster lab in internal/cluster, whose harness uses it for the node's
// namespace and whose node agent uses it (through package podnet) for pods.
// Every function that touches a namespace needs root.
//
// Two ways into a namespace, and why both exist:
//
//   - [Start] forks a process from a thread that has entered the namespace.
//     The process keeps the caller's mount namespace, so namespaces it creates
//     with "ip netns add" are visible to everyone. Components of the node
//     (kube-apiserver, kube-proxy, a node agent) start this way.
//   - "ip netns exec NAME cmd" (see [ExecArgs]) also gives the process a
//     private mount namespace in which /etc/netns/NAME/* is bind-mounted over
//     /etc, which is how a pod gets its own resolv.conf. Mounts it makes do not
//     propagate back, so it suits pods, not a node agent.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is where "ip netns add" pins named namespaces.
const Dir = "/run/netns"

// ConfigDir is where "ip netns exec NAME" finds the files it bind-mounts over
// /etc (resolv.conf, hosts) for namespace NAME.
const ConfigDir = "/etc/netns"

// FindTool finds an administration program in PATH or, since a non-root PATH
// often lacks them, in /usr/sbin, /sbin, /usr/bin and /bin.
func FindTool(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("netns: %s not found in PATH, /usr/sbin or /sbin", name)
}

// Run runs a tool, feeding it stdin when not nil, and returns its stdout.
// The error carries the command line and the tool's stderr, which is where
// these tools say what went wrong.
func Run(ctx context.Context, stdin []byte, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("netns: %s %s: %w: %s", filepath.Base(path), strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// IP runs "ip -batch -" inside namespace ns (the caller's own when ns is
// empty) with one command a line.
func IP(ctx context.Context, ns string, lines ...string) error {
	ipPath, err := FindTool("ip")
	if err != nil {
		return err
	}
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err = Run(ctx, []byte(strings.Join(lines, "\n")+"\n"), ipPath, args...)
	return err
}

// Add creates the named namespace with its loopback up: many programs, and
// the kernel's own local routes, assume lo works.
func Add(ctx context.Context, name string) error {
	ipPath, err := FindTool("ip")
	if err != nil {
		return err
	}
	if _, err := Run(ctx, nil, ipPath, "netns", "add", name); err != nil {
		return err
	}
	return IP(ctx, name, "link set lo up")
}

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(filepath.Join(Dir, name))
	return err == nil
}

// List returns the names of all named namespaces.
func List() ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// Pids returns the processes whose network namespace is the named one.
// The calling process is never among them, even when one of its threads is
// inside the namespace.
func Pids(ctx context.Context, name string) ([]int, error) {
	ipPath, err := FindTool("ip")
	if err != nil {
		return nil, err
	}
	out, err := Run(ctx, nil, ipPath, "netns", "pids", name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Delete deletes the named namespace, removes its ConfigDir entry and
// sends SIGKILL to every process still inside it or holding it open, until
// a scan finds none or ctx ends. The kernel frees the namespace, and with it
// its interfaces (a veth takes its peer along), routes, iptables and
// nftables state and conntrack entries, once its last user is gone. A
// namespace that does not exist is not an error; its ConfigDir entry is
// removed all the same.
//
// The name goes first, so that no process can open the namespace any more;
// then its users are killed. Scanning before the deletion, as "ip netns
// pids" does, would miss a process that is entering the namespace at that
// moment ("ip netns exec" holds it open between opening and entering it),
// and that process would live on inside.
//
// Only call it for namespaces your program created: whatever runs inside
// is killed, whoever started it.
func Delete(ctx context.Context, name string) error {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(Dir, name), &st); errors.Is(err, unix.ENOENT) {
		return removeConfig(name)
	} else if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	ipPath, err := FindTool("ip")
	if err != nil {
		return err
	}
	if _, err := Run(ctx, nil, ipPath, "netns", "del", name); err != nil && Exists(name) {
		return err
	}
	if err := removeConfig(name); err != nil {
		return err
	}
	link := fmt.Sprintf("net:[%d]", st.Ino)
	for ctx.Err() == nil {
		users := users(link)
		if len(users) == 0 {
			return nil
		}
		for _, pid := range users {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("netns: processes still use namespace %s: %w", name, ctx.Err())
}

// removeConfig removes the ConfigDir entry of the named namespace.
func removeConfig(name string) error {
	if err := os.RemoveAll(filepath.Join(ConfigDir, name)); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	return nil
}

// users returns the processes, other than this one, whose network namespace
// is link ("net:[inode]") or that hold a file descriptor of it.
func users(link string) []int {
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if l, _ := os.Readlink(filepath.Join(dir, "ns", "net")); l == link {
			pids = append(pids, pid)
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(dir, "fd", fd.Name())); l == link {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// Do runs fn on an OS thread that has entered the named namespace, then
// returns the thread to the caller's namespace. Sockets keep the namespace
// they were created in, so a connection dialled or a listener opened inside
// fn stays in that namespace afterwards; processes forked inside fn start in
// it. fn must not start goroutines that expect to be in the namespace: they
// run on other threads.
func Do(name string, fn func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open own network namespace: %w", err)
	}
	defer unix.Close(self)
	target, err := unix.Open(filepath.Join(Dir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open namespace %s: %w", name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter namespace %s: %w", name, err)
	}
	fnErr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the other namespace. Returning while still
		// locked makes the runtime end the thread instead of reusing it.
		return errors.Join(fnErr, fmt.Errorf("netns: return from namespace %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Dial connects to address from inside the named namespace. The address must
// be an IP literal and port: a name lookup would run on other threads,
// outside the namespace.
func Dial(ctx context.Context, name, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("netns: dial %q: %w", address, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("netns: dial %q in %s: need an IP address, not a name (a lookup would run outside the namespace)", address, name)
	}
	var conn net.Conn
	err = Do(name, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	return conn, err
}

// Dialer returns a DialContext function that dials inside the named
// namespace, for an http.Transport or a client-go rest.Config.
func Dialer(name string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		return Dial(ctx, name, network, address)
	}
}

// Listen opens a listener inside the named namespace, e.g. Listen(ns, "tcp",
// ":8080") for a server that a pod would run.
func Listen(name, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := Do(name, func() error {
		l, err := net.Listen(network, address)
		ln = l
		return err
	})
	return ln, err
}

// Start starts cmd inside the named namespace: it forks from a thread that
// has entered the namespace, so the child's network namespace is that one
// while its mount namespace stays the caller's. Give cmd files (or nothing)
// for Stdin, Stdout and Stderr, so that os/exec starts no copying
// goroutines of its own.
//
// A cmd.SysProcAttr.Pdeathsig is delivered when the thread that forked the
// child ends. Start hands that thread back to the runtime, which keeps it
// for the life of the process, except when returning the thread to the
// caller's namespace fails: then Start reports it and the thread ends.
func Start(name string, cmd *exec.Cmd) error {
	return Do(name, cmd.Start)
}

// ExecArgs returns the argv that runs path with args inside the named
// namespace through "ip netns exec", which bind-mounts /etc/netns/NAME/* over
// /etc in a private mount namespace (so the program reads the namespace's
// own resolv.conf) and then execs the program, so the child's PID is the
// program's own.
func ExecArgs(name, path string, args ...string) ([]string, error) {
	ipPath, err := FindTool("ip")
	if err != nil {
		return nil, err
	}
	return append([]string{ipPath, "netns", "exec", name, path}, args...), nil
}
