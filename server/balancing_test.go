package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// One ClientConn with SpreadConnections(5) keeps five TCP connections to its
// one address and spreads its calls over all of them.
func TestSpreadConnections(t *testing.T) {
	ev := newEvents()
	p := newPeers()
	_, addr := testkit.StartRotor(t, nil, append(p.options(), server.WithObserver(ev))...)
	spread, err := server.SpreadConnections(5)
	if err != nil {
		t.Fatal(err)
	}
	client := hellov1.NewHelloClient(testkit.Dial(t, addr, server.Config{}, spread))
	// round_robin picks among the connections that are ready: the first
	// calls may all go to the first to connect. Within a few seconds every
	// one of the five must carry calls, and no sixth may open.
	calls := 0
	for deadline := time.Now().Add(10 * time.Second); p.count() < 5 && time.Now().Before(deadline); calls++ {
		if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.count(); n != 5 {
		t.Errorf("%d calls used %d TCP connections, want all 5", calls, n)
	}
	if n := ev.open(); n != 5 {
		t.Errorf("%d connections open, want 5", n)
	}
	for _, k := range []int{0, -1, 257} {
		_, err := server.SpreadConnections(k)
		var ce *server.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("SpreadConnections(%d) = %v, want a *ConfigError", k, err)
		}
	}
}

// costly is a Hello whose calls keep the handler busy for cost.
type costly struct {
	testkit.Hello
	cost time.Duration
}

func (c *costly) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	for end := time.Now().Add(c.cost); time.Now().Before(end); {
	}
	return c.Hello.Hi(ctx, req)
}

// Two servers report their load with ORCA; one's calls cost ten times the
// other's. A weighted_round_robin client sends the costly one far fewer
// calls, where round_robin would split them evenly.
func TestWeightedRoundRobinFollowsTheReportedLoad(t *testing.T) {
	defer server.SetWRRServiceConfig(`{"loadBalancingConfig":[{"weighted_round_robin":{"blackoutPeriod":"0.5s","weightUpdatePeriod":"0.2s"}}]}`)()
	orca := server.WithORCA(server.ORCA{Interval: 200 * time.Millisecond})
	_, heavy := testkit.StartRotor(t, &costly{testkit.Hello{Name: "heavy"}, 2 * time.Millisecond}, orca)
	_, light := testkit.StartRotor(t, &costly{testkit.Hello{Name: "light"}, 200 * time.Microsecond}, orca)
	r := manual.NewBuilderWithScheme("wrr")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: heavy}, {Addr: light}}})
	client := hellov1.NewHelloClient(testkit.Dial(t, "wrr:///pods", server.Config{}, grpc.WithResolvers(r), server.WeightedRoundRobin()))

	count := func(d time.Duration) map[string]int {
		var mu sync.Mutex
		got := map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					resp, err := client.Hi(context.Background(), &hellov1.HiRequest{})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got[resp.GetFromWho()]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return got
	}
	count(2 * time.Second) // reports arrive, the blackout passes
	got := count(3 * time.Second)
	share := float64(got["heavy"]) / float64(got["heavy"]+got["light"])
	t.Logf("calls: %v (heavy share %.2f)", got, share)
	if share > 0.3 {
		t.Errorf("the server whose calls cost 10× got %.0f%% of the calls; want well under half", 100*share)
	}
}
