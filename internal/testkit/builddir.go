package testkit

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// BuildDir returns a new directory under os.TempDir() for the programs a
// test binary builds in its TestMain, named "<prefix><PID>-<random digits>",
// after it removes the directories of the same prefix whose owner process
// has ended. TestMain removes its directory after m.Run, but a test binary
// that panics or runs past go test's -timeout ends without that (the
// example's builds are up to 130 MB): the next run of a binary with the
// same prefix removes what it left. Directories of running processes, and
// names that do not parse as "<prefix><PID>-…", are left alone; a stale
// directory that cannot be removed is skipped. prefix should end in "-".
// The error is os.MkdirTemp's.
func BuildDir(prefix string) (string, error) {
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if owner, ok := buildDirOwner(prefix, e.Name()); ok && e.IsDir() && !processRuns(owner) {
			_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
	return os.MkdirTemp("", prefix+strconv.Itoa(os.Getpid())+"-")
}

// buildDirOwner returns the PID in the name of a directory BuildDir made
// with prefix.
func buildDirOwner(prefix, name string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

// processRuns reports whether a process with the PID exists (a zombie
// counts: its directory goes once it is reaped). Any answer but "no such
// process" counts as running, so that a directory is never taken from a
// process this one may not signal.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}
