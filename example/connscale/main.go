package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := connscale(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "connscale:", err)
		os.Exit(1)
	}
}

// connscale parses args, runs the measurements and prints the report to
// stdout; progress goes to stderr.
func connscale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("connscale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.N, "n", cfg.N, "client connections")
	fs.IntVar(&cfg.PerClient, "per-client", cfg.PerClient, "most connections one client process holds (at most 9000: a process may open 20,000 files)")
	fs.IntVar(&cfg.Sources, "sources", cfg.Sources, "loopback source addresses the clients dial from, 127.0.0.2 and up")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "wait after connecting, before the idle measurement")
	fs.DurationVar(&cfg.Warm, "warm", cfg.Warm, "calls run this long before the 1 call/s memory measurement")
	fs.DurationVar(&cfg.CPUWindow, "cpu-window", cfg.CPUWindow, "server CPU is measured over this window")
	fs.DurationVar(&cfg.Spread, "spread", cfg.Spread, "the mass rotate's spread")
	fs.Func("ages", "comma-separated MaxConnectionAge of each age-rotation run of rotor; empty for none (default 30s,5m)", durations(&cfg.Ages))
	fs.Func("plain-ages", "the same for plain grpc-go's own MaxConnectionAge, for reference (default 30s)", durations(&cfg.PlainAges))
	fs.IntVar(&cfg.Bursts, "bursts", cfg.Bursts, "mass reconnect rounds per server; the median counts")
	fs.IntVar(&cfg.Readings, "readings", cfg.Readings, "memory readings per measurement, 1 s apart (each after runtime.GC and debug.FreeOSMemory); the median counts")
	fs.StringVar(&cfg.Profiles, "heap-profiles", "", "write each memory server's heap profiles at the idle and the 1 call/s measurement to this directory")
	fs.StringVar(&cfg.CPUProfiles, "cpu-profiles", "", "write CPU profiles of the servers over their CPU windows and first mass reconnect to this directory (profiling costs CPU: not for a run whose figures count)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	rep, err := run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	rep.write(stdout)
	return nil
}

// durations parses a flag's comma-separated durations into dst.
func durations(dst *[]time.Duration) func(string) error {
	return func(s string) error {
		*dst = nil
		for f := range strings.SplitSeq(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			d, err := time.ParseDuration(f)
			if err != nil {
				return err
			}
			*dst = append(*dst, d)
		}
		return nil
	}
}
