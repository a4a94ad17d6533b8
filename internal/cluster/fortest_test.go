package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordingTB is a testing.TB whose Failed is set by the test and whose
// Logf and Errorf are recorded, for checking what a cleanup does when the
// test it ends failed.
type recordingTB struct {
	testing.TB
	failed bool
	logs   []string
	errs   []string
}

func (r *recordingTB) Failed() bool { return r.failed }
func (r *recordingTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestFinishLogs checks what NewForTest's cleanup does with a kept cluster
// directory: a passed test removes it silently, a failed one logs the tail
// of every log, pods' logs included, and removes it too, and
// ROTOR_CLUSTER_KEEP_LOGS keeps it and says where.
func TestFinishLogs(t *testing.T) {
	mkdir := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "rotorkube-x-logs")
		pod := filepath.Join(dir, "pods", "lab_server-1_uid", "server")
		if err := os.MkdirAll(pod, 0o755); err != nil {
			t.Fatal(err)
		}
		var apiserver strings.Builder
		for i := range 100 {
			fmt.Fprintf(&apiserver, "apiserver line %d\n", i)
		}
		for path, text := range map[string]string{
			filepath.Join(dir, "kube-apiserver.log"): apiserver.String(),
			filepath.Join(pod, "0.log"):              "serving\nthe last call\n",
			filepath.Join(dir, "apiserver.crt"):      "not a log",
		} {
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	gone := func(t *testing.T, dir string) {
		t.Helper()
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the cluster's directory is still there (stat: %v); want it removed", err)
		}
	}

	t.Run("passed", func(t *testing.T) {
		dir, r := mkdir(t), &recordingTB{TB: t}
		finishLogs(r, dir, false)
		gone(t, dir)
		if len(r.logs)+len(r.errs) > 0 {
			t.Errorf("a passed test logged %q, errors %q; want nothing", r.logs, r.errs)
		}
	})
	t.Run("failed", func(t *testing.T) {
		dir, r := mkdir(t), &recordingTB{TB: t, failed: true}
		finishLogs(r, dir, false)
		gone(t, dir)
		if len(r.logs) != 1 || len(r.errs) > 0 {
			t.Fatalf("a failed test logged %q, errors %q; want one log", r.logs, r.errs)
		}
		log := r.logs[0]
		for _, want := range []string{
			"--- last lines of kube-apiserver.log ---\napiserver line 80\n",
			"apiserver line 99\n",
			"--- last lines of " + filepath.Join("pods", "lab_server-1_uid", "server", "0.log") + " ---\nserving\nthe last call\n",
			KeepLogsEnv,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("the failed test's log lacks %q:\n%s", want, log)
			}
		}
		for _, not := range []string{"apiserver line 79\n", "not a log", dir} {
			if strings.Contains(log, not) {
				t.Errorf("the failed test's log has %q, which it should leave out:\n%s", not, log)
			}
		}
	})
	t.Run("failed, many logs", func(t *testing.T) {
		dir, r := mkdir(t), &recordingTB{TB: t, failed: true}
		line := strings.Repeat("x", 99) + "\n"
		for i := range 200 { // 200 logs of 2 KB: more than failedLogBytes
			pod := filepath.Join(dir, "pods", fmt.Sprintf("lab_client-%03d_uid", i), "client")
			if err := os.MkdirAll(pod, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pod, "0.log"), []byte(strings.Repeat(line, 20)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		finishLogs(r, dir, false)
		gone(t, dir)
		if len(r.logs) != 1 {
			t.Fatalf("a failed test logged %d times; want once", len(r.logs))
		}
		log := r.logs[0]
		if len(log) > failedLogBytes+8<<10 {
			t.Errorf("a failed test logged %d bytes; want about %d at most", len(log), failedLogBytes)
		}
		if !strings.Contains(log, "more logs, past") || !strings.Contains(log, filepath.Join("pods", "lab_client-199_uid", "client", "0.log")) {
			t.Errorf("the log past the cap does not name the logs it leaves out:\n%s", log[len(log)-min(len(log), 2000):])
		}
	})
	t.Run("kept", func(t *testing.T) {
		dir, r := mkdir(t), &recordingTB{TB: t, failed: true}
		finishLogs(r, dir, true)
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver.log")); err != nil {
			t.Errorf("with %s the log is gone: %v", KeepLogsEnv, err)
		}
		if len(r.logs) != 1 || !strings.Contains(r.logs[0], dir) {
			t.Errorf("with %s the test logged %q; want one line naming %s", KeepLogsEnv, r.logs, dir)
		}
	})
}

// TestKeepLogsSet checks which values of KeepLogsEnv keep a test's
// cluster directory: any but "" ("0" too), and not an unset variable.
func TestKeepLogsSet(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{{"", false}, {"1", true}, {"0", true}, {"yes", true}} {
		t.Setenv(KeepLogsEnv, tc.value)
		if got := keepLogsSet(); got != tc.want {
			t.Errorf("%s=%q: keepLogsSet() = %v, want %v", KeepLogsEnv, tc.value, got, tc.want)
		}
	}
	os.Unsetenv(KeepLogsEnv) // t.Setenv restores it after the test
	if keepLogsSet() {
		t.Errorf("%s unset: keepLogsSet() = true, want false", KeepLogsEnv)
	}
}
