package server_test

import (
	"context"
	"testing"
	"time"

	orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// orcaTrailer is the trailer key of a call's ORCA load report (gRFC A51).
const orcaTrailer = "endpoint-load-metrics-bin"

// A busy server's calls carry an ORCA report in their trailer with its
// process CPU, its handlers' utilization and its calls per second all above
// zero: what a weighted_round_robin client weighs it by.
func TestORCAReportsCPUAndLoadInTheTrailer(t *testing.T) {
	_, addr := testkit.StartRotor(t, &costly{testkit.Hello{Name: "a"}, 2 * time.Millisecond},
		server.WithORCA(server.ORCA{Interval: 100 * time.Millisecond}))
	client := hellov1.NewHelloClient(testkit.Dial(t, addr, server.Config{}))
	var report orcapb.OrcaLoadReport
	testkit.Eventually(t, 10*time.Second, "an ORCA report with cpu, application utilization and qps", func() bool {
		var trailer metadata.MD
		if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}, grpc.Trailer(&trailer)); err != nil {
			t.Fatal(err)
		}
		raw := trailer.Get(orcaTrailer)
		if len(raw) != 1 {
			return false
		}
		if err := proto.Unmarshal([]byte(raw[0]), &report); err != nil {
			t.Fatalf("trailer %s: %v", orcaTrailer, err)
		}
		return report.GetCpuUtilization() > 0 && report.GetApplicationUtilization() > 0 && report.GetRpsFractional() > 0
	})
	t.Logf("report: cpu %.3f, application %.3f, qps %.0f", report.GetCpuUtilization(), report.GetApplicationUtilization(), report.GetRpsFractional())
}
