// Command node-agent runs the cluster lab's node agent (package
// internal/cluster/nodeagent) for one Node: the harness starts one per
// Node inside the node's network namespace (Cluster.StartNodeAgents),
// with a JSON configuration file.
//
//	node-agent -config node-agent-node-1.json
//
// It logs to stderr, one JSON line per event, and exits on SIGTERM or
// SIGINT, leaving its pods' processes running as a kubelet leaves its
// containers.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	config := flag.String("config", "", "path of the agent's JSON configuration (nodeagent.Config)")
	flag.Parse()
	if *config == "" || flag.NArg() > 0 {
		return fmt.Errorf("usage: node-agent -config FILE")
	}
	cfg, err := nodeagent.ReadConfig(*config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	agent, err := nodeagent.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return agent.Run(ctx)
}
