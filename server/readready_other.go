//go:build !linux

package server

// readOnReady is false off Linux, where grpc-go (1.85) does not read a bare
// *net.TCPConn by readiness either: each connection keeps a read buffer of
// its own, as with plain grpc-go.
const readOnReady = false
