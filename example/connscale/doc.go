// Command connscale measures, in one run, what ten thousand connections cost
// a rotor server ([server.New]) next to a plain grpc-go server
// (grpc.NewServer with [server.Config.ServerOptions]), and how rotor's
// rotation behaves at that scale (issue #16, items 4 and 5). It prints a
// table of per-connection figures and rotor/plain ratios against the
// issue's targets:
//
//	go run ./example/connscale > report.txt                   # N = 10,000; about 14 min
//	go run ./example/connscale -n 2000 -ages 30s -plain-ages "" -cpu-window 20s
//
// # Process layout
//
// A process may hold 20,000 file descriptors, so servers and clients run
// apart: the command starts itself again as the server child (one at a
// time, so that /proc/self/status and getrusage see one server alone) and
// as client children of at most 9,000 connections each. The parent only
// orchestrates, over the children's stdin and stdout (one JSON line each
// way), and stops every child it started, killing it by its PID if it does
// not quit, when it is done or fails. Clients are real grpc-go clients: one
// grpc.ClientConn per connection, insecure, with
// [server.Config.DialOptions], dialling the server on 127.0.0.1 from
// several loopback source addresses (127.0.0.2 and up), so that ephemeral
// ports never run short across the run's reconnects.
//
// The server is handed its listener as it is: grpc-go reads a bare
// *net.TCPConn without a read buffer of its own (and rotor's connections
// offer the same path), so a counting wrapper would change what a
// connection costs. Open connections are counted as the server's sockets;
// rotor's events with a counting [server.Observer], which costs a
// connection nothing.
//
// # What it measures
//
// Both memory servers run with MaxConnectionAge Off, so that no connection
// is rotated while it is measured and the two compare like with like:
//
//  1. Idle: N connections, each having made one Hello.Hi call. The server
//     child collects garbage, returns free memory to the OS
//     (debug.FreeOSMemory) and reads VmRSS, MemStats.HeapInuse and
//     StackInuse, and the goroutine count, -readings times (5) 1 s apart.
//     Each figure is the median of its readings, RSS's and the heap's with
//     their range beside them, and the connections the fewest any reading
//     counted: with one reading, plain's heap at 1 call/s read 11.6 to 13.2
//     KiB a connection in three runs, and five readings within one run
//     spanned 1.9 to 3.2 KiB. The figures before any client connected (one
//     reading)
//     are subtracted and the rest divided by N. The server's idle CPU
//     (keepalive pings) over a third of -cpu-window.
//  2. Active: the same with every connection calling Hi once a second,
//     connection i at i/N of each second, so the load is even, not bursts,
//     and the server's CPU over -cpu-window (getrusage), with the calls the
//     clients managed to make: a host too small for N calls a second
//     makes fewer, and says so.
//  3. Mass reconnect: the clients close every connection; once the server
//     holds none, they create N idle ClientConns and, at one instant, call
//     Connect on all of them. The rate is connections Ready (HTTP/2
//     handshake done) per second, to the first 90 % (the verdict: the
//     server's pace while connections queue) and to the last (which also
//     holds SYNs that the full accept queue dropped and the client's kernel
//     sent again 1 s or 3 s later); -bursts rounds, median.
//  4. Age rotation: rotor with MaxConnectionAge A (-ages, 30 s and 5 min
//     by default) and N connections calling once a second, and plain
//     grpc-go's own MaxConnectionAge for reference (-plain-ages, 30 s). The
//     connections are opened evenly over one age, so that from 1.1 A on
//     (the jitter is ±10 %) they rotate at their steady rate, N/A a second;
//     the server's CPU is measured over -cpu-window from then on. Rotation
//     CPU is that less the same server's idle CPU and its age-Off CPU per
//     call times the calls made, so that a run is not credited with calls
//     the host did not manage; divided by the rotations (the clients' dials)
//     it is a cost per rotation. The verdict scales rotor's cost per
//     rotation from its run with the most rotations, the one least blurred
//     by noise, to N connections every 5 min, and shows the 5-min run's own
//     figure beside it.
//  5. Mass rotate: on the age-Off rotor, while the connections call, POST
//     /rotate?spread=5s to its admin handler: the failed calls from then
//     until 2 s after every connection is back, and the time until every
//     rotated connection was replaced and none was left draining.
//
// Each CPU window also shows the clients' CPU and the rest of the host's
// (from /proc/stat), to tell a quiet run from a disturbed one.
// -heap-profiles DIR writes a heap profile of each memory server at the
// idle and at the 1 call/s measurement (MODE-idle.pprof, MODE-active.pprof),
// and -cpu-profiles DIR CPU profiles of the servers over their windows, for
// go tool pprof (profiling costs CPU itself).
package main
