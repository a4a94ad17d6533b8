package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// recordConn is a net.Conn that keeps what is written to it.
type recordConn struct {
	net.Conn
	out bytes.Buffer
}

func (r *recordConn) Write(p []byte) (int, error) { return r.out.Write(p) }

// fakeConn has addresses and nothing else.
type fakeConn struct{ net.Conn }

func (fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func quietServer() *Server { return &Server{log: slog.New(slog.DiscardHandler)} }

// frame builds an HTTP/2 frame of type typ on stream with a payload of n
// bytes of pattern.
func frame(typ byte, stream uint32, n int, pattern byte) []byte {
	b := make([]byte, frameHeaderLen+n)
	b[0], b[1], b[2] = byte(n>>16), byte(n>>8), byte(n)
	b[3] = typ
	binary.BigEndian.PutUint32(b[5:], stream)
	for i := frameHeaderLen; i < len(b); i++ {
		b[i] = pattern
	}
	return b
}

// splitFrames parses an HTTP/2 frame stream; ok is false when it does not
// end at a frame boundary.
func splitFrames(b []byte) (frames [][]byte, ok bool) {
	for len(b) > 0 {
		if len(b) < frameHeaderLen {
			return frames, false
		}
		n := frameHeaderLen + (int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
		if len(b) < n {
			return frames, false
		}
		frames, b = append(frames, b[:n]), b[n:]
	}
	return frames, true
}

// FuzzFrameWriter writes a stream of HTTP/2 frames through a frameWriter in
// chunks of random sizes, as grpc-go's buffered writer does, and asks for a
// GOAWAY between two chunks. What reaches the network must be the same
// frames in the same order with exactly one GOAWAY among them, whole, after
// the first frame; a stream that does not begin with SETTINGS (TLS under
// foreign credentials) must pass through untouched.
func FuzzFrameWriter(f *testing.F) {
	f.Add(uint64(1), uint8(5), false)
	f.Add(uint64(2), uint8(0), false)
	f.Add(uint64(3), uint8(40), true)
	f.Add(uint64(4), uint8(255), false)
	f.Fuzz(func(t *testing.T, seed uint64, at uint8, foreign bool) {
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var in []byte
		if foreign {
			in = append(in, 0x16, 0x03, 0x01, 0x00, 0x80) // a TLS record header
		} else {
			in = append(in, frame(frameSettings, 0, 6*rng.IntN(4), 's')...)
		}
		nFrames := 1 + rng.IntN(12)
		for i := range nFrames {
			typ := byte(rng.IntN(10))
			if typ == frameGoAway {
				typ = 0 // DATA: the only GOAWAY must be the kit's
			}
			size := rng.IntN(3) * rng.IntN(20000)
			in = append(in, frame(typ, uint32(2*i+1), size, byte('a'+i))...)
		}
		rc := &recordConn{Conn: fakeConn{}}
		fw := newFrameWriter(rc, &conn{srv: quietServer(), raw: rc})
		goaway := goAwayFrame("test")
		chunks := 0
		asked := false
		for rest := in; len(rest) > 0; chunks++ {
			if chunks == int(at)%(nFrames+3) {
				if !fw.goAway(goaway) && !foreign {
					t.Fatal("goAway refused on a fresh HTTP/2 stream")
				}
				asked = true
			}
			n := min(len(rest), 1+rng.IntN(40000))
			if w, err := fw.Write(rest[:n]); w != n || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", n, w, err)
			}
			rest = rest[n:]
		}
		if !asked && !fw.goAway(goaway) && !foreign {
			t.Fatal("goAway refused at the end of the stream")
		}
		out := rc.out.Bytes()
		if foreign {
			if !bytes.Equal(out, in) {
				t.Fatal("a non-HTTP/2 stream was changed")
			}
			return
		}
		got, ok := splitFrames(out)
		if !ok {
			t.Fatal("the output does not end at a frame boundary")
		}
		want, _ := splitFrames(in)
		if len(got) != len(want)+1 {
			t.Fatalf("%d frames out, want the %d in plus one GOAWAY", len(got), len(want))
		}
		j := 0
		for i, fr := range got {
			if bytes.Equal(fr, goaway) {
				if i == 0 {
					t.Fatal("GOAWAY before the server's SETTINGS")
				}
				continue
			}
			if j == len(want) || !bytes.Equal(fr, want[j]) {
				t.Fatalf("frame %d differs from the input's frame %d", i, j)
			}
			j++
		}
		if j != len(want) {
			t.Fatalf("%d input frames found in the output, want %d", j, len(want))
		}
	})
}

// A GOAWAY asked for before the server's first frame waits for it: HTTP/2
// requires SETTINGS first.
func TestGoAwayWaitsForSettings(t *testing.T) {
	rc := &recordConn{Conn: fakeConn{}}
	fw := newFrameWriter(rc, &conn{srv: quietServer(), raw: rc})
	goaway := goAwayFrame("x")
	if !fw.goAway(goaway) {
		t.Fatal("goAway refused")
	}
	if rc.out.Len() != 0 {
		t.Fatal("GOAWAY written before any frame")
	}
	settings := frame(frameSettings, 0, 12, 0)
	if _, err := fw.Write(settings[:5]); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(settings[5:]); err != nil {
		t.Fatal(err)
	}
	// The GOAWAY goes out with the next write, after SETTINGS.
	data := frame(0, 1, 3, 'd')
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, settings...), goaway...), data...)
	if !bytes.Equal(rc.out.Bytes(), want) {
		t.Fatalf("wrote % x\nwant % x", rc.out.Bytes(), want)
	}
	if fw.goAway(goaway) {
		t.Error("a second goAway was accepted")
	}
}

// closeConn records that it was closed.
type closeConn struct {
	recordConn
	closed chan struct{}
}

func (c *closeConn) Close() error { close(c.closed); return nil }

// A GOAWAY asked for before the first frame of a connection whose bytes turn
// out not to be HTTP/2 (TLS given as grpc.Creds, which the kit cannot write
// into) never goes out, and its grace must not close the connection under
// calls the client was never told to move. The connection is serving again:
// Stats and fair share count it, and a stream that asks Draining from then
// on is not told to end (it would be reopened on the same connection, and
// told again, over and over).
func TestGoAwayNeverWrittenDoesNotCut(t *testing.T) {
	s, err := New(WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	rc := &closeConn{recordConn: recordConn{Conn: fakeConn{}}, closed: make(chan struct{})}
	c := &conn{srv: s, raw: rc, opened: time.Now(), draining: make(chan struct{})}
	fw := newFrameWriter(rc, c)
	c.fw.Store(fw)
	if !c.goAway(ReasonFairShare, time.Second) {
		t.Fatal("goAway refused before the first frame")
	}
	record := []byte{0x16, 0x03, 0x03, 0x00, 0x06, 1, 2, 3, 4, 5, 6} // a TLS handshake record
	if _, err := fw.Write(record); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rc.closed:
		t.Fatal("the connection was closed by the grace of a GOAWAY that was never written")
	case <-time.After(1500 * time.Millisecond):
	}
	if !bytes.Equal(rc.out.Bytes(), record) {
		t.Fatalf("wrote % x, want the record alone", rc.out.Bytes())
	}
	if c.isDraining() {
		t.Error("the connection still reads as draining after its GOAWAY could not be written")
	}
	select {
	case <-Draining(context.WithValue(context.Background(), connKey{}, c)):
		t.Error("Draining fires for a stream opened after the GOAWAY was found unwritable")
	default:
	}
	if c.goAway(ReasonAge, time.Millisecond) {
		t.Error("goAway reports a GOAWAY sent on a connection it cannot write into")
	}
}

// A connection sent on at accept whose first call is a stream keeps it past
// MaxConnectionAgeGrace (the client opened it before it read the GOAWAY) and
// cuts it as age rotation would, at MaxConnectionAge after the accept plus
// MaxConnectionAgeGrace; any other GOAWAY's grace is left as it is.
func TestSpareStreamIsCutAsByAge(t *testing.T) {
	const age, grace = 5 * time.Second, 300 * time.Millisecond
	s, err := New(WithLogger(slog.New(slog.DiscardHandler)), WithMaxConnectionAge(age), WithMaxConnectionAgeGrace(grace))
	if err != nil {
		t.Fatal(err)
	}
	// Accepted age - 1.2 s ago: by age, the cut is due 1.5 s from now; 5.3 s
	// from now if spareStream counted the age from its own call.
	accepted := time.Now().Add(-age + 1200*time.Millisecond)
	open := func(atAccept bool) chan struct{} {
		rc := &closeConn{recordConn: recordConn{Conn: fakeConn{}}, closed: make(chan struct{})}
		c := &conn{srv: s, raw: rc, opened: accepted, draining: make(chan struct{})}
		if !c.goAway(ReasonFairShare, grace) {
			t.Fatal("goAway refused on a serving connection")
		}
		c.sentAtAccept = atAccept
		c.spareStream()
		return rc.closed
	}
	spared := open(true)
	cut := open(false)
	select {
	case <-cut:
	case <-time.After(1200 * time.Millisecond):
		t.Error("a GOAWAY not sent at accept: its grace of 300 ms did not close the connection in 1.2 s")
	}
	select {
	case <-spared:
		t.Fatal("the stream of a connection sent on at accept was cut at MaxConnectionAgeGrace")
	default:
	}
	select {
	case <-spared:
		if due := accepted.Add(age); time.Now().Before(due) {
			t.Errorf("cut %v before MaxConnectionAge after the accept", due.Sub(time.Now()))
		}
	case <-time.After(time.Until(accepted.Add(age+grace)) + 2500*time.Millisecond):
		t.Error("the spared stream was not cut by 2.5 s past MaxConnectionAge + MaxConnectionAgeGrace after the accept")
	}
}
