package testkit

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A test binary killed by go test's -timeout leaves its build directory;
// the next BuildDir of the same prefix must remove it, and only it.
func TestBuildDirRemovesWhatEndedOwnersLeft(t *testing.T) {
	const prefix = "rotor-testkit-builddir-"
	tmp := os.TempDir()
	dead := filepath.Join(tmp, prefix+strconv.Itoa(DeadPID(t))+"-123")
	// PID 1 runs as long as the machine does.
	alive := filepath.Join(tmp, prefix+"1-456")
	// Not of BuildDir's form, though the first has a dead PID in it.
	other := filepath.Join(tmp, prefix+strconv.Itoa(DeadPID(t))+"-logs")
	notPID := filepath.Join(tmp, prefix+"x-789")
	for _, dir := range []string{dead, alive, other, notPID} {
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}

	dir, err := BuildDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s, of a process that ended, is still there (Stat: %v)", dead, err)
	}
	for _, keep := range []string{alive, other, notPID} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s was removed, though it is of a running process or not of BuildDir's form: %v", keep, err)
		}
	}
	own := prefix + strconv.Itoa(os.Getpid()) + "-"
	if filepath.Dir(dir) != filepath.Clean(tmp) || !strings.HasPrefix(filepath.Base(dir), own) {
		t.Errorf("BuildDir gave %s; want a directory in %s named %s…", dir, tmp, own)
	}
	if owner, ok := buildDirOwner(prefix, filepath.Base(dir)); !ok || owner != os.Getpid() {
		t.Errorf("the name %s reads as owner %d (%v); want this process, %d", filepath.Base(dir), owner, ok, os.Getpid())
	}
	// The next BuildDir of the prefix leaves the directory of a process
	// that runs, this one.
	second, err := BuildDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(second) })
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the next BuildDir removed %s, of this running process: %v", dir, err)
	}
}
