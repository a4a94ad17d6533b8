package testkit

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddr's port must be one the kernel never hands out by itself, so
// that no other connection or :0 listener can take it before the process
// the test starts binds it.
func TestFreeAddrAvoidsTheEphemeralRange(t *testing.T) {
	lo := ephemeralStart()
	if lo-freePortFloor < 1000 {
		t.Skipf("the ephemeral range starts at %d: FreeAddr leaves the port to the kernel here", lo)
	}
	seen := map[string]bool{}
	for range 50 {
		addr := FreeAddr(t)
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if p < freePortFloor || p >= lo {
			t.Fatalf("FreeAddr gave %s; want a port in [%d, %d), below the ephemeral range", addr, freePortFloor, lo)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which cannot be bound: %v", addr, err)
		}
		l.Close()
		seen[addr] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 FreeAddr calls gave only %d distinct ports; want them spread at random", len(seen))
	}
}
