package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/rotorkit/rotor/server"
)

// The peer watcher rotates every connection when an address joins the
// headless Service, and not when one leaves.
func TestPeerWatcherRotatesOnGrowth(t *testing.T) {
	dns := startDNS(t, "pods.test", "198.18.0.10", "198.18.0.11")
	cfg := noAge()
	cfg.RotateSpread = server.Off
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithObserver(ev),
		server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", 100*time.Millisecond))
	connect(t, addr, cfg, 3)
	waitPeers := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for len(srv.Peers()) != n {
			if time.Now().After(deadline) {
				t.Fatalf("peers = %v, want %d", srv.Peers(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPeers(2)
	dns.set("198.18.0.10") // a pod leaves: nothing to do
	waitPeers(1)
	time.Sleep(300 * time.Millisecond)
	if n := ev.drained("peers"); n != 0 {
		t.Fatalf("%d connections rotated when a peer left, want 0", n)
	}
	time.Sleep(server.DefaultRotateMinAge)               // rotations leave younger connections alone
	dns.set("198.18.0.10", "198.18.0.12", "198.18.0.13") // scale-up
	ev.waitFor(t, 5*time.Second, "3 connections rotated for reason peers", func() bool { return ev.drained("peers") == 3 })
}

// A peer name that never resolves (a typo, a headless Service that does not
// exist) is logged once it has not resolved for the wait since the server
// started, and only once, naming it; a name that resolves is not, nor one
// that resolved and then stopped (that one has its own warning). Before,
// only the last was logged. It swaps a package variable: it must not run
// in parallel with another test.
func TestPeerWatcherWarnsOfANameThatNeverResolves(t *testing.T) {
	const wait = 500 * time.Millisecond
	t.Cleanup(server.SetPeerNeverResolvedAfter(wait))
	for _, c := range []struct {
		name      string
		gone      bool // the name resolves at first, then no longer
		warnNever bool
	}{{"typo.test", false, true}, {"pods.test", false, false}, {"pods.test", true, false}} {
		t.Run(fmt.Sprintf("%s,gone=%v", c.name, c.gone), func(t *testing.T) {
			dns := startDNS(t, "pods.test", "198.18.0.10")
			stopped := &recordsOf{Handler: slog.NewTextHandler(io.Discard, nil), msg: "peer watcher cannot resolve its name", records: make(chan map[string]slog.Value, 4)}
			never := &recordsOf{Handler: stopped, msg: "peer watcher has not resolved its name", records: make(chan map[string]slog.Value, 4)}
			began := time.Now()
			_, srv := start(t, svc("a"), server.WithConfig(noAge()), server.WithLogger(slog.New(never)),
				server.WithPeerDNS("dns://"+dns.addr()+"/"+c.name, 100*time.Millisecond))
			if !c.warnNever {
				deadline := time.Now().Add(5 * time.Second)
				for !slices.Equal(srv.Peers(), []string{"198.18.0.10"}) {
					if time.Now().After(deadline) {
						t.Fatalf("peers %v 5 s after the start, want [198.18.0.10]", srv.Peers())
					}
					time.Sleep(20 * time.Millisecond)
				}
				if c.gone {
					dns.set() // resolves to no address: a failed lookup
					select {
					case <-stopped.records:
					case <-time.After(5 * time.Second):
						t.Errorf("no warning 5 s after the name stopped resolving")
					}
				}
				time.Sleep(2 * wait)
				if len(never.records) != 0 {
					t.Errorf("warned that %s never resolved; it did", c.name)
				}
				return
			}
			select {
			case attrs := <-never.records:
				if since := time.Since(began); since < wait {
					t.Errorf("warned %v after the start, before the %v wait", since, wait)
				}
				if got := attrs["name"].String(); got != c.name {
					t.Errorf("the warning names %q, want %q", got, c.name)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no warning 5 s after the start for a peer name that never resolves")
			}
			time.Sleep(2 * wait)
			if n := len(never.records); n != 0 {
				t.Errorf("warned %d more times; want once", n)
			}
		})
	}
}

func TestPeerDNSValidation(t *testing.T) {
	for _, target := range []string{"dns://1.2.3.4/", "http://x/y", "a b", "dns://1.2.3.4/a/b"} {
		if _, err := server.New(server.WithPeerDNS(target, 0)); err == nil {
			t.Errorf("WithPeerDNS(%q) accepted", target)
		}
	}
	for _, target := range []string{"hello-headless", "dns:///hello-headless.ns.svc.cluster.local", "dns://10.96.0.10/h", "dns://10.96.0.10:5353/h"} {
		if _, err := server.New(server.WithPeerDNS(target, 0)); err != nil {
			t.Errorf("WithPeerDNS(%q): %v", target, err)
		}
	}
}

// A Serve that starts after Shutdown began starts no background work: the
// peer watcher never runs.
func TestNoBackgroundWorkAfterShutdown(t *testing.T) {
	dns := startDNS(t, "pods.test", "198.18.0.10")
	srv, err := server.New(server.WithConfig(noAge()), server.WithShutdownDelay(time.Second),
		server.WithPeerDNS("dns://"+dns.addr()+"/pods.test", 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // Shutdown is in its delay
	lis, _ := loopbackListener(t)
	go srv.Serve(lis)
	time.Sleep(500 * time.Millisecond)
	if p := srv.Peers(); p != nil {
		t.Errorf("the peer watcher ran after Shutdown began: peers %v", p)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
