package interceptors

import (
	"net"
	"testing"
)

func TestAddrString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 50051}, // 16-byte form
		&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 1},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
		&net.TCPAddr{IP: net.IPv6loopback, Port: 0},
		&net.UnixAddr{Name: "/run/app.sock", Net: "unix"},
		// The unusual ones take a.String() itself.
		&net.TCPAddr{Port: 80},
		&net.TCPAddr{IP: net.IP{1, 2, 3}, Port: 80},
		&net.TCPAddr{IP: net.IP{1, 2, 3, 4}, Port: 70000},
		&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 80, Zone: "eth0"},
		(*net.TCPAddr)(nil),
	} {
		if got, want := addrString(a), a.String(); got != want {
			t.Errorf("addrString(%#v) = %q, want %q (net.Addr.String)", a, got, want)
		}
	}
}
