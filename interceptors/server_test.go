package interceptors_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// secret is what the test handlers panic with; it must never reach a client.
const secret = "secret-panic-value-42"

// serveInMemory serves s on an in-memory listener and returns a client
// connection to it, and a function that closes both.
func serveInMemory(s *grpc.Server) (cc *grpc.ClientConn, stop func(), err error) {
	lis := bufconn.Listen(1 << 20)
	go func() { _ = s.Serve(lis) }()
	cc, err = grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Stop()
		return nil, nil, err
	}
	return cc, func() {
		_ = cc.Close()
		s.Stop()
	}, nil
}

// helloService answers Hi and HiStream. Hi panics with secret when the
// message is "panic", fails with Unavailable on "fail", returns
// context.Canceled on "canceled" and adds log fields on "field"; HiStream
// panics on "panic" and returns io.EOF on "eof".
type helloService struct {
	hellov1.UnimplementedHelloServer
}

func (helloService) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	switch req.GetMessage() {
	case "panic":
		panic(secret)
	case "fail":
		return nil, status.Error(codes.Unavailable, "try another pod")
	case "canceled":
		return nil, context.Canceled
	case "field":
		// user is the line's; grpc.service is the chain's own and stays so.
		logging.AddFields(ctx, logging.Fields{"user", "u-1", "grpc.service", "spoof"})
	}
	return &hellov1.HiResponse{FromWho: "test", Message: "hi " + req.GetToWho()}, nil
}

func (helloService) HiStream(req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
	switch req.GetMessage() {
	case "panic":
		panic(secret)
	case "eof":
		return io.EOF
	}
	for seq := uint32(1); seq <= req.GetCount(); seq++ {
		if err := stream.Send(&hellov1.HiStreamResponse{FromWho: "test", Seq: seq}); err != nil {
			return err
		}
	}
	return nil
}

// serve starts a plain grpc.Server with the Hello and health services on a
// loopback TCP port and returns its address; the server stops at the end of
// the test.
func serve(t testing.TB, opts ...grpc.ServerOption) string {
	t.Helper()
	s := grpc.NewServer(opts...)
	hellov1.RegisterHelloServer(s, helloService{})
	healthpb.RegisterHealthServer(s, health.NewServer())
	fairsharev1.RegisterLoadServiceServer(s, fairsharev1.UnimplementedLoadServiceServer{})
	t.Cleanup(s.Stop)
	return serveOn(t, s)
}

// serveOn serves s on a loopback TCP port and returns its address.
func serveOn(t testing.TB, s *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	return lis.Addr().String()
}

// dial opens a client connection of its own (one TCP connection) to addr.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func hi(t testing.TB, cc *grpc.ClientConn, message string, opts ...grpc.CallOption) (*hellov1.HiResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hellov1.NewHelloClient(cc).Hi(ctx, &hellov1.HiRequest{ToWho: "t", Message: message}, opts...)
}

func mustHi(t testing.TB, cc *grpc.ClientConn) {
	t.Helper()
	if _, err := hi(t, cc, "hello"); err != nil {
		t.Fatalf("Hi: %v", err)
	}
}

// hiStream calls HiStream for count messages and reads it to its end.
func hiStream(t testing.TB, cc *grpc.ClientConn, count uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := hellov1.NewHelloClient(cc).HiStream(ctx, &hellov1.HiStreamRequest{Count: count})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = st.Recv()
	}
	if err != io.EOF {
		t.Fatalf("HiStream: %v", err)
	}
}

// newChain builds a chain on its own registry, with opts after the test's.
func newChain(t testing.TB, opts ...interceptors.Option) (*interceptors.Chain, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := interceptors.NewChain(append([]interceptors.Option{interceptors.WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// syncBuffer is a log sink that the server and the test may use at once,
// read as JSON lines.
type syncBuffer struct{ testkit.Buffer }

// records parses every line logged so far.
func (s *syncBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// withMsg returns the records whose msg is msg.
func withMsg(recs []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// scrape fetches /metrics from h over real HTTP and parses the text format.
func scrape(t testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// find returns the sample of family name whose labels include want, failing
// the test when there is none.
func find(t testing.TB, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric family %s in the scrape", name)
	}
	for _, m := range mf.GetMetric() {
		if testkit.HasLabels(m, want) {
			return m
		}
	}
	t.Fatalf("no %s sample with labels %v", name, want)
	return nil
}

// sample is the value a test expects of a counter or gauge sample: the one
// of family name whose labels include labels.
type sample struct {
	name   string
	labels map[string]string
	want   float64
}

// expectValues checks every sample in mfs.
func expectValues(t testing.TB, mfs map[string]*dto.MetricFamily, samples []sample) {
	t.Helper()
	for _, c := range samples {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// expectHistogram checks the count and the sum of the histogram name.
func expectHistogram(t testing.TB, mfs map[string]*dto.MetricFamily, name string, count uint64, sum float64) {
	t.Helper()
	h := find(t, mfs, name, nil).GetHistogram()
	if h.GetSampleCount() != count || h.GetSampleSum() != sum {
		t.Errorf("%s: count %d sum %v, want %d and %v", name, h.GetSampleCount(), h.GetSampleSum(), count, sum)
	}
}

// value returns the value of a counter or gauge sample.
func value(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(t, mfs, name, labels)
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// connEnds wraps a stats handler and signals every connection end after the
// wrapped handler has seen it: the test's only way to know that the server
// noticed a client close.
type connEnds struct {
	stats.Handler
	ended chan struct{}
}

func newConnEnds(h stats.Handler) *connEnds {
	return &connEnds{Handler: h, ended: make(chan struct{}, 16)}
}

func (c *connEnds) HandleConn(ctx context.Context, s stats.ConnStats) {
	c.Handler.HandleConn(ctx, s)
	if _, ok := s.(*stats.ConnEnd); ok {
		c.ended <- struct{}{}
	}
}

func (c *connEnds) wait(t testing.TB) {
	t.Helper()
	testkit.Receive(t, c.ended, 5*time.Second, "the server to see the connection end")
}
