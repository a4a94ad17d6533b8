package kubelab

import (
	"net/netip"
	"testing"
)

// TestAddressPlanHoldsAFleet checks that every pod slot has an address of
// its own on the bridge's subnet that no other party of the lab uses, and
// that there are slots for a fleet of 220 pods (example/balance's fleet
// scenario scales 200 → 220).
func TestAddressPlanHoldsAFleet(t *testing.T) {
	const fleet = 220
	if maxPodSlots < fleet {
		t.Fatalf("the lab has %d pod addresses, want at least %d", maxPodSlots, fleet)
	}
	subnet := netip.PrefixFrom(bridgeAddr, subnetBits).Masked()
	last := subnet.Addr().As4()
	for i := subnetBits / 8; i < 4; i++ {
		last[i] |= 0xff >> max(subnetBits-8*i, 0)
	}
	taken := map[netip.Addr]string{
		subnet.Addr():         "the network address",
		netip.AddrFrom4(last): "the broadcast address",
		bridgeAddr:            "the bridge (DNS server)",
		clientAddr:            "the client namespace",
		l7Addr:                "nginx",
	}
	for slot := range maxPodSlots {
		a := podAddr(slot)
		if !subnet.Contains(a) {
			t.Fatalf("slot %d: %s is outside the bridge's subnet %s", slot, a, subnet)
		}
		if who, ok := taken[a]; ok {
			t.Fatalf("slot %d: %s is already %s", slot, a, who)
		}
		taken[a] = "a pod's"
	}
	if clusterIP.IsValid() && subnet.Contains(clusterIP) {
		t.Errorf("the ClusterIP %s is on the pods' subnet %s", clusterIP, subnet)
	}
}
