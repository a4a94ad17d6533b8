package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/cluster/netns"
)

// TestCleanStale makes the leftovers of a cluster whose owner died (a
// namespace with a process in it, an /etc/netns entry without its
// namespace, a directory) and one of a live owner, and checks that
// CleanStale removes exactly the first.
func TestCleanStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := netns.FindTool("ip"); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A PID that is surely dead: a child that has exited and been reaped.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("rotorkube-%d-abcdef", done.Process.Pid)
	live := fmt.Sprintf("rotorkube-%d-fedcba", os.Getpid())
	t.Cleanup(func() {
		for _, name := range []string{dead + "-node", dead + "-pod-x", live + "-node"} {
			_ = netns.Delete(context.Background(), name)
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), dead))
	})
	for _, name := range []string{dead + "-node", live + "-node"} {
		if err := netns.Add(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "60")
	if err := netns.Start(dead+"-node", sleeper); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	if err := os.MkdirAll(filepath.Join(netns.ConfigDir, dead+"-pod-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(os.TempDir(), dead), 0o700); err != nil {
		t.Fatal(err)
	}

	removed, err := CleanStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{dead + "-node", dead + "-pod-x", filepath.Join(os.TempDir(), dead)} {
		if !slices.Contains(removed, want) {
			t.Errorf("CleanStale removed %v; want %s among them", removed, want)
		}
	}
	if netns.Exists(dead + "-node") {
		t.Errorf("namespace %s-node is still there", dead)
	}
	for _, path := range []string{filepath.Join(netns.ConfigDir, dead+"-pod-x"), filepath.Join(os.TempDir(), dead)} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s is still there (stat: %v)", path, err)
		}
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the process in the stale namespace was not killed")
	}
	if !netns.Exists(live + "-node") {
		t.Errorf("CleanStale removed %s-node, whose owner (this process) runs", live)
	}
}
