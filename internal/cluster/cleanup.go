package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/rotorkit/rotor/internal/cluster/netns"
)

// namePrefix starts the name of every namespace, /etc/netns entry and
// directory a cluster makes.
const namePrefix = "rotorkube-"

// labName matches a cluster's namespace or directory name and captures the
// cluster's prefix and its owner's PID: "rotorkube-<pid>-<6 hex>[-<role>]".
var labName = regexp.MustCompile(`^(rotorkube-([0-9]+)-[0-9a-f]{6})(-[a-z0-9-]+)?$`)

// removeByPrefix deletes every namespace whose name is prefix or starts with
// prefix+"-", with whatever runs inside and its /etc/netns entry. Listing
// by name, rather than trusting the cluster's records, also catches a
// namespace whose creation was interrupted and those a node agent made.
func removeByPrefix(ctx context.Context, prefix string) error {
	names, err := netns.List()
	if err != nil {
		return err
	}
	// /etc/netns entries can outlive a namespace (a crash between the two).
	if entries, err := os.ReadDir(netns.ConfigDir); err == nil {
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	var errs []error
	for _, name := range names {
		if m := labName.FindStringSubmatch(name); m == nil || m[1] != prefix {
			continue
		}
		if err := netns.Delete(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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

// Leftovers returns the names of cluster namespaces and /etc/netns entries
// whose owner process is gone: clusters of runs that crashed or were killed
// before Close.
func Leftovers() ([]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(netns.ConfigDir); err == nil {
		for _, e := range entries {
			if !netns.Exists(e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	var stale []string
	for _, name := range names {
		if m := labName.FindStringSubmatch(name); m != nil && !ownerAlive(atoi(m[2])) {
			stale = append(stale, name)
		}
	}
	return stale, nil
}

// CleanStale removes the clusters whose owner process is gone (see
// Leftovers): it kills what still runs in their namespaces (the components
// normally died with their owner), deletes the namespaces and their
// /etc/netns entries, and removes their directories under os.TempDir()
// (not under another Config.TempDir). Clusters of running processes,
// this one's included, are left alone. It returns the names removed.
// Owners are looked up by PID, so clusters made in another PID namespace
// sharing /run/netns would look stale: do not share /run/netns between
// containers that run clusters.
func CleanStale(ctx context.Context) ([]string, error) {
	stale, err := Leftovers()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range stale {
		if err := netns.Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if m := labName.FindStringSubmatch(e.Name()); m != nil && m[3] == "" && e.IsDir() && !ownerAlive(atoi(m[2])) {
			if err := os.RemoveAll(filepath.Join(os.TempDir(), e.Name())); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
	return removed, errors.Join(errs...)
}

// atoi parses a number matched by labName, which cannot fail.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
