package main

import (
	"context"
	"math"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rotorkit/rotor/example/hello"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

func TestZipfShares(t *testing.T) {
	rates := connRates(1000, 20, zipfWeights(20, zipfS))
	if total := sum(rates); math.Abs(total-1000) > 1e-6 {
		t.Errorf("rates add up to %v calls/s, want 1000", total)
	}
	// 1/H(20) = 1/3.5977 = 27.8 % for the busiest, 1/20 of that for the
	// quietest.
	if got := rates[0] / 1000; math.Abs(got-0.278) > 0.001 {
		t.Errorf("the busiest of 20 Zipf clients makes %.4f of the calls, want 0.278", got)
	}
	if got := rates[19] / rates[0]; math.Abs(got-1.0/20) > 1e-9 {
		t.Errorf("the quietest makes %.4f of the busiest's calls, want 1/20", got)
	}
	for i := 1; i < len(rates); i++ {
		if rates[i] >= rates[i-1] {
			t.Errorf("rate %d (%v) is not below rate %d (%v)", i, rates[i], i-1, rates[i-1])
		}
	}
	if r := connRates(90, 3, nil); r[0] != 30 || r[1] != 30 || r[2] != 30 {
		t.Errorf("even rates %v, want 30 each", r)
	}
}

func TestHeavyFractions(t *testing.T) {
	for _, n := range []int{1, 3, 5, 20, 37} {
		f := heavyFractions(n)
		if got := sum(f) / float64(n); math.Abs(got-heavyCallShare) > 1e-9 {
			t.Errorf("%d connections: %.4f of the calls heavy, want %v (fractions %v)", n, got, heavyCallShare, f)
		}
	}
	f := heavyFractions(20)
	heavyConns := 0
	for _, x := range f {
		if x > 0 {
			heavyConns++
			if x != 0.5 {
				t.Errorf("a heavy connection of 20 makes %v of its calls heavy, want 0.5", x)
			}
		}
	}
	if heavyConns != 4 {
		t.Errorf("%d of 20 connections make heavy calls, want 4", heavyConns)
	}
}

// TestHeavySequence checks that heavy calls come at their fraction over
// any stretch of calls, and also over every 2nd and every 5th call: a
// round_robin client sends those to the same pod of 2 or 5, and a
// periodic pattern would put all its heavy calls on some of them.
func TestHeavySequence(t *testing.T) {
	for _, f := range []float64{0.1, 0.25, 0.5} {
		next := heavySequence(f, 3, 1)
		const n = 2000
		heavy := make([]bool, n)
		for i := range heavy {
			heavy[i] = next()
		}
		count := func(start, step, length int) (h, all int) {
			for i := start; i < start+length && i < n; i += step {
				all++
				if heavy[i] {
					h++
				}
			}
			return h, all
		}
		for _, w := range []int{20, 100, 1000} {
			for start := 0; start+w <= n; start += w {
				if h, _ := count(start, 1, w); math.Abs(float64(h)-f*float64(w)) > 2 {
					t.Errorf("f %v: %d heavy calls in calls %d-%d, want %v ± 2", f, h, start, start+w, f*float64(w))
				}
			}
		}
		for _, pods := range []int{2, 5} {
			for pod := range pods {
				h, all := count(pod, pods, n)
				if got := float64(h) / float64(all); math.Abs(got-f) > 0.02 {
					t.Errorf("f %v: pod %d of %d round_robin pods would get %.3f of its calls heavy, want %v", f, pod, pods, got, f)
				}
			}
		}
	}
}

// TestGenerateLoadShapes runs the load generator against a local server:
// the connections' calls follow their weights, heavy calls ask for the
// work units and only they do, and a spread client uses k TCP connections.
func TestGenerateLoadShapes(t *testing.T) {
	var mu sync.Mutex
	work := map[string]int{} // rotor-work value → calls
	count := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		v := metadata.ValueFromIncomingContext(ctx, hello.WorkKey)
		mu.Lock()
		work[strconv.Itoa(len(v))+":"+first(v)]++
		mu.Unlock()
		return h(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(count))
	hellov1.RegisterHelloServer(srv, &hello.Service{Name: "local"})
	go srv.Serve(lis)
	defer srv.Stop()
	target := "passthrough:///" + lis.Addr().String()

	run := func(t *testing.T, cfg loadConfig) run {
		t.Helper()
		var lines []loadLine
		if err := generateLoad(context.Background(), cfg, func(l loadLine) error {
			lines = append(lines, l)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r := run{Duration: cfg.Duration.Seconds()}
		r.fill(lines)
		if r.Summary.Failed != 0 {
			t.Fatalf("%d calls failed: %v", r.Summary.Failed, r.Summary.FailedByCode)
		}
		return r
	}

	t.Run("weights and heavy calls", func(t *testing.T) {
		cfg := loadConfig{Target: target, Conns: 3, Rate: 300, Duration: 2 * time.Second, CallTimeout: 5 * time.Second,
			Weights: []float64{4, 1, 1}, Heavy: []float64{0.5, 0, 0}, HeavyWork: 7}
		r := run(t, cfg)
		perClient := map[int]int{}
		heavyByClient := map[int]int{}
		for _, c := range r.Conns {
			for k := range c.Calls {
				perClient[c.Client] += c.Calls[k]
				heavyByClient[c.Client] += c.Heavy.at(c.From, c.From+k)
			}
		}
		// 200, 50 and 50 calls a second for 2 s.
		for client, want := range map[int]int{0: 400, 1: 100, 2: 100} {
			if got := perClient[client]; math.Abs(float64(got-want)) > 6 {
				t.Errorf("client %d made %d calls, want %d ± 6 (weights 4:1:1 of 300/s for 2 s)", client, got, want)
			}
		}
		if h := heavyByClient[0]; math.Abs(float64(h)-0.5*float64(perClient[0])) > 2 || heavyByClient[1]+heavyByClient[2] != 0 {
			t.Errorf("heavy calls by client %v of %v, want half of client 0's and none of the others'", heavyByClient, perClient)
		}
		mu.Lock()
		defer mu.Unlock()
		if work["1:7"] != heavyByClient[0] || work["0:"] != perClient[0]+perClient[1]+perClient[2]-heavyByClient[0] {
			t.Errorf("the server saw %v (metadata values: count and first), want %d calls with rotor-work 7 and the other %d without (the clients' calls: %v)",
				work, heavyByClient[0], perClient[0]+perClient[1]+perClient[2]-heavyByClient[0], perClient)
		}
	})

	t.Run("heavy from", func(t *testing.T) {
		// Client 0's calls are all heavy from 1 s: none before, all after.
		r := run(t, loadConfig{Target: target, Conns: 2, Rate: 40, Duration: 2 * time.Second, CallTimeout: 5 * time.Second,
			Heavy: []float64{1, 0}, HeavyWork: 1, HeavyFrom: time.Second})
		calls, heavy := map[[2]int]int{}, map[[2]int]int{} // by client and second
		for _, c := range r.Conns {
			for k := range c.Calls {
				calls[[2]int{c.Client, c.From + k}] += c.Calls[k]
				heavy[[2]int{c.Client, c.From + k}] += c.Heavy.at(c.From, c.From+k)
			}
		}
		for _, tc := range []struct{ client, second, wantHeavy int }{
			{0, 0, 0}, {0, 1, calls[[2]int{0, 1}]}, {1, 0, 0}, {1, 1, 0},
		} {
			k := [2]int{tc.client, tc.second}
			// A stall across the second's boundary moves calls to the
			// next second; whatever a second has, it is all light or
			// all heavy.
			if calls[k] < 5 || heavy[k] != tc.wantHeavy {
				t.Errorf("client %d, second %d: %d calls, %d heavy; want 5 or more (20 on an idle host), %d heavy (client 0 heavy from 1 s)",
					tc.client, tc.second, calls[k], heavy[k], tc.wantHeavy)
			}
		}
	})

	t.Run("spread", func(t *testing.T) {
		r := run(t, loadConfig{Target: target, Conns: 1, Rate: 200, Duration: 1500 * time.Millisecond, CallTimeout: 5 * time.Second, Spread: 4})
		if len(r.Conns) != 4 {
			t.Fatalf("one client spread over 4 made its calls on %d TCP connections, want 4: %+v", len(r.Conns), r.Conns)
		}
		for _, c := range r.Conns {
			total := 0
			for _, n := range c.Calls {
				total += n
			}
			if math.Abs(float64(total)-300.0/4) > 6 {
				t.Errorf("connection %s carried %d calls, want a quarter of 300 ± 6 (round_robin)", c.ID, total)
			}
		}
	})
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
