package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rotorkit/rotor/internal/netns"
	"github.com/rotorkit/rotor/internal/proc"
)

// l7Server is an nginx master process balancing gRPC per request.
type l7Server struct {
	proc     *proc.Process
	dir      string
	confPath string
	logPath  string
}

// renderNginx returns an nginx configuration that listens for HTTP/2
// without TLS (what gRPC clients speak with insecure credentials) and passes
// every request to one of the ready pods: unlike kube-proxy it balances
// requests, not connections, which is the L7 reference the lab offers.
func renderNginx(dir string, listen netip.AddrPort, backendPort int, ready []netip.Addr, workers int) string {
	var upstreams strings.Builder
	for _, ip := range ready {
		fmt.Fprintf(&upstreams, "        server %s;\n", netip.AddrPortFrom(ip, uint16(backendPort)))
	}
	if len(ready) == 0 {
		// nginx refuses an empty upstream block; a server marked down makes
		// every request fail with 502, like a Service without endpoints.
		upstreams.WriteString("        server 127.0.0.1:1 down;\n")
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	return fmt.Sprintf(`# Written by kubelab; reloaded with SIGHUP when the ready pods change.
user root;
worker_processes %d;
pid %s;
error_log %s notice;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    # Long RPCs and streams must not be cut by nginx's defaults (60 s), and
    # nginx must not close busy client connections after 1000 requests.
    client_body_timeout 1h;
    keepalive_timeout 1h;
    keepalive_requests 1000000;
    grpc_read_timeout 1h;
    grpc_send_timeout 1h;
    upstream pods {
%s        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 1h;
    }
    server {
        listen %s http2;
        location / {
            grpc_pass grpc://pods;
        }
    }
}
`, workers, p("nginx.pid"), p("nginx-error.log"),
		p("client_body"), p("proxy"), p("fastcgi"), p("uwsgi"), p("scgi"),
		upstreams.String(), listen)
}

// startL7 starts nginx in its own namespace and waits until it accepts
// connections from the client namespace.
func (l *Lab) startL7(ctx context.Context) error {
	nginx, err := netns.FindTool("nginx")
	if err != nil {
		return err
	}
	dir := filepath.Join(l.dir, "nginx")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	s := &l7Server{dir: dir, confPath: filepath.Join(dir, "nginx.conf"), logPath: filepath.Join(dir, "nginx-error.log")}
	if err := writeFileAtomic(s.confPath, renderNginx(dir, l.l7AddrPort(), l.cfg.L7Port, nil, l.cfg.L7Workers)); err != nil {
		return err
	}
	args := []string{
		"-p", dir + "/", // relative paths and the compiled-in prefix stay in the lab
		"-c", s.confPath,
		"-e", s.logPath, // the log used before the configuration is read
		"-g", "daemon off;", // stay in the foreground so the lab owns the master's PID
	}
	p, err := startProcess(l.nsL7, "nginx", filepath.Join(dir, "nginx.out"), os.Environ(), nginx, args...)
	if err != nil {
		return err
	}
	s.proc = p
	l.l7 = s
	return l.waitAccepting(ctx, p, l.l7AddrPort())
}

// reloadL7 rewrites nginx's configuration with the ready pods and makes the
// master reload it, waiting until new workers run the new configuration and
// the old ones stopped accepting connections.
func (l *Lab) reloadL7(ctx context.Context, ready []netip.Addr) error {
	s := l.l7
	before, err := os.Stat(s.logPath)
	if err != nil {
		return fmt.Errorf("kubelab: %w", err)
	}
	if err := writeFileAtomic(s.confPath, renderNginx(s.dir, l.l7AddrPort(), l.cfg.L7Port, ready, l.cfg.L7Workers)); err != nil {
		return err
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	// nginx reports a reload only in its error log: the master logs "start
	// worker processes" once the new workers run, and each old worker logs
	// "gracefully shutting down" when it has closed its listening sockets.
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ReadyTimeout)
	defer cancel()
	for {
		log := readFrom(s.logPath, before.Size())
		if i := strings.Index(log, "[emerg]"); i >= 0 {
			line, _, _ := strings.Cut(log[i:], "\n")
			return fmt.Errorf("kubelab: nginx rejected its new configuration: %s", line)
		}
		if strings.Contains(log, "start worker processes") && strings.Contains(log, "gracefully shutting down") {
			return nil
		}
		if s.proc.Exited() {
			return fmt.Errorf("kubelab: nginx exited (%s): %s", s.proc.ExitStatus(), tailFile(s.logPath, 2048))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubelab: nginx did not reload: %w; log: %s", ctx.Err(), tailFile(s.logPath, 2048))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// l7AddrPort is where nginx listens.
func (l *Lab) l7AddrPort() netip.AddrPort { return netip.AddrPortFrom(l7Addr, uint16(l.cfg.L7Port)) }
