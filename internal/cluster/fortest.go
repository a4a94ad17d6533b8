package cluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// KeepLogsEnv is the environment variable that, set to anything but "",
// makes NewForTest keep the cluster's directory, its logs whole, after the
// test: under Dir, /tmp/rotorkube-*-logs, which nothing removes then.
const KeepLogsEnv = "ROTOR_CLUSTER_KEEP_LOGS"

// keepLogsSet reports whether KeepLogsEnv is set to anything but "".
func keepLogsSet() bool { return os.Getenv(KeepLogsEnv) != "" }

// failedLogLines is how many of a log's last lines NewForTest prints when
// the test failed, enough for the error a component or pod ended with;
// failedLogBytes bounds what it prints in all (TestRealCluster's cluster
// has about 35 logs); the logs past it are named only.
const (
	failedLogLines = 20
	failedLogBytes = 128 << 10
)

// NewForTest starts a cluster as New does, failing t if it cannot, and
// closes it when the test ends. The test removes what it made, also when
// it fails: when it failed it first logs the last failedLogLines lines of
// every component's and pod's log (Dir's *.log files, PodLogDir's
// included). With KeepLogsEnv set it keeps the directory instead and logs
// where it is. A cluster that fails to start fails t with New's error,
// which names the failed component and quotes the end of its log, and is
// removed too; with KeepLogsEnv set it is kept, and the error says where.
func NewForTest(ctx context.Context, t testing.TB, cfg Config) *Cluster {
	t.Helper()
	keep := keepLogsSet()
	c, err := newForTest(ctx, cfg, keep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		finishLogs(t, c.Dir(), keep)
	})
	return c
}

// newForTest starts NewForTest's cluster, its logs kept by Close. When it
// fails to start, its directory is removed, unless keep (KeepLogsEnv),
// and then the error says where it is.
func newForTest(ctx context.Context, cfg Config, keep bool) (*Cluster, error) {
	cfg.KeepLogs = true
	c, err := newCluster(ctx, cfg)
	if err == nil || c == nil {
		return c, err
	}
	if keep {
		return nil, withKeptLogs(err, c.Dir())
	}
	if rmErr := os.RemoveAll(c.Dir()); rmErr != nil {
		err = fmt.Errorf("%w; removing the cluster's directory: %w", err, rmErr)
	}
	return nil, err
}

// finishLogs ends a test's cluster directory dir, which Close kept: with
// keep it stays, and t logs where; otherwise, when t failed, t logs the
// tail of each *.log file under dir, in path order, named relative to dir;
// then dir is removed. A failure to remove it fails t.
func finishLogs(t testing.TB, dir string, keep bool) {
	if keep {
		t.Logf("the components' and pods' logs are in %s (%s is set; rm -r it after)", dir, KeepLogsEnv)
		return
	}
	if t.Failed() {
		var b strings.Builder
		var unshown []string
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
				return nil
			}
			rel, _ := filepath.Rel(dir, path)
			if b.Len() >= failedLogBytes {
				unshown = append(unshown, rel)
				return nil
			}
			b.WriteString("--- last lines of " + rel + " ---\n" + tail(path, failedLogLines) + "\n")
			return nil
		})
		if len(unshown) > 0 {
			fmt.Fprintf(&b, "--- %d more logs, past %d KiB: %s ---\n", len(unshown), failedLogBytes>>10, strings.Join(unshown, ", "))
		}
		if b.Len() == 0 {
			b.WriteString("(no logs)\n")
		}
		t.Logf("the test failed; the cluster's logs, which are removed now (set %s=1 to keep them whole):\n%s", KeepLogsEnv, b.String())
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing the cluster's directory: %v", err)
	}
}
