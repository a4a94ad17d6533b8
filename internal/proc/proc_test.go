package proc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"
)

// sh starts a shell script as a Process logging into the test's directory.
func sh(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Spec{Name: "sh", Argv: []string{"/bin/sh", "-c", script}, LogPath: filepath.Join(t.TempDir(), "logs", "sh.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestStartLogsAndReaps(t *testing.T) {
	p := sh(t, "echo out; echo err >&2; exit 3")
	<-p.Done()
	if got := p.ExitStatus(); got != "exit status 3" {
		t.Errorf("ExitStatus() = %q, want exit status 3", got)
	}
	if _, state, err := p.Ended(); state == nil || state.ExitCode() != 3 || err == nil {
		t.Errorf("Ended() = %v, %v; want exit code 3 and an error", state, err)
	}
	log, err := os.ReadFile(p.LogPath())
	if err != nil || string(log) != "out\nerr\n" {
		t.Errorf("log %q (%v), want stdout and stderr", log, err)
	}
	info, err := os.Stat(p.LogPath())
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v (%v), want the default 0600", info.Mode(), err)
	}
}

func TestStartFails(t *testing.T) {
	_, err := Start(Spec{Name: "nothing", Argv: []string{"/nonexistent/program"}, LogPath: filepath.Join(t.TempDir(), "x.log")})
	if err == nil || !strings.Contains(err.Error(), "start nothing") {
		t.Errorf("Start of a missing program: %v, want an error naming it", err)
	}
}

// Stop gives a process that heeds the signal its grace period, and kills one
// that ignores it, with the helpers it forked.
func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     string
		wantKilled bool
	}{
		{"heeds SIGTERM", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.01; done", false},
		{"ignores SIGTERM", "trap '' TERM; sleep 300 & echo $!; echo ready; wait", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sh(t, tc.script)
			waitLog(t, p, "ready")
			if pgid, err := syscall.Getpgid(p.PID()); err != nil || pgid != p.PID() {
				t.Errorf("process group %d (%v), want the process's own, %d", pgid, err, p.PID())
			}
			helper, _ := strconv.Atoi(strings.Fields(readLog(p))[0])
			killed, err := p.Stop(context.Background(), syscall.SIGTERM, 200*time.Millisecond)
			if err != nil || killed != tc.wantKilled {
				t.Errorf("Stop() = %v, %v; want %v, nil", killed, err, tc.wantKilled)
			}
			if !p.Exited() {
				t.Error("Stop returned before the process was reaped")
			}
			if helper > 0 {
				testkit.Eventually(t, 10*time.Second, "the forked helper to end with Stop", func() bool { return gone(helper) })
			}
		})
	}
}

// Stop of a process that has already exited sends nothing and is no error.
func TestStopAfterExit(t *testing.T) {
	p := sh(t, "exit 0")
	<-p.Done()
	if killed, err := p.Stop(context.Background(), syscall.SIGTERM, time.Second); killed || err != nil {
		t.Errorf("Stop() = %v, %v; want false, nil", killed, err)
	}
}

func readLog(p *Process) string {
	b, _ := os.ReadFile(p.LogPath())
	return string(b)
}

// waitLog waits until the process has logged want. The process says when it
// is ready; there is nothing else to wait for.
func waitLog(t *testing.T, p *Process, want string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the process to log "+want, func() bool {
		return strings.Contains(readLog(p), want) || p.Exited()
	})
	if !strings.Contains(readLog(p), want) {
		t.Fatalf("the process exited (%s) before it logged %q: %q", p.ExitStatus(), want, readLog(p))
	}
}

// gone reports whether pid has ended, or is a zombie that init has yet to
// reap: SIGKILL takes effect asynchronously.
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// Spec's Env, Dir, LogMode and Start reach the process.
func TestSpec(t *testing.T) {
	dir := t.TempDir()
	var started bool
	p, err := Start(Spec{
		Name: "env", Argv: []string{"/bin/sh", "-c", `echo "$X $PWD"`}, Env: []string{"X=y"}, Dir: dir,
		LogPath: filepath.Join(dir, "env.log"), LogMode: 0o640,
		Start: func(cmd *exec.Cmd) error {
			started = true
			return cmd.Start()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got, want := readLog(p), "y "+dir+"\n"; got != want || !started {
		t.Errorf("log %q (Start called: %v), want %q", got, started, want)
	}
	if info, err := os.Stat(p.LogPath()); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v (%v), want 0640", info.Mode(), err)
	}
}
