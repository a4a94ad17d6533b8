package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// Labs names the namespaces, ConfigDir entries and temporary directories of
// one kind of lab after the process that owns them, so that what a crashed
// or killed owner left behind can be found and removed by the next run.
// A lab is called "<Prefix><owner PID>-<6 hex>" (see [Labs.New]); its
// namespaces and ConfigDir entries add "-<role>" ("-node", "-pod-3").
//
// Owners are looked up by PID, so labs made in another PID namespace that
// shares /run/netns would look stale: do not share /run/netns between
// containers that run labs.
type Labs struct {
	prefix string
	name   *regexp.Regexp // captures the lab, its owner's PID and the role
}

// NewLabs returns the Labs whose names start with prefix, such as
// "rotorlab-"; prefix must be a lowercase DNS label ending in "-".
func NewLabs(prefix string) *Labs {
	return &Labs{
		prefix: prefix,
		name:   regexp.MustCompile(`^(` + regexp.QuoteMeta(prefix) + `([0-9]+)-[0-9a-f]{6})(-[a-z0-9-]+)?$`),
	}
}

// New returns the name of a new lab owned by this process:
// "<prefix><PID>-<6 random hex digits>".
func (ls *Labs) New() (string, error) {
	var random [3]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("netns: %w", err)
	}
	return ls.prefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(random[:]), nil
}

// Parse splits the name of a lab, or of one of its namespaces, into the
// lab's name, its owner's PID and the role ("" for the lab itself, such as
// its directory). ok is false for a name of no lab of this kind.
func (ls *Labs) Parse(name string) (lab string, owner int, role string, ok bool) {
	m := ls.name.FindStringSubmatch(name)
	if m == nil {
		return "", 0, "", false
	}
	owner, _ = strconv.Atoi(m[2]) // digits: cannot fail
	return m[1], owner, m[3], true
}

// Remove deletes every namespace and ConfigDir entry of the named lab, with
// whatever runs inside (see [Delete]). Listing by name, rather than trusting
// the lab's records, also catches a namespace whose creation was
// interrupted and those a lab's own processes made.
func (ls *Labs) Remove(ctx context.Context, lab string) error {
	names, err := ls.names()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if l, _, _, ok := ls.Parse(name); ok && l == lab {
			errs = append(errs, Delete(ctx, name))
		}
	}
	return errors.Join(errs...)
}

// Leftovers returns the names of namespaces and ConfigDir entries of labs
// whose owner process is gone: labs of runs that crashed or were killed
// before they could close.
func (ls *Labs) Leftovers() ([]string, error) {
	names, err := ls.names()
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, name := range names {
		if _, owner, _, ok := ls.Parse(name); ok && !OwnerAlive(owner) {
			stale = append(stale, name)
		}
	}
	return stale, nil
}

// CleanStale removes the labs whose owner process is gone (see
// [Labs.Leftovers]): it kills what still runs in their namespaces, deletes
// the namespaces and their ConfigDir entries, and removes their directories
// under os.TempDir(), those named as the lab itself; a directory whose name
// adds a role, such as the logs a cluster kept ("-logs"), stays. Labs of
// running processes, this one's included, are left alone. It returns the
// names of the namespaces and entries removed and the paths of the
// directories.
func (ls *Labs) CleanStale(ctx context.Context) ([]string, error) {
	stale, err := ls.Leftovers()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range stale {
		if err := Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if _, owner, role, ok := ls.Parse(e.Name()); ok && role == "" && e.IsDir() && !OwnerAlive(owner) {
			dir := filepath.Join(os.TempDir(), e.Name())
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, dir)
		}
	}
	return removed, errors.Join(errs...)
}

// names returns the names of all namespaces and of the ConfigDir entries
// without one, which can outlive their namespace (a crash between the two).
func (ls *Labs) names() ([]string, error) {
	names, err := List()
	if err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(ConfigDir)
	for _, e := range entries {
		if !Exists(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// OwnerAlive reports whether a process with the given PID runs. A zombie
// does not count: a killed owner stays one until its parent reaps it.
func OwnerAlive(pid int) bool {
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
