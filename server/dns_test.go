package server_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// testDNS is a tiny DNS server on loopback that answers A queries for one
// name with a list the test changes, as a headless Service's DNS does when
// pods come and go, over UDP and, for answers UDP cannot carry (hundreds of
// pods), TCP on the same port. (The lab tests use a real dnsmasq.)
type testDNS struct {
	name string
	conn *net.UDPConn
	tcp  net.Listener
	mu   sync.Mutex
	ips  []netip.Addr
}

func startDNS(t testing.TB, name string, ips ...string) *testDNS {
	t.Helper()
	// The kernel picks a UDP port free for UDP; the same port may be taken
	// for TCP (a connection's local port): then another. A fleet benchmark
	// run after another once found it taken, and skipped.
	var conn *net.UDPConn
	var tcp net.Listener
	for try := 1; ; try++ {
		var err error
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		tcp, err = net.Listen("tcp", conn.LocalAddr().String())
		if err == nil {
			break
		}
		conn.Close()
		if !errors.Is(err, syscall.EADDRINUSE) || try == 20 {
			t.Fatalf("no TCP listener on the DNS server's UDP port (try %d of 20): %v", try, err)
		}
	}
	d := &testDNS{name: strings.TrimSuffix(name, ".") + ".", conn: conn, tcp: tcp}
	d.set(ips...)
	go d.serve()
	go d.serveTCP()
	t.Cleanup(func() {
		conn.Close()
		tcp.Close()
	})
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

// maxUDPAnswer is the largest answer sent over UDP; a larger one is sent
// truncated, and the client asks again over TCP, as with a real server.
const maxUDPAnswer = 512

func (d *testDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n], maxUDPAnswer); out != nil {
			_, _ = d.conn.WriteToUDP(out, from)
		}
	}
}

// serveTCP answers queries over TCP: each message has a 2-byte length.
func (d *testDNS) serveTCP() {
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var n [2]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out := d.answer(msg, 1<<16-1)
				if out == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer packs the answer to query, truncated (no records, TC set) if it
// would be larger than limit; nil for a query it cannot read.
func (d *testDNS) answer(query []byte, limit int) []byte {
	var req dnsmessage.Message
	if req.Unpack(query) != nil || len(req.Questions) != 1 {
		return nil
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
	if err != nil {
		return nil
	}
	if len(out) > limit {
		resp.Answers, resp.Truncated = nil, true
		if out, err = resp.Pack(); err != nil {
			return nil
		}
	}
	return out
}
