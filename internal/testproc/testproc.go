// Package testproc holds what rotor's tests need to run real processes (the
// example server, clients in other languages): a free loopback address and a
// buffer that collects a process's output safely while the test reads it.
package testproc

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a process the test is about to start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Buffer collects a process's output; it is safe to read while the process
// writes.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
