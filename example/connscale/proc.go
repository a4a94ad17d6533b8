package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// childEnv carries a child's spec, as JSON: the command runs as that child
// when it is set (and its test binary too, see TestMain).
const childEnv = "ROTOR_CONNSCALE_CHILD"

// A childSpec says what a child process is.
type childSpec struct {
	Role string `json:"role"` // "server" or "client"

	// Server.
	Mode string        `json:"mode,omitempty"` // "plain" or "rotor"
	Age  time.Duration `json:"age,omitempty"`  // MaxConnectionAge; server.Off for none

	// Client.
	Target  string `json:"target,omitempty"`  // the server's host:port
	First   int    `json:"first,omitempty"`   // global index of its first connection
	Count   int    `json:"count,omitempty"`   // connections it holds
	Total   int    `json:"total,omitempty"`   // connections of all clients
	Sources int    `json:"sources,omitempty"` // loopback source addresses
}

// A request is one command to a child, one JSON line on its stdin; the
// child answers each with one JSON line on its stdout.
type request struct {
	Cmd    string        `json:"cmd"`
	At     time.Time     `json:"at,omitzero"`      // when to start, on the shared wall clock
	Ramp   time.Duration `json:"ramp,omitempty"`   // connect: spread the connections over this
	Active bool          `json:"active,omitempty"` // connect: start calling once connected
	Path   string        `json:"path,omitempty"`   // heap: where to write the profile
}

// childErr is the part of every answer that says it failed.
type childErr struct {
	Err string `json:"err,omitempty"`
}

// runChild runs the child spec describes: it answers first with what the
// parent needs to know of it (a server's addresses), then answers commands
// from stdin until stdin ends or a "quit" command. It returns the exit code.
func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(os.Stderr, "connscale child: bad %s: %v\n", childEnv, err)
		return 2
	}
	var (
		serve func(request) any
		hello any
		err   error
	)
	switch s.Role {
	case "server":
		serve, hello, err = startServer(s)
	case "client":
		serve, hello, err = startClient(s)
	default:
		err = fmt.Errorf("unknown role %q", s.Role)
	}
	out := json.NewEncoder(os.Stdout)
	if err != nil {
		_ = out.Encode(childErr{Err: err.Error()})
		return 1
	}
	if err := out.Encode(hello); err != nil {
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			_ = out.Encode(childErr{Err: err.Error()})
			continue
		}
		if req.Cmd == "quit" {
			return 0
		}
		if err := out.Encode(serve(req)); err != nil {
			return 1
		}
	}
	// stdin ended: the parent is gone or done with us.
	return 0
}

// A child is a running child process, seen from the parent.
type child struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan []byte // its stdout, a line at a time; closed at EOF

	mu sync.Mutex // one command at a time
}

// startChild starts the command again as the child spec describes; its
// stderr goes to logw.
func startChild(name string, spec childSpec, logw io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = logw
	// If the parent dies without cleaning up, so do its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, in: in, lines: make(chan []byte, 1)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 64<<20) // a burst's Ready times are one long line
		for sc.Scan() {
			c.lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	return c, nil
}

// call sends req and decodes the answer into resp.
func (c *child) call(ctx context.Context, req request, resp any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, req.Cmd, err)
	}
	if err := c.read(ctx, resp); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, req.Cmd, err)
	}
	return nil
}

// read decodes the child's next line into resp.
func (c *child) read(ctx context.Context, resp any) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case line, ok := <-c.lines:
		if !ok {
			return errors.New("the process exited (its stderr says why)")
		}
		var e childErr
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("answer %q: %w", line, err)
		}
		if e.Err != "" {
			return errors.New(e.Err)
		}
		if resp == nil {
			return nil
		}
		return json.Unmarshal(line, resp)
	}
}

// stop asks the child to quit, and kills it (by its PID) if it has not
// within a few seconds.
func (c *child) stop() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
