package server_test

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// testDNS is a tiny DNS server on loopback that answers A queries for one
// name with a list the test changes, as a headless Service's DNS does when
// pods come and go. (The lab tests use a real dnsmasq.)
type testDNS struct {
	name string
	conn *net.UDPConn
	mu   sync.Mutex
	ips  []netip.Addr
}

func startDNS(t *testing.T, name string, ips ...string) *testDNS {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{name: strings.TrimSuffix(name, ".") + ".", conn: conn}
	d.set(ips...)
	go d.serve()
	t.Cleanup(func() { conn.Close() })
	return d
}

func (d *testDNS) addr() string { return d.conn.LocalAddr().String() }

func (d *testDNS) set(ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ips = d.ips[:0]
	for _, ip := range ips {
		d.ips = append(d.ips, netip.MustParseAddr(ip))
	}
}

func (d *testDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var req dnsmessage.Message
		if req.Unpack(buf[:n]) != nil || len(req.Questions) != 1 {
			continue
		}
		q := req.Questions[0]
		resp := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: req.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess},
			Questions: req.Questions,
		}
		if !strings.EqualFold(q.Name.String(), d.name) {
			resp.RCode = dnsmessage.RCodeNameError
		} else if q.Type == dnsmessage.TypeA {
			d.mu.Lock()
			for _, ip := range d.ips {
				resp.Answers = append(resp.Answers, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET},
					Body:   &dnsmessage.AResource{A: ip.As4()},
				})
			}
			d.mu.Unlock()
		}
		out, err := resp.Pack()
		if err == nil {
			_, _ = d.conn.WriteToUDP(out, from)
		}
	}
}
