package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"
)

func TestLabsParse(t *testing.T) {
	labs := NewLabs("rotorlab-")
	for _, tc := range []struct {
		name      string
		lab       string
		owner     int
		role      string
		ok        bool
		parseNote string
	}{
		{"rotorlab-42-c0ffee", "rotorlab-42-c0ffee", 42, "", true, "the lab (its directory)"},
		{"rotorlab-42-c0ffee-node", "rotorlab-42-c0ffee", 42, "-node", true, "a namespace"},
		{"rotorlab-42-c0ffee-pod-node-1-hello", "rotorlab-42-c0ffee", 42, "-pod-node-1-hello", true, "a role with dashes"},
		{"rotorkube-42-c0ffee-node", "", 0, "", false, "another kind of lab"},
		{"rotorlab-42-C0FFEE", "", 0, "", false, "upper-case hex"},
		{"rotorlab-42-c0ffe", "", 0, "", false, "5 hex digits"},
		{"rotorlab-x-c0ffee", "", 0, "", false, "no PID"},
		{"cni-1234", "", 0, "", false, "someone else's"},
	} {
		lab, owner, role, ok := labs.Parse(tc.name)
		if lab != tc.lab || owner != tc.owner || role != tc.role || ok != tc.ok {
			t.Errorf("Parse(%q) (%s) = %q, %d, %q, %v; want %q, %d, %q, %v",
				tc.name, tc.parseNote, lab, owner, role, ok, tc.lab, tc.owner, tc.role, tc.ok)
		}
	}
	name, err := labs.New()
	if err != nil {
		t.Fatal(err)
	}
	if lab, owner, role, ok := labs.Parse(name); !ok || lab != name || owner != os.Getpid() || role != "" {
		t.Errorf("Parse(New()) = %q, %d, %q, %v; want %q owned by this process", lab, owner, role, ok, name)
	}
}

func TestOwnerAlive(t *testing.T) {
	if !OwnerAlive(os.Getpid()) {
		t.Error("OwnerAlive(this process) = false")
	}
	if dead := testkit.DeadPID(t); OwnerAlive(dead) {
		t.Errorf("OwnerAlive(%d), a reaped child, = true", dead)
	}
}

// needRoot skips a test that makes namespaces where it cannot.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := FindTool("ip"); err != nil {
		t.Skip(err)
	}
}

// CleanStale removes the namespace, ConfigDir entry and directory of a lab
// whose owner is gone, with the process inside, and leaves a live owner's
// lab alone, and a directory of a stale lab with a role, such as the logs a
// cluster kept ("-logs"); Remove then removes the live lab.
func TestLabsCleanStaleAndRemove(t *testing.T) {
	needRoot(t)
	labs := NewLabs("rotornetnstest-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stale := fmt.Sprintf("rotornetnstest-%d-abcdef", testkit.DeadPID(t))
	live, err := labs.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, name := range []string{stale + "-node", stale + "-pod-x", live + "-node"} {
			_ = Delete(context.Background(), name)
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), stale))
		_ = os.RemoveAll(filepath.Join(os.TempDir(), stale+"-logs"))
	})
	for _, name := range []string{stale + "-node", live + "-node"} {
		if err := Add(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "60")
	if err := Start(stale+"-node", sleeper); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	if err := os.MkdirAll(filepath.Join(ConfigDir, stale+"-pod-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{stale, stale + "-logs"} {
		if err := os.MkdirAll(filepath.Join(os.TempDir(), dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := labs.CleanStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{stale + "-node", stale + "-pod-x", filepath.Join(os.TempDir(), stale)} {
		if !slices.Contains(removed, want) {
			t.Errorf("CleanStale removed %v; want %s among them", removed, want)
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), stale+"-logs")); err != nil {
		t.Errorf("CleanStale removed the kept logs of a stale lab (stat: %v); want them left", err)
	}
	testkit.Receive(t, exited, 10*time.Second, "the process in the stale namespace to be killed")
	if Exists(stale+"-node") || !Exists(live+"-node") {
		t.Errorf("after CleanStale %s-node exists: %v, %s-node: %v; want only the live one", stale, Exists(stale+"-node"), live, Exists(live+"-node"))
	}
	if err := labs.Remove(ctx, live); err != nil || Exists(live+"-node") {
		t.Errorf("Remove(%s) = %v; namespace left: %v", live, err, Exists(live+"-node"))
	}
}

// Delete leaves nothing alive in the namespace, not even a process that is
// entering it at that very moment: "ip netns exec" opens the namespace and
// only then enters it, and a scan in between does not see it inside.
func TestDeleteCatchesAProcessEnteringTheNamespace(t *testing.T) {
	needRoot(t)
	ipPath, _ := FindTool("ip")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 60 {
		name := fmt.Sprintf("rotornetnstest-%d-c0f%03d-node", os.Getpid(), i)
		if err := Add(ctx, name); err != nil {
			t.Fatal(err)
		}
		entering := exec.Command(ipPath, "netns", "exec", name, "sleep", "60")
		if err := entering.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = entering.Process.Kill() }) // if it survives
		// Vary the moment, from before the exec has opened the namespace to
		// after it has entered it (ip starts in about a millisecond).
		time.Sleep(time.Duration(i%30) * 100 * time.Microsecond)
		if err := Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- entering.Wait() }()
		if err := testkit.Receive(t, done, 5*time.Second, fmt.Sprintf("round %d: a process entering the namespace to end with Delete", i)); err == nil {
			t.Fatalf("round %d: the process in the deleted namespace ran to its end", i)
		}
		if Exists(name) {
			t.Fatalf("round %d: namespace %s is still there", i, name)
		}
	}
}
