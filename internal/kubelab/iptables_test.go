package kubelab

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// The expected names are the chains kube-proxy creates in real clusters (the
// API server and kube-dns Services) and in kube-proxy's own tests.
func TestChainNamesMatchKubeProxy(t *testing.T) {
	tests := []struct {
		portName, protocol, endpoint, want string
	}{
		{"default/kubernetes:https", "tcp", "", "KUBE-SVC-NPX46M4PTMTKRN6Y"},
		{"kube-system/kube-dns:dns", "udp", "", "KUBE-SVC-TCOU7JCQXEZGVUNU"},
		{"kube-system/kube-dns:dns-tcp", "tcp", "", "KUBE-SVC-ERIFXISQEP7F7OF4"},
		{"kube-system/kube-dns:metrics", "tcp", "", "KUBE-SVC-JD5MR3NA4I4DYORP"},
		{"ns1/svc1:p80", "tcp", "", "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{"ns1/svc1:p80", "tcp", "10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ"},
	}
	for _, tt := range tests {
		got := svcChainName(tt.portName, tt.protocol)
		if tt.endpoint != "" {
			got = sepChainName(tt.portName, tt.protocol, tt.endpoint)
		}
		if got != tt.want {
			t.Errorf("chain for %s %s %s = %s, want %s", tt.portName, tt.protocol, tt.endpoint, got, tt.want)
		}
	}
}

func TestRenderRules(t *testing.T) {
	ports := []ServicePort{{Name: "grpc", Port: 50051}, {Name: "http", Port: 8080}}
	addrs := func(s ...string) []netip.Addr {
		var a []netip.Addr
		for _, x := range s {
			a = append(a, netip.MustParseAddr(x))
		}
		return a
	}
	rules := func(eps []netip.Addr) serviceRules {
		return serviceRules{namespace: "lab", service: "hello", clusterIP: clusterIP, ports: ports, endpoints: eps}
	}
	grpcSvc := svcChainName("lab/hello:grpc", "tcp")

	t.Run("three endpoints", func(t *testing.T) {
		input, chains := rules(addrs("198.18.0.12", "198.18.0.10", "198.18.0.11")).render(nil)
		svcRules := regexp.MustCompile(`(?m)^-A `+grpcSvc+` .*$`).FindAllString(input, -1)
		if len(svcRules) != 3 {
			t.Fatalf("want 3 rules in %s, got:\n%s", grpcSvc, input)
		}
		wantProb := []string{"--probability 0.3333333333 ", "--probability 0.5000000000 ", ""}
		wantEP := []string{"198.18.0.10:50051", "198.18.0.11:50051", "198.18.0.12:50051"}
		for i, rule := range svcRules {
			if wantProb[i] == "" && strings.Contains(rule, "statistic") {
				t.Errorf("last rule must be unconditional: %s", rule)
			}
			if !strings.Contains(rule, wantProb[i]) || !strings.Contains(rule, "-> "+wantEP[i]) {
				t.Errorf("rule %d = %s, want %q and endpoint %s", i, rule, wantProb[i], wantEP[i])
			}
		}
		sep := sepChainName("lab/hello:grpc", "tcp", "198.18.0.11:50051")
		if !strings.Contains(input, "-A "+sep+` -m comment --comment lab/hello:grpc -m tcp -p tcp -j DNAT --to-destination 198.18.0.11:50051`) {
			t.Errorf("no DNAT rule in %s:\n%s", sep, input)
		}
		if !strings.Contains(input, `-A KUBE-SERVICES -m comment --comment "lab/hello:http cluster IP" -m tcp -p tcp -d 198.19.0.10/32 --dport 8080 -j KUBE-SVC-`) {
			t.Errorf("no KUBE-SERVICES rule for the http port:\n%s", input)
		}
		if len(chains) != 1+2*(1+3) {
			t.Errorf("chains = %v, want KUBE-SERVICES and per port one KUBE-SVC and three KUBE-SEP", chains)
		}
		if strings.Contains(input, "REJECT") || strings.Contains(input, "-X") {
			t.Errorf("unexpected REJECT or -X:\n%s", input)
		}
	})

	t.Run("scale down deletes stale chains in the same transaction", func(t *testing.T) {
		_, before := rules(addrs("198.18.0.10", "198.18.0.11")).render(nil)
		input, after := rules(addrs("198.18.0.10")).render(before)
		stale := sepChainName("lab/hello:grpc", "tcp", "198.18.0.11:50051")
		if !strings.Contains(input, ":"+stale+" - [0:0]\n") || !strings.Contains(input, "-X "+stale+"\n") {
			t.Errorf("stale chain %s not flushed and deleted:\n%s", stale, input)
		}
		for _, c := range after {
			if c == stale {
				t.Errorf("stale chain %s still listed as active", c)
			}
		}
		if strings.Count(input, "COMMIT") != 2 {
			t.Errorf("want one filter and one nat transaction:\n%s", input)
		}
	})

	t.Run("no endpoints rejects", func(t *testing.T) {
		_, before := rules(addrs("198.18.0.10")).render(nil)
		input, after := rules(nil).render(before)
		if got := strings.Count(input, "-j REJECT"); got != 2 {
			t.Errorf("want a REJECT rule per port, got %d:\n%s", got, input)
		}
		if strings.Contains(input, "-j "+grpcSvc) || !strings.Contains(input, "-X "+grpcSvc) {
			t.Errorf("the KUBE-SVC chain must be unhooked and deleted:\n%s", input)
		}
		if len(after) != 1 || after[0] != servicesChain {
			t.Errorf("chains = %v, want only %s", after, servicesChain)
		}
	})
}

func TestProbabilityFormat(t *testing.T) {
	for n, want := range map[int]string{2: "0.5000000000", 3: "0.3333333333", 4: "0.2500000000", 7: "0.1428571429"} {
		if got := probability(n); got != want {
			t.Errorf("probability(%d) = %s, want %s", n, got, want)
		}
	}
}
