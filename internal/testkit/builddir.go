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
// test binary builds for its tests, named "<prefix><PID>-<random digits>",
// after it removes the directories of the same prefix whose owner process
// has ended. TestMain removes its directory after m.Run, but a test binary
// that panics or runs past go test's -timeout ends without that (the
// example's builds are up to 130 MB): the next BuildDir of the same prefix
// removes what it left. Directories of running processes, and names not of
// that form, are left alone; a stale directory that cannot be removed is
// skipped. prefix should end in "-". The error is os.MkdirTemp's.
//
// Owners are looked up by PID, so a test binary in another PID namespace
// that shares os.TempDir() (a container given the host's /tmp) looks
// ended: do not share it between such test runs.
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
	digits, random, ok := strings.Cut(rest, "-")
	if !ok || !allDigits(digits) || !allDigits(random) {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// processRuns reports whether a process with the PID exists. Unlike
// netns.OwnerAlive it reads no /proc, so that it builds where the tests of
// the root module do (macOS too); a zombie counts as running, and its
// directory goes once it is reaped. Any answer but "no such process"
// counts as running, so that a directory is never taken from a process
// this one may not signal.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}
