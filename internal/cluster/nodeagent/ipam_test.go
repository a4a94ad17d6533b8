package nodeagent

import (
	"net/netip"
	"testing"
)

func TestIPAMHandsOutInOrderAndWraps(t *testing.T) {
	p, err := newIPAM(netip.MustParsePrefix("10.0.0.0/29")) // .1 to .6 usable
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 6 {
		a, err := p.allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	want := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocations %v, want %v (never the network or broadcast address)", got, want)
		}
	}
	if a, err := p.allocate(); err == nil {
		t.Fatalf("a seventh address %v from a /29; want an error", a)
	}
	// A freed address is not given again at once: the next free one after
	// the last given is, wrapping round.
	p.release(netip.MustParseAddr("10.0.0.2"))
	p.release(netip.MustParseAddr("10.0.0.5"))
	for _, want := range []string{"10.0.0.2", "10.0.0.5"} {
		a, err := p.allocate()
		if err != nil || a.String() != want {
			t.Fatalf("allocate = %v, %v; want %s", a, err, want)
		}
	}
	p.release(netip.MustParseAddr("10.0.0.3"))
	p.release(netip.MustParseAddr("10.0.0.6"))
	if a, _ := p.allocate(); a.String() != "10.0.0.6" {
		t.Fatalf("allocate after freeing .3 and .6 (last given .5) = %v; want 10.0.0.6, the next after the last", a)
	}
}

func TestIPAMRejectsTinyOrIPv6(t *testing.T) {
	for _, p := range []string{"10.0.0.0/31", "fd00::/64"} {
		if _, err := newIPAM(netip.MustParsePrefix(p)); err == nil {
			t.Errorf("newIPAM(%s) succeeded; want an error", p)
		}
	}
}
