package cluster

import (
	"context"
	"os"
	"testing"
)

// NewForTest starts a cluster as New does, failing t if it cannot, and
// closes it when the test ends. It sets Config.KeepLogs: the components'
// and pods' logs stay in Dir for a look when the test fails, or always with
// ROTOR_CLUSTER_KEEP_LOGS set, and are removed when it passes.
func NewForTest(ctx context.Context, t testing.TB, cfg Config) *Cluster {
	t.Helper()
	cfg.KeepLogs = true
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		if t.Failed() || os.Getenv("ROTOR_CLUSTER_KEEP_LOGS") != "" {
			t.Logf("the components' and pods' logs are in %s", c.Dir())
		} else {
			_ = os.RemoveAll(c.Dir())
		}
	})
	return c
}
