package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := testkit.BuildDir("rotor-example-server-")
	if err != nil {
		panic(err)
	}
	binary, err = testkit.Build(dir, "github.com/rotorkit/rotor/example/server")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running example server.
type proc struct {
	*testkit.Process
	grpc, http, admin string
}

// startServer starts the example server on loopback ports with args and
// waits until its admin endpoint and its REST front answer.
func startServer(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{grpc: testkit.FreeAddr(t), http: testkit.FreeAddr(t), admin: testkit.FreeAddr(t)}
	cmd := exec.Command(binary, append([]string{"-grpc-addr", p.grpc, "-http-addr", p.http, "-admin-addr", p.admin}, args...)...)
	cmd.Env = append(os.Environ(), "POD_NAME=pod-under-test")
	p.Process = testkit.Start(t, "server", cmd)
	p.WaitHTTP(t, "http://"+p.admin+"/stats", 10*time.Second)
	p.WaitHTTP(t, "http://"+p.http+"/healthz", 10*time.Second)
	return p
}

func (p *proc) client(t *testing.T) hellov1.HelloClient {
	t.Helper()
	opts := append(server.Config{}.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(p.grpc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return hellov1.NewHelloClient(cc)
}

func TestRESTNamesTheInstance(t *testing.T) {
	p := startServer(t)
	resp, err := http.Post("http://"+p.http+"/v1/hi", "application/json", strings.NewReader(`{"toWho":"x","message":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ FromWho, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /v1/hi: %d %v", resp.StatusCode, err)
	}
	if body.FromWho != "pod-under-test" {
		t.Errorf("fromWho = %q, want the POD_NAME pod-under-test", body.FromWho)
	}
	// The README's curl line, with the real curl.
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	out, err := exec.Command(curl, "-s", "-X", "POST", "http://"+p.http+"/v1/hi", "-d", `{"toWho":"x","message":"y"}`).Output()
	if err != nil || !strings.Contains(string(out), `"fromWho":"pod-under-test"`) {
		t.Errorf("curl: %v, output %q; want JSON naming pod-under-test", err, out)
	}
}

// SIGTERM under load: no call accepted before the signal fails, and the
// process exits by the drain deadline although a stream never ends.
func TestSIGTERMDrainsAndExitsByDeadline(t *testing.T) {
	const delay, drain = time.Second, 2 * time.Second
	p := startServer(t, "-shutdown-delay", delay.String(), "-drain-timeout", drain.String(),
		"-max-connection-age-grace", "1s", "-stream-ignore-drain")
	client := p.client(t)
	testkit.OpenStream(t.Context(), t, client)
	load := testkit.StartCallLoad(t, client, 4)
	time.Sleep(300 * time.Millisecond)
	load.Mark()
	begin := time.Now()
	p.Signal(t, syscall.SIGTERM)
	var exitErr error
	select {
	case <-p.Done():
		exitErr = p.Err()
	case <-time.After(delay + drain + 5*time.Second):
		t.Fatal("the server did not exit within delay + drain timeout + 5 s")
	}
	took := time.Since(begin)
	before, failedBefore, firstErr := load.Stop()
	if exitErr != nil {
		t.Errorf("server exited with %v, want status 0", exitErr)
	}
	if took < delay {
		t.Errorf("server exited %v after SIGTERM, before the %v shutdown delay", took, delay)
	}
	if failedBefore != 0 || before == 0 {
		t.Errorf("%d of %d calls started before SIGTERM failed; first: %v", failedBefore, before, firstErr)
	}
	t.Logf("exited %v after SIGTERM; %d calls before it, none failed", took.Round(time.Millisecond), before)
}

// SIGHUP and POST /rotate rotate connections of the running process.
func TestHangupAndAdminRotate(t *testing.T) {
	p := startServer(t, "-rotate-spread", "off")
	client := p.client(t)
	if _, err := client.Hi(context.Background(), &hellov1.HiRequest{}); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	p.waitLog(t, `reason=signal`)
	resp, err := http.Post("http://"+p.admin+"/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"reason":"admin"`) {
		t.Errorf("POST /rotate = %d %s", resp.StatusCode, body)
	}
	// The client's new connection is younger than 1 s: POST /rotate says
	// so instead of a bare "rotated": 0.
	resp, err = http.Post("http://"+p.admin+"/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"skipped_young":`) || !strings.Contains(string(body), `"min_age":"1s"`) {
		t.Errorf("POST /rotate of young connections = %d %s; want the skipped count and the min age", resp.StatusCode, body)
	}
}

// -h prints the flags and how to set them in the environment, and exits
// 0, without an error line.
func TestHelpExitsZero(t *testing.T) {
	out, err := exec.Command(binary, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("server -h: %v\n%s", err, out)
	}
	for _, want := range []string{"\n  -http-max-connection-age ", "\n  -max-connection-age ", "ROTOR_GRPC_ADDR"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("server -h printed %q; want %s in it", out, want)
		}
	}
	if strings.Contains(string(out), "ERROR") {
		t.Errorf("server -h printed %q; want no error", out)
	}
}

// -log-level sets the lowest level logged: at warn the Info line of the
// start is not written; at the default, info, it is.
func TestLogLevel(t *testing.T) {
	const started = "rotor example server starting"
	quiet := startServer(t, "-log-level", "warn")
	loud := startServer(t)
	loud.waitLog(t, started)
	if strings.Contains(quiet.Log.String(), started) {
		t.Errorf("with -log-level warn the server logged %q; want no Info line:\n%s", started, quiet.Log.String())
	}
}

func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadFlagsFailClearly(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"-max-connection-age", "100ms"}, "", "MaxConnectionAge"},
		{[]string{"-drain-timeout", "1s"}, "", "DrainTimeout"},
		{nil, "ROTOR_SHUTDOWN_DELAY=later", "ROTOR_SHUTDOWN_DELAY"},
		{[]string{"-admin-addr", "0.0.0.0:0"}, "", "WithPublicAdmin"},
		{[]string{"-http-addr", "127.0.0.1:0", "-http-max-connection-age", "100ms"}, "", "gateway.Config.MaxConnectionAge"},
		{[]string{"-http-max-connection-age", "soon"}, "", "-http-max-connection-age"},
		{[]string{"-log-level", "loud"}, "", "-log-level"},
	} {
		cmd := exec.Command(binary, append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", ""}, tc.args...)...)
		cmd.Env = os.Environ()
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("server %v %s: err %v, output %q; want a failure naming %s", tc.args, tc.env, err, out, tc.want)
		}
	}
}
