package server

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT on an accepted TCP connection: the
// kernel then closes it when data it sent stays unacknowledged for d, so
// that a vanished client is found by the keepalive ping's first
// unanswered try, as grpc-go does for the connections it accepts itself
// (with keepalive on, TCP_USER_TIMEOUT = KeepaliveTimeout). grpc-go sets it
// only on a bare *net.TCPConn, and the kit hands it a wrapped connection,
// so the kit sets it at accept. Other connections are left alone.
func setUserTimeout(raw net.Conn, d time.Duration) error {
	tc, ok := raw.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
	if err != nil {
		return err
	}
	return serr
}
