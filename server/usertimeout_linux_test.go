package server

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The kit's accepted connections carry TCP_USER_TIMEOUT = KeepaliveTimeout,
// as plain grpc-go's do, unless keepalive is off.
func TestAcceptSetsTCPUserTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want int // ms
	}{
		{"defaults", nil, 20000},
		{"KeepaliveTimeout 5s", []Option{WithConfig(Config{KeepaliveTimeout: 5 * time.Second})}, 5000},
		{"keepalive off", []Option{WithConfig(Config{KeepaliveTime: Off})}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			client, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			raw, err := lis.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if s.admit(raw) == nil {
				t.Fatal("connection refused")
			}
			rc, err := raw.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var got int
			var gerr error
			if err := rc.Control(func(fd uintptr) {
				got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
			}); err != nil || gerr != nil {
				t.Fatal(err, gerr)
			}
			if got != tc.want {
				t.Errorf("TCP_USER_TIMEOUT = %d ms, want %d", got, tc.want)
			}
		})
	}
}
