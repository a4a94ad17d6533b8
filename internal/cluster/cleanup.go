package cluster

import (
	"context"

	"github.com/rotorkit/rotor/internal/netns"
)

// labs names every namespace, /etc/netns entry and directory a cluster
// makes after the process that owns it: "rotorkube-<pid>-<6 hex>[-<role>]".
var labs = netns.NewLabs("rotorkube-")

// Leftovers returns the names of cluster namespaces and /etc/netns entries
// whose owner process is gone: clusters of runs that crashed or were killed
// before Close.
func Leftovers() ([]string, error) { return labs.Leftovers() }

// CleanStale removes the clusters whose owner process is gone (see
// Leftovers): it kills what still runs in their namespaces (the components
// normally died with their owner), deletes the namespaces and their
// /etc/netns entries, and removes their directories under os.TempDir()
// (not under another Config.TempDir), but not the logs Config.KeepLogs
// kept (their names end in "-logs"). Clusters of running processes,
// this one's included, are left alone. It returns the names removed and
// the directories' paths. Owners are looked up by PID, so clusters made in
// another PID namespace sharing /run/netns would look stale: do not share
// /run/netns between containers that run clusters.
func CleanStale(ctx context.Context) ([]string, error) { return labs.CleanStale(ctx) }
