package kubelab

import (
	"fmt"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// startProcess runs path with args inside the namespace ns via "ip netns
// exec", which execs the program so the child's PID is the program's own.
// Its stdout and stderr go to logPath.
func startProcess(ns, name, logPath string, env []string, path string, args ...string) (*proc.Process, error) {
	argv, err := netns.ExecArgs(ns, path, args...)
	if err != nil {
		return nil, err
	}
	p, err := proc.Start(proc.Spec{
		Name: name, Argv: argv, Env: env, LogPath: logPath,
		// If the owner dies without Close, its children die with it rather
		// than linger in namespaces nobody owns; CleanStale then removes the
		// rest.
		DieWithParent: true,
	})
	if err != nil {
		return nil, fmt.Errorf("kubelab: %w", err)
	}
	return p, nil
}
