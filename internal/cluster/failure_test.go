package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
)

// TestNewReportsFailedComponent starts a cluster whose kube-apiserver is a
// script that fails at once, and checks that New's error names it and shows
// its log, and that New removed everything it had made.
func TestNewReportsFailedComponent(t *testing.T) {
	bin := failingAPIServerBin(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := New(ctx, Config{BinDir: bin, TempDir: tmp})
	if err == nil {
		c.Close()
		t.Fatal("New succeeded with a kube-apiserver that exits at once")
	}
	t.Logf("New failed as it should: %v", err)
	for _, want := range []string{"kube-apiserver", "exited", "unknown flag: --rotor-test-bad-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New's error lacks %q:\n%v", want, err)
		}
	}
	names, _ := netns.List()
	for _, name := range names {
		if _, owner, _, ok := labs.Parse(name); ok && owner == os.Getpid() {
			t.Errorf("namespace %s is left after the failed New", name)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the failed New left %v in its TempDir", entries)
	}

	// With KeepLogs the error says where the logs are, and they are there:
	// the log it quotes was under the directory Close renamed.
	c, err = New(ctx, Config{BinDir: bin, TempDir: tmp, KeepLogs: true})
	if err == nil {
		c.Close()
		t.Fatal("New succeeded with a kube-apiserver that exits at once")
	}
	checkKeptLogs(t, err, tmp, "New's error with KeepLogs")
}

// checkKeptLogs checks that err, from a cluster whose kube-apiserver
// failed (failingAPIServerBin) and whose logs were kept, says where they
// are, "(the logs are kept in DIR)", with DIR under tmp and ending in
// -logs, and that DIR holds the kube-apiserver's log. what names err in
// t's messages.
func checkKeptLogs(t *testing.T, err error, tmp, what string) {
	t.Helper()
	_, kept, ok := strings.Cut(err.Error(), "(the logs are kept in ")
	kept, _, _ = strings.Cut(kept, ")")
	if !ok || filepath.Dir(kept) != tmp || !strings.HasSuffix(kept, "-logs") {
		t.Fatalf("%s does not say where the logs are kept (under %s, ending in -logs):\n%v", what, tmp, err)
	}
	if log, err := os.ReadFile(filepath.Join(kept, "kube-apiserver.log")); err != nil || !strings.Contains(string(log), "--rotor-test-bad-flag") {
		t.Errorf("the kept kube-apiserver.log (error %v) lacks the component's output:\n%s", err, log)
	}
}

// failingAPIServerBin returns a BinDir with the built components, but for
// a kube-apiserver that is a script which fails at once, skipping t when
// the components are not built.
func failingAPIServerBin(t *testing.T) string {
	t.Helper()
	real := Config{}
	if err := Available(real); err != nil {
		t.Skip(err)
	}
	bin := t.TempDir()
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns"} {
		stamp, err := os.ReadFile(filepath.Join(DefaultBinDir(), "."+name+".stamp"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "."+name+".stamp"), stamp, 0o644); err != nil {
			t.Fatal(err)
		}
		if name == "kube-apiserver" {
			script := "#!/bin/sh\necho 'Error: unknown flag: --rotor-test-bad-flag' >&2\nexit 1\n"
			if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Symlink(filepath.Join(DefaultBinDir(), name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// TestNewForTestRemovesAFailedCluster checks that a test's cluster that
// fails to start leaves nothing behind (its directory, which Close kept,
// is removed) and that with KeepLogsEnv it is kept and the error says
// where, its logs in it.
func TestNewForTestRemovesAFailedCluster(t *testing.T) {
	bin := failingAPIServerBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tmp := t.TempDir()
	c, err := newForTest(ctx, Config{BinDir: bin, TempDir: tmp}, false)
	if err == nil {
		c.Close()
		t.Fatal("newForTest succeeded with a kube-apiserver that exits at once")
	}
	if !strings.Contains(err.Error(), "unknown flag: --rotor-test-bad-flag") || strings.Contains(err.Error(), "kept in") {
		t.Errorf("newForTest's error should quote the failed component's log and name no kept directory:\n%v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the failed start left %v in its TempDir", entries)
	}

	tmp = t.TempDir()
	c, err = newForTest(ctx, Config{BinDir: bin, TempDir: tmp}, true)
	if err == nil {
		c.Close()
		t.Fatal("newForTest succeeded with a kube-apiserver that exits at once")
	}
	checkKeptLogs(t, err, tmp, "newForTest's error with keep")
}
