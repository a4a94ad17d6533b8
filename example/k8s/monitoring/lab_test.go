package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/internal/kubelab"
	"github.com/rotorkit/rotor/internal/lifecycle"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// The lab's shape: the example's Deployment scaled from 2 to 5 pods under
// a steady load through the ClusterIP, as in example/balance, with fair
// share on so that the new pods get calls within seconds.
const (
	labConns    = 20                   // client connections, as 20 client pods
	labRate     = 10                   // calls a second on each
	labBefore   = 20 * time.Second     // load before the scale-up
	labAfter    = 75 * time.Second     // after it: the queries' 1m windows see only the scaled fleet
	promAddr    = "127.0.0.1:9099"     // Prometheus, inside the lab's client namespace
	adminPort   = 9090                 // the pods' admin listener (/metrics, /stats)
	scrapeEvery = "1s"                 // the lab's scrape and rule interval
	labDeadline = 4 * time.Minute      // the whole test
	settle      = 2 * time.Second      // how far behind now the queries look, so that scrapes have landed
	window      = 60 * time.Second     // the documented queries' rate window
	minShare    = 0.5 / 5              // half its fair share: the new pods were found
	shareSlack  = 0.03                 // Prometheus's share against the client's count
	labJobWant  = "rotor-hello-server" // scrape.yaml's job
	labNS       = "lab"                // kubelab's default namespace
	loadTimeout = 10 * time.Second     // bound of one call
	serverApp   = "hello-server"       // app.kubernetes.io/name of the server pods
)

// A real Prometheus (Debian's), running scrape.yaml's job and rules.yaml,
// scrapes the example server's pods in the lab while the Deployment scales
// from 2 to 5 pods under load; then every query that interceptors/doc.go
// documents must say what the documentation says, checked against what the
// client and the pods themselves saw: each pod's share of the calls (the
// client counts which pod answered each call), the imbalance, rotations by
// reason (the pods' own counters) and connections per pod (each pod's
// /stats). Every dashboard query must return data, and the rules must
// evaluate cleanly with no alert firing on a balanced fleet.
func TestDocumentedQueriesInTheLab(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a lab run of about two minutes")
	}
	if err := kubelab.Available(); err != nil {
		t.Skip(err)
	}
	prometheus := tool(t, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), labDeadline)
	defer cancel()
	bin, err := testkit.Build(t.TempDir(), "github.com/rotorkit/rotor/example/server")
	if err != nil {
		t.Fatal(err)
	}

	var args []string
	lab, err := kubelab.New(ctx, kubelab.Config{
		TempDir:                t.TempDir(),
		TerminationGracePeriod: 5 * time.Second,
		ServerCommand:          func(kubelab.Pod) kubelab.Command { return kubelab.Command{Path: bin, Args: args} },
	})
	if err != nil {
		t.Fatal(err)
	}
	lab.CloseOnSignal()
	defer func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", lab.Logs(3000))
		}
		if err := lab.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
	}()
	// The example's own arguments (example/k8s/server.yaml), with the
	// lab's headless Service, fast peer polls and fair share.
	args = []string{"-grpc-addr", ":50051", "-http-addr", ":8080", "-admin-addr", fmt.Sprintf(":%d", adminPort), "-admin-public",
		"-log-calls=false", "-max-connection-age", "5m", "-shutdown-delay", "1s", "-drain-timeout", "10s",
		"-peer-dns", "dns://" + lab.DNSServer() + "/" + lab.HeadlessName(), "-peer-interval", "1s", "-rotate-spread", "1s", "-fair-share"}
	if err := lab.ScaleTo(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// Prometheus in the client namespace, with scrape.yaml's job fed the
	// pods by file discovery, labelled as Kubernetes discovery labels them.
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.json")
	writeTargets(t, lab, targets)
	cfg, job, _ := scrapeJob(t, targets, mustAbs(t, "rules.yaml"), scrapeEvery)
	if job != labJobWant {
		t.Fatalf("scrape.yaml's job is %q; the lab expects %q", job, labJobWant)
	}
	cfgPath := filepath.Join(dir, "prometheus.yaml")
	writeYAML(t, cfgPath, cfg)
	cmd := lab.ClientCommand(ctx, prometheus, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	testkit.Start(t, "prometheus", cmd)
	prom := &promAPI{c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: lab.DialContext}}, base: "http://" + promAddr}
	testkit.Eventually(t, 30*time.Second, "Prometheus ready", prom.ready)

	// The load starts once Prometheus has scraped both pods: a counter's
	// increments before its series' first scrape are invisible to rate(),
	// and fair share sheds in the first seconds of load (in a CI run that
	// started the load without this wait, the pods counted 33 fair-share
	// GOAWAYs, 9 of them in the first 4 s, and Prometheus's rate 21).
	testkit.Eventually(t, 30*time.Second, "Prometheus scraped both pods", func() bool {
		up := 0
		for _, s := range prom.query(t, "up", `up{job="`+labJobWant+`"}`, time.Now()) {
			if s.value == 1 {
				up++
			}
		}
		return up == 2
	})
	load := startLoad(ctx, t, lab)
	sleep(ctx, labBefore)
	if err := lab.ScaleTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	scaled := time.Now()
	writeTargets(t, lab, targets)
	t.Logf("scaled to 5 pods at %s", scaled.Format(time.TimeOnly))
	sleep(ctx, labAfter)
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}

	at := time.Now().Add(-settle).Truncate(time.Second)
	pods := lab.Pods()
	truthCalls := load.calls(at.Add(-window), at)
	var total float64
	for _, n := range truthCalls {
		total += n
	}
	if len(truthCalls) != 5 || total == 0 {
		t.Fatalf("the client saw calls answered by %d pods in the last minute (%v); want all 5", len(truthCalls), truthCalls)
	}
	direct := scrapePods(t, lab, pods)

	docs := documentedQueries(t)
	find := func(what string, match func(string) bool) string {
		i := slices.IndexFunc(docs, match)
		if i < 0 {
			t.Fatalf("interceptors/doc.go documents no query for %s", what)
		}
		return docs[i]
	}
	shareQ := find("each pod's share", func(q string) bool { return strings.Contains(q, "group_left") })
	imbalanceQ := find("the imbalance", func(q string) bool { return strings.HasPrefix(q, "max(") })
	rotationsQ := find("rotations by reason", func(q string) bool { return strings.Contains(q, "rotor_rotations_total") })
	connsQ := find("connections per pod", func(q string) bool { return strings.Contains(q, "rotor_connections_open") })
	callsQ := find("calls per second per pod", func(q string) bool {
		return strings.HasPrefix(q, "sum by (pod) (rate(grpc_server_handled_total") && !strings.Contains(q, "group_left")
	})

	// Each pod's share: one series per pod, the pod's share of what the
	// client saw answered in the same minute, summing to 1.
	got := prom.byLabel(t, shareQ, at, "pod")
	var sum float64
	for pod, want := range truthCalls {
		s, ok := got[pod]
		if !ok {
			t.Errorf("share: no series for pod %s; got %v", pod, got)
			continue
		}
		sum += s
		if math.Abs(s-want/total) > shareSlack {
			t.Errorf("share of %s: Prometheus %.3f, the client saw %.3f", pod, s, want/total)
		}
		if s < minShare {
			t.Errorf("share of %s: %.3f a minute after the scale-up; want every pod to have calls (at least %.2f)", pod, s, minShare)
		}
	}
	if len(got) != 5 || math.Abs(sum-1) > 0.01 {
		t.Errorf("shares %v: want 5 pods summing to 1, got %d summing to %.3f", got, len(got), sum)
	}
	t.Logf("share per pod: %v (the client: %v of %.0f calls)", got, truthCalls, total)

	// Calls per second per pod: what the client saw answered.
	rates := prom.byLabel(t, callsQ, at, "pod")
	for pod, n := range truthCalls {
		if got := rates[pod] * window.Seconds(); math.Abs(got-n) > 0.05*n {
			t.Errorf("calls of %s in the last minute: Prometheus %.0f, the client saw %.0f", pod, got, n)
		}
	}

	// Imbalance: the busiest pod over the mean, as the client saw it.
	imb := prom.scalar(t, imbalanceQ, at)
	var maxCalls float64
	for _, n := range truthCalls {
		maxCalls = max(maxCalls, n)
	}
	if want := maxCalls / (total / 5); math.Abs(imb-want) > 0.05 || imb < 1 {
		t.Errorf("imbalance: Prometheus %.3f, the client saw %.3f", imb, want)
	}
	t.Logf("imbalance: %.3f", imb)

	// Rotations by reason: a rate for exactly the reasons the pods counted
	// GOAWAYs for (all within the 5m window), fair share's among them, at
	// about the pods' own counts over the window.
	rot := prom.byLabel(t, rotationsQ, at, "reason")
	for reason, n := range direct.rotations {
		r := rot[reason] * 300
		if (n > 0) != (rot[reason] > 0) || n >= 5 && math.Abs(r-n) > 0.35*n {
			t.Errorf("rotations for %s: the pods counted %.0f, Prometheus %.4f/s (%.1f over 5m)", reason, n, rot[reason], r)
		}
	}
	if direct.rotations["fairshare"] == 0 || rot["fairshare"] == 0 {
		t.Errorf("no fairshare rotations after a scale-up with fair share: pods %v, Prometheus %v", direct.rotations, rot)
	}
	t.Logf("rotations by reason: Prometheus %v/s; the pods counted %v", rot, direct.rotations)

	// Connections per pod: what each pod's /stats says is open at the
	// moment Prometheus scrapes it. Fair share moves connections now and
	// then, so the two are compared at a few moments until one finds no
	// move in between; a query that counted anything else never agrees.
	var agreed bool
	for attempt := 0; attempt < 10 && !agreed; attempt++ {
		before := time.Now()
		stats := scrapePods(t, lab, pods).stats
		sleep(ctx, 2*time.Second) // two scrapes
		conns := prom.byLabel(t, connsQ, before.Add(time.Second), "pod")
		agreed = len(conns) == len(pods)
		var clients int
		for _, p := range pods {
			st := stats[p.Name]
			agreed = agreed && conns[p.Name] == float64(st.Open)
			clients += st.Clients + st.Draining
			// Open = clients (the load's, and the pod's own gateway's) +
			// draining + the other pods' load-query connections.
			if peers := st.Open - st.Clients - st.Draining; peers < 0 || peers > len(pods)-1 {
				t.Errorf("%s: /stats %+v: %d connections neither clients' nor draining; want at most one from each other pod", p.Name, st, peers)
			}
			if attempt == 0 {
				t.Logf("%s: rotor_connections_open %.0f; /stats %+v", p.Name, conns[p.Name], st)
			}
		}
		if clients < labConns {
			t.Errorf("the pods count %d client connections, want at least the load's %d", clients, labConns)
		}
	}
	if !agreed {
		t.Error("connections per pod: Prometheus never agreed with the pods' /stats over 10 tries")
	}

	// Every documented query and every dashboard query runs; the
	// dashboard's return data.
	for i, q := range docs {
		prom.query(t, fmt.Sprint("doc query ", i), q, at)
	}
	for name, q := range dashboardQueries(t, readDashboard(t), labNS, job) {
		if len(prom.query(t, name, q, at)) == 0 {
			t.Errorf("dashboard %s: no data from the lab's pods:\n%s", name, q)
		}
	}
	loadQueries := prom.scalar(t, `sum(rate(grpc_server_handled_total{grpc_service="rotor.fairshare.v1.LoadService"}[1m]))`, at)
	t.Logf("fair share's load queries: %.1f calls/s, against %.1f client calls/s", loadQueries, total/window.Seconds())

	// The rules evaluate without error, and none fires: the pods reach
	// each other, and the imbalance of the scale-up itself (the new pods
	// had no calls at first) may make RotorCallImbalance pending, which
	// its 15 minutes are for, but no more.
	for _, r := range prom.rules(t) {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
		if r.State == "firing" || r.Name == "RotorFairShareNoPeers" && r.State != "inactive" {
			t.Errorf("alert %s is %s", r.Name, r.State)
		}
		t.Logf("alert %s: %s", r.Name, r.State)
	}
	if n := load.stop(); n > 0 {
		t.Errorf("%d calls failed", n)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// writeTargets writes the lab's pods, as file discovery target groups with
// the labels Kubernetes discovery would give the example's server pods (one
// target per container port, named as in example/k8s/server.yaml), atomically.
func writeTargets(t *testing.T, lab *kubelab.Lab, path string) {
	t.Helper()
	tmpl := podTemplateOf(t)
	var groups []targetGroup
	for _, p := range lab.Pods() {
		groups = append(groups, podTargets(labNS, p.Name, p.IP.String(), tmpl)...)
	}
	data, err := json.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// podTemplateOf is the server Deployment's pod template from
// example/k8s/server.yaml, whose ports the lab's pods listen on.
func podTemplateOf(t *testing.T) podTemplate {
	t.Helper()
	ds := deployments(t, "server.yaml")
	if len(ds) != 1 || ds[0].labels["app.kubernetes.io/name"] != serverApp || ds[0].annotations["prometheus.io/scrape"] != "true" {
		t.Fatalf("example/k8s/server.yaml: want one Deployment of %s pods annotated prometheus.io/scrape", serverApp)
	}
	return ds[0]
}

// labLoad makes calls through the ClusterIP and counts, by second, which
// pod answered.
type labLoad struct {
	mu     sync.Mutex
	by     map[int64]map[string]float64 // unix second → pod → calls
	failed int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(ctx context.Context, t *testing.T, lab *kubelab.Lab) *labLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	l := &labLoad{by: map[int64]map[string]float64{}, cancel: cancel}
	t.Cleanup(func() { l.stop() })
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return lab.DialContext(ctx, "tcp", addr) }
	for range labConns {
		opts := append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dial))
		cc, err := grpc.NewClient("passthrough:///"+lab.ClusterIP(50051), opts...)
		if err != nil {
			t.Fatal(err)
		}
		client := hellov1.NewHelloClient(cc)
		l.wg.Go(func() {
			defer cc.Close()
			lifecycle.Every(ctx, time.Second/labRate, func() {
				callCtx, cancelCall := context.WithTimeout(ctx, loadTimeout)
				resp, err := client.Hi(callCtx, &hellov1.HiRequest{ToWho: "lab"})
				cancelCall()
				l.mu.Lock()
				switch {
				case err == nil:
					sec := time.Now().Unix()
					if l.by[sec] == nil {
						l.by[sec] = map[string]float64{}
					}
					l.by[sec][resp.GetFromWho()]++
				case ctx.Err() == nil:
					l.failed++
				}
				l.mu.Unlock()
			})
		})
	}
	return l
}

// calls returns the calls each pod answered in the seconds [from, to).
func (l *labLoad) calls(from, to time.Time) map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]float64{}
	for sec := from.Unix(); sec < to.Unix(); sec++ {
		for pod, n := range l.by[sec] {
			out[pod] += n
		}
	}
	return out
}

// stop ends the load and returns how many calls failed.
func (l *labLoad) stop() int {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// podTruth is what the pods themselves say, scraped at one moment.
type podTruth struct {
	rotations map[string]float64 // reason → GOAWAYs, summed over the pods
	own       map[string]float64 // pod → rotor_fairshare_own_connections
	stats     map[string]server.Stats
}

func scrapePods(t *testing.T, lab *kubelab.Lab, pods []kubelab.Pod) podTruth {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: lab.DialContext}}
	truth := podTruth{rotations: map[string]float64{}, own: map[string]float64{}, stats: map[string]server.Stats{}}
	for _, p := range pods {
		base := fmt.Sprintf("http://%s:%d", p.IP, adminPort)
		resp, err := c.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mfs["rotor_rotations_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					truth.rotations[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
		for _, m := range mfs["rotor_fairshare_own_connections"].GetMetric() {
			truth.own[p.Name] = m.GetGauge().GetValue()
		}
		resp, err = c.Get(base + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		var st server.Stats
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		truth.stats[p.Name] = st
	}
	return truth
}

// promAPI queries Prometheus's HTTP API.
type promAPI struct {
	c    *http.Client
	base string
}

func (p *promAPI) ready() bool {
	resp, err := p.c.Get(p.base + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type promSample struct {
	labels map[string]string
	value  float64
}

// query evaluates q at at and returns the vector (or the scalar as one
// sample), failing the test on any error.
func (p *promAPI) query(t *testing.T, name, q string, at time.Time) []promSample {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}
	resp, err := p.c.Get(p.base + "/api/v1/query?" + v.Encode())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("%s: status %q error %q (%v) for\n%s", name, body.Status, body.Error, err, q)
	}
	parse := func(pair [2]any) float64 {
		s, _ := pair[1].(string)
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	switch body.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
			t.Fatal(err)
		}
		var out []promSample
		for _, s := range vec {
			out = append(out, promSample{labels: s.Metric, value: parse(s.Value)})
		}
		return out
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(body.Data.Result, &pair); err != nil {
			t.Fatal(err)
		}
		return []promSample{{value: parse(pair)}}
	}
	t.Fatalf("%s: result type %s", name, body.Data.ResultType)
	return nil
}

// byLabel evaluates q and returns its samples by the value of label.
func (p *promAPI) byLabel(t *testing.T, q string, at time.Time, label string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range p.query(t, q, q, at) {
		out[s.labels[label]] = s.value
	}
	return out
}

// scalar evaluates q, which must return one sample.
func (p *promAPI) scalar(t *testing.T, q string, at time.Time) float64 {
	t.Helper()
	s := p.query(t, q, q, at)
	if len(s) != 1 {
		t.Fatalf("%d samples, want one, for\n%s", len(s), q)
	}
	return s[0].value
}

type promRule struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// rules returns every rule Prometheus evaluates; there must be some.
func (p *promAPI) rules(t *testing.T) []promRule {
	t.Helper()
	resp, err := p.c.Get(p.base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []promRule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("Prometheus loaded no rules from rules.yaml")
	}
	return out
}
