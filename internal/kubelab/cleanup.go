package kubelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// labPrefix starts the name of every namespace and directory a lab creates.
const labPrefix = "rotorlab-"

// labName matches a lab's namespace or directory name and captures the
// lab's prefix and its owner's PID: "rotorlab-<pid>-<6 hex>[-<role>]".
var labName = regexp.MustCompile(`^(rotorlab-([0-9]+)-[0-9a-f]{6})(-[a-z0-9]+)?$`)

// cleanupTimeout bounds each external command Close runs, so a wedged tool
// cannot make Close hang.
const cleanupTimeout = 10 * time.Second

// Close removes everything the lab created: it kills the processes it
// started (pods, dnsmasq, nginx, and anything else still running in the
// lab's namespaces, such as commands from ClientCommand), deletes the
// namespaces, which takes the veths, bridge, iptables rules and conntrack
// entries with them, and removes the lab's directory. Operations in flight
// are cancelled. Close is idempotent and safe after a failed New. It does
// not drain pods gracefully; ScaleTo(ctx, 0) first does that.
func (l *Lab) Close() error {
	l.cancel()
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	pods := slices.Clone(l.pods)
	l.pods = nil
	for p := range l.terminating {
		pods = append(pods, p)
	}
	l.mu.Unlock()
	forgetOnSignal(l)

	var wg sync.WaitGroup
	for _, p := range pods {
		if p.proc != nil {
			wg.Go(p.proc.kill)
		}
	}
	if l.dns != nil {
		wg.Go(l.dns.proc.kill)
	}
	if l.l7 != nil {
		// SIGTERM is nginx's fast shutdown: the master stops its workers,
		// which are not the lab's children, before it exits.
		wg.Go(func() { _ = l.l7.proc.stop(context.Background(), syscall.SIGTERM, 2*time.Second) })
	}
	wg.Wait()
	l.terminated.Wait() // their goroutines end with the kill

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	if _, err := removeLab(ctx, l.ipPath, l.prefix); err != nil {
		errs = append(errs, err)
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("kubelab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteNetns kills whatever runs in one namespace and deletes it.
func (l *Lab) deleteNetns(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	return deleteNetns(ctx, l.ipPath, ns)
}

// deleteNetns deletes ns and kills the processes that use it. Those can only
// be the lab's: its own children, what they forked (nginx's workers) and
// what a caller ran there with ClientCommand. A namespace that is already
// gone is not an error.
//
// The name goes first, so that no process can open the namespace any more;
// then every process that is inside it or holds it open (ip netns exec holds
// it between opening it and entering it) is killed, until a scan finds none.
// Scanning before the deletion, as ip netns pids does, would miss a process
// that is entering the namespace at that moment, and it would then live on
// in it.
func deleteNetns(ctx context.Context, ipPath, ns string) error {
	path := filepath.Join(netnsDir, ns)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	// The kernel frees the namespace, and with it the veths and rules, when
	// its last user is gone.
	if err := runIP(ctx, ipPath, "netns", "del", ns); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(etcNetnsDir, ns)); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	link := fmt.Sprintf("net:[%d]", st.Ino)
	for ctx.Err() == nil {
		users := netnsUsers(link)
		if len(users) == 0 {
			return nil
		}
		for _, pid := range users {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("kubelab: processes still use namespace %s: %w", ns, ctx.Err())
}

// netnsUsers returns the processes, other than this one, whose network
// namespace is link ("net:[inode]") or that hold a file descriptor of it.
func netnsUsers(link string) []int {
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

// removeLab deletes every namespace whose name starts with the lab prefix
// and returns their names. Listing by prefix, rather than trusting the lab's
// records, also catches a namespace whose creation was interrupted.
func removeLab(ctx context.Context, ipPath, prefix string) ([]string, error) {
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range names {
		if m := labName.FindStringSubmatch(name); m == nil || m[1] != prefix {
			continue
		}
		if err := deleteNetns(ctx, ipPath, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// listNetns returns the names of all named network namespaces.
func listNetns() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kubelab: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// ownerAlive reports whether a process with the given PID runs. A zombie
// does not count: a killed owner stays one until its parent reaps it.
func ownerAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// Leftovers returns the names of lab namespaces whose owner process is
// gone: labs of runs that crashed or were killed before Close.
func Leftovers() ([]string, error) {
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, name := range names {
		if m := labName.FindStringSubmatch(name); m != nil && !ownerAlive(atoi(m[2])) {
			stale = append(stale, name)
		}
	}
	return stale, nil
}

// CleanStale removes the labs whose owner process is gone (see Leftovers):
// it kills what still runs in their namespaces, deletes the namespaces and
// removes their directories under os.TempDir(). Labs of running processes,
// including this one, are left alone. It returns the namespaces removed.
// Owners are looked up by PID, so labs made in another PID namespace (another
// container sharing /run/netns) would look stale: do not share /run/netns
// between containers that run labs.
func CleanStale(ctx context.Context) ([]string, error) {
	ipPath, err := findTool("ip")
	if err != nil {
		return nil, err
	}
	stale, err := Leftovers()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range stale {
		if err := deleteNetns(ctx, ipPath, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if m := labName.FindStringSubmatch(e.Name()); m != nil && m[3] == "" && e.IsDir() && !ownerAlive(atoi(m[2])) {
			errs = append(errs, os.RemoveAll(filepath.Join(os.TempDir(), e.Name())))
		}
	}
	return removed, errors.Join(errs...)
}

// atoi parses a number matched by labName, which cannot fail.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// closeOnSignal holds the labs to close when the process gets SIGINT or
// SIGTERM. One handler serves all labs, so parallel labs are all removed
// before the signal ends the process.
var closeOnSignal struct {
	sync.Mutex
	labs    map[*Lab]struct{}
	started bool
}

// CloseOnSignal arranges for the lab to be closed when the process receives
// SIGINT or SIGTERM; the signal is then raised again so the process ends as
// it would have. It is meant for commands; tests should defer Close (go test
// kills a test binary on Ctrl-C, and the next New cleans what that leaves).
// A program that handles these signals itself should call Close from its
// own handler instead.
func (l *Lab) CloseOnSignal() {
	closeOnSignal.Lock()
	defer closeOnSignal.Unlock()
	if closeOnSignal.labs == nil {
		closeOnSignal.labs = make(map[*Lab]struct{})
	}
	closeOnSignal.labs[l] = struct{}{}
	if closeOnSignal.started {
		return
	}
	closeOnSignal.started = true
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		closeOnSignal.Lock()
		labs := make([]*Lab, 0, len(closeOnSignal.labs))
		for lab := range closeOnSignal.labs {
			labs = append(labs, lab)
		}
		closeOnSignal.Unlock()
		var wg sync.WaitGroup
		for _, lab := range labs {
			wg.Go(func() {
				if err := lab.Close(); err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
			})
		}
		wg.Wait()
		signal.Reset(sig)
		_ = unix.Kill(os.Getpid(), sig.(syscall.Signal))
	}()
}

// forgetOnSignal drops a closed lab from the signal handler's list.
func forgetOnSignal(l *Lab) {
	closeOnSignal.Lock()
	defer closeOnSignal.Unlock()
	delete(closeOnSignal.labs, l)
}
