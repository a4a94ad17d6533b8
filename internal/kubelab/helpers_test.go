package kubelab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/testkit"
)

// Ports of the test pods: a gRPC port and an HTTP port on the same pods.
const (
	grpcPort = 50051
	httpPort = 8080
)

var testPorts = []ServicePort{{Name: "grpc", Port: grpcPort}, {Name: "http", Port: httpPort}}

var echo struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	if path := os.Getenv(signalHelperEnv); path != "" {
		runSignalHelper(path)
	}
	code := m.Run()
	if echo.dir != "" {
		os.RemoveAll(echo.dir)
	}
	os.Exit(code)
}

// echoBinary builds testdata/echo once per test run.
func echoBinary(t *testing.T) string {
	t.Helper()
	echo.once.Do(func() {
		echo.dir, echo.err = testkit.BuildDir("kubelab-echo-")
		if echo.err != nil {
			return
		}
		echo.path = filepath.Join(echo.dir, "echo")
		out, err := exec.Command("go", "build", "-o", echo.path, "./testdata/echo").CombinedOutput()
		if err != nil {
			echo.err = fmt.Errorf("go build ./testdata/echo: %v\n%s", err, out)
		}
	})
	if echo.err != nil {
		t.Fatal(echo.err)
	}
	return echo.path
}

// echoCommand runs the echo server on both test ports with extra flags.
func echoCommand(t *testing.T, extra ...string) func(Pod) Command {
	path := echoBinary(t)
	return func(Pod) Command {
		args := append([]string{"-grpc", strconv.Itoa(grpcPort), "-http", strconv.Itoa(httpPort)}, extra...)
		return Command{Path: path, Args: args}
	}
}

// newLab skips unless the host can run labs, builds one with the echo
// server and the test ports unless cfg says otherwise, and closes it when
// the test ends, printing the lab's logs first if the test failed.
func newLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	if cfg.ServerCommand == nil {
		cfg.ServerCommand = echoCommand(t)
	}
	if cfg.Ports == nil {
		cfg.Ports = testPorts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab %s logs:\n%s", lab.Prefix(), lab.Logs(2048))
		}
	})
	return lab
}

// httpConn is a keep-alive HTTP/1.1 connection made from the client
// namespace; every request on it goes to the pod conntrack pinned it to.
type httpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialHTTP(ctx context.Context, lab *Lab, addr string) (*httpConn, error) {
	conn, err := lab.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &httpConn{conn: conn, r: bufio.NewReader(conn)}, nil
}

// ask sends one request and returns the name of the pod that answered.
func (c *httpConn) ask() (string, error) {
	if err := c.conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := c.conn.Write([]byte("GET / HTTP/1.1\r\nHost: lab\r\n\r\n")); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&body); err != nil {
		return "", err
	}
	return strings.TrimSpace(body.String()), nil
}

func (c *httpConn) Close() error { return c.conn.Close() }

// askFresh asks once over a new connection.
func askFresh(ctx context.Context, lab *Lab, addr string) (string, error) {
	c, err := dialHTTP(ctx, lab, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ask()
}

// spread asks n times, each over a new connection, and counts the answers
// per pod.
func spread(t *testing.T, lab *Lab, addr string, n int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	counts := map[string]int{}
	for range n {
		name, err := askFresh(ctx, lab, addr)
		if err != nil {
			t.Fatalf("fresh connection to %s: %v", addr, err)
		}
		counts[name]++
	}
	return counts
}

// podNames returns the names of pods.
func podNames(pods []Pod) []string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return names
}

// processGone reports whether pid no longer exists (not even as a zombie).
func processGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

// labNamespaces returns the namespaces whose names start with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			found = append(found, n)
		}
	}
	return found
}
