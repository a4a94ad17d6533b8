package kubelab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotorkit/rotor/internal/netns"
)

// labs names every namespace, /etc/netns entry and directory a lab creates
// after the process that owns it: "rotorlab-<pid>-<6 hex>[-<role>]".
var labs = netns.NewLabs("rotorlab-")

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
			wg.Go(p.proc.Kill)
		}
	}
	if l.dns != nil {
		wg.Go(l.dns.proc.Kill)
	}
	if l.l7 != nil {
		// SIGTERM is nginx's fast shutdown: the master stops its workers,
		// which are not the lab's children, before it exits.
		wg.Go(func() { _, _ = l.l7.proc.Stop(context.Background(), syscall.SIGTERM, 2*time.Second) })
	}
	wg.Wait()
	l.terminated.Wait() // their goroutines end with the kill

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	if err := labs.Remove(ctx, l.prefix); err != nil {
		errs = append(errs, err)
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("kubelab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteNetns kills whatever runs in one namespace and deletes it (see
// netns.Delete). Those processes can only be the lab's: its own children,
// what they forked (nginx's workers) and what a caller ran there with
// ClientCommand.
func (l *Lab) deleteNetns(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	return netns.Delete(ctx, ns)
}

// Leftovers returns the names of lab namespaces and /etc/netns entries
// whose owner process is gone: labs of runs that crashed or were killed
// before Close.
func Leftovers() ([]string, error) { return labs.Leftovers() }

// CleanStale removes the labs whose owner process is gone (see Leftovers):
// it kills what still runs in their namespaces, deletes the namespaces and
// removes their directories under os.TempDir(). Labs of running processes,
// including this one, are left alone. It returns the namespaces and
// directories removed. Owners are looked up by PID, so labs made in another
// PID namespace (another container sharing /run/netns) would look stale: do
// not share /run/netns between containers that run labs.
func CleanStale(ctx context.Context) ([]string, error) { return labs.CleanStale(ctx) }

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
