// Package reasons is the one list of why rotor ends a connection: the
// reasons it sends GOAWAY for, the reason of a close it did not start, and
// the reasons it refuses a connection at accept. Package server exports them
// as server.Reason values; package interceptors, which must not import
// server, creates its metric series from the same list.
package reasons

// Why the kit sent a connection GOAWAY.
const (
	Age       = "age"       // the connection reached Config.MaxConnectionAge
	API       = "api"       // a program called Server.Rotate
	Admin     = "admin"     // an operator asked through POST /rotate
	Signal    = "signal"    // the process received SIGHUP
	Peers     = "peers"     // the peer watcher saw the set of pods grow
	FairShare = "fairshare" // fair-share balancing shed the connection, or sent a new one on (admission)
	Shutdown  = "shutdown"  // the server began draining
	LameDuck  = "lameduck"  // a connection accepted while the server drains
)

// Client labels a connection that ended without a GOAWAY from the kit: the
// client closed it, the network broke, or grpc-go closed it (idle or
// keepalive timeout).
const Client = "client"

// MaxConnections is why a connection was refused at accept:
// Config.MaxConnections were open.
const MaxConnections = "max_connections"

// Rotation lists every GOAWAY reason above, in a stable order.
var Rotation = []string{Age, API, Admin, Signal, Peers, FairShare, Shutdown, LameDuck}

// Refusal lists every refusal reason.
var Refusal = []string{MaxConnections}
