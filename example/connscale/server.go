package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/internal/cputime"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// A memSample is what the server process holds, after a garbage collection
// that returned free memory to the OS.
type memSample struct {
	RSS        int64  `json:"rss"`        // VmRSS, bytes
	HeapInuse  uint64 `json:"heap_inuse"` // MemStats.HeapInuse, bytes
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"` // open connections
}

// serverReply answers every server command; a field a command does not set
// is zero. Connections are counted only by "mem" and "conns".
type serverReply struct {
	childErr
	Addr  string    `json:"addr,omitempty"`  // first line: the gRPC address
	Admin string    `json:"admin,omitempty"` // first line: rotor's admin address
	Mem   memSample `json:"mem,omitzero"`
	// CPU is the process's user and system time so far (getrusage).
	CPU   time.Duration `json:"cpu,omitempty"`
	Conns int           `json:"conns,omitempty"` // open connections (sockets other than the listeners)
	// Rotor only: the Observer's counts since start, and Server.Stats.
	Opened   int64        `json:"opened,omitempty"`
	Draining int64        `json:"draining,omitempty"` // connections sent GOAWAY
	Stats    server.Stats `json:"stats,omitzero"`
}

// countObserver counts rotor's connection events. It costs a connection
// nothing: rotor calls an Observer (nopObserver when none is given) either
// way, and a deployment gives it one for metrics.
type countObserver struct {
	opened, draining atomic.Int64
}

func (o *countObserver) ConnOpened()                              { o.opened.Add(1) }
func (o *countObserver) ConnDraining(string)                      { o.draining.Add(1) }
func (o *countObserver) ConnClosed(string, time.Duration, uint64) {}

// startServer starts the server child's gRPC server on a loopback port,
// and returns its command handler and its first answer, the addresses.
//
// The server is handed the listener as it is: grpc-go reads a bare
// *net.TCPConn without a buffer of its own (rotor's connections offer the
// same path), so a counting wrapper around the connections would change
// what they cost. Connections are counted as open sockets instead.
func startServer(spec childSpec) (func(request) any, any, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	svc := &hello.Service{Name: spec.Mode}
	first := serverReply{Addr: lis.Addr().String()}
	var (
		srv *server.Server
		obs = &countObserver{}
	)
	switch spec.Mode {
	case "plain":
		// MaxConnectionAge Off for the memory runs, so that both servers
		// hold the same connections; grpc-go's own age rotation for the
		// age runs.
		cfg := server.DefaultConfig()
		cfg.MaxConnectionAge = spec.Age
		opts, err := cfg.ServerOptions()
		if err != nil {
			return nil, nil, err
		}
		gs := grpc.NewServer(opts...)
		hellov1.RegisterHelloServer(gs, svc)
		go func() { _ = gs.Serve(lis) }()
	case "rotor":
		srv, err = server.New(
			server.WithMaxConnectionAge(spec.Age),
			server.WithObserver(obs),
			server.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		)
		if err != nil {
			return nil, nil, err
		}
		hellov1.RegisterHelloServer(srv, svc)
		go func() { _ = srv.Serve(lis) }()
		admin, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		hs := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(admin) }()
		first.Admin = admin.Addr().String()
	default:
		return nil, nil, fmt.Errorf("unknown server mode %q", spec.Mode)
	}
	// Every socket open now is the server's own (its listeners): the rest
	// are connections.
	baseSockets, err := openSockets()
	if err != nil {
		return nil, nil, err
	}
	conns := func() int {
		n, err := openSockets()
		if err != nil {
			return -1
		}
		return n - baseSockets
	}
	return func(req request) any {
		switch req.Cmd {
		case "mem":
			m, err := measureMem()
			m.Conns = conns()
			return serverReply{childErr: errOf(err), Mem: m}
		case "stats":
			r := serverReply{CPU: cputime.Process(), Opened: obs.opened.Load(), Draining: obs.draining.Load()}
			if srv != nil {
				r.Stats = srv.Stats()
			}
			return r
		case "conns":
			return serverReply{Conns: conns()}
		case "heap":
			return serverReply{childErr: errOf(writeHeapProfile(req.Path))}
		case "cpuprofile":
			return serverReply{childErr: errOf(cpuProfile(req.Path))}
		}
		return serverReply{childErr: childErr{Err: fmt.Sprintf("unknown command %q", req.Cmd)}}
	}, first, nil
}

// measureMem collects garbage, returns free memory to the OS, and reads
// what the process holds.
func measureMem() (memSample, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := vmRSS()
	return memSample{
		RSS:        rss,
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		Goroutines: runtime.NumGoroutine(),
	}, err
}

// vmRSS returns the process's resident set, from /proc/self/status.
func vmRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v) // "123456 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("/proc/self/status: VmRSS is %q", v)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("/proc/self/status has no VmRSS")
}

// openSockets counts the process's open sockets: one readlink per open
// descriptor, so it is not for a CPU window.
func openSockets() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if l, err := os.Readlink("/proc/self/fd/" + name); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuProfile starts a CPU profile into path, or, with an empty path, stops
// the one running.
func cpuProfile(path string) error {
	if path == "" {
		pprof.StopCPUProfile()
		return cpuProfileFile.Close()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	cpuProfileFile = f
	return nil
}

var cpuProfileFile *os.File // the running CPU profile's

func errOf(err error) childErr {
	if err == nil {
		return childErr{}
	}
	return childErr{Err: err.Error()}
}
