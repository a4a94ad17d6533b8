package nodeagent

import (
	"fmt"
	"net/netip"
)

// ipam hands out pod addresses from the node's podCIDR the way CNI's
// host-local plugin does: in order, continuing after the last address
// given rather than reusing a freed one at once, so that connections
// tracked to a deleted pod are not sent to a new pod at the same address.
// The network and broadcast addresses are never given. Not safe for
// concurrent use.
type ipam struct {
	prefix netip.Prefix
	used   map[netip.Addr]bool
	last   netip.Addr
}

func newIPAM(prefix netip.Prefix) (*ipam, error) {
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("nodeagent: pod CIDR %v: want an IPv4 prefix of /30 or larger", prefix)
	}
	prefix = prefix.Masked()
	return &ipam{prefix: prefix, used: map[netip.Addr]bool{}, last: prefix.Addr()}, nil
}

// allocate returns the next free address after the last one given.
func (p *ipam) allocate() (netip.Addr, error) {
	a := p.last
	for range 1 << (32 - p.prefix.Bits()) {
		a = a.Next()
		if !p.prefix.Contains(a.Next()) { // the broadcast address: wrap
			a = p.prefix.Addr().Next()
		}
		if !p.used[a] {
			p.used[a] = true
			p.last = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("nodeagent: no free address left in the pod CIDR %v", p.prefix)
}

// release makes an address free again.
func (p *ipam) release(a netip.Addr) { delete(p.used, a) }
