// Package execserve is the harness's small exec protocol: one JSON request
// line in, one JSON response line out, each request run as a fresh process.
// A sandbox node's init serves it on its stdin and stdout (the sandbox's
// stand-in for sshd); on a VM one long SSH session serves it, so a step
// costs a line each way instead of a new SSH session and a login shell.
// Client is the harness's side. Node-side code: it imports nothing of the
// host-side harness.
package execserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Request is one command to run; TimeoutMs, when set, kills it after that
// long.
type Request struct {
	Argv      []string `json:"argv"`
	TimeoutMs int64    `json:"timeoutMs,omitempty"`
}

// Response is what the command produced. Error is a failure to run it, not a
// non-zero exit.
type Response struct {
	Stdout   []byte `json:"stdout"`
	Stderr   []byte `json:"stderr"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// InProcess may answer a request itself instead of running a process for
// it; ok false hands the request on to a process of its own.
type InProcess func(ctx context.Context, argv []string) (resp Response, ok bool)

// Serve runs one command per request line, in order, until its input ends
// (the harness closed the node or the session). inproc, when not nil, sees
// each request first.
func Serve(ctx context.Context, r io.Reader, w io.Writer, inproc InProcess) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = fmt.Sprintf("bad request: %v", err)
		} else {
			resp = handle(ctx, self, req, inproc)
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("serve: write response: %w", err)
		}
	}
	return sc.Err()
}

// handle answers one request within its deadline: in process when inproc
// takes it, else as a process of its own.
func handle(ctx context.Context, self string, req Request, inproc InProcess) Response {
	if len(req.Argv) == 0 {
		return Response{Error: "empty argv"}
	}
	if req.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	if inproc != nil {
		if resp, ok := inproc(ctx, req.Argv); ok {
			return resp
		}
	}
	return execute(ctx, self, req.Argv)
}

// execute runs argv ("nodeagent" naming this binary) until it exits or
// ctx ends.
func execute(ctx context.Context, self string, argv []string) Response {
	name := argv[0]
	if name == "nodeagent" {
		argv = append([]string{self}, argv[1:]...)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A plugin the command left behind may hold its output open: answer
	// once the command itself is done (the harness halts the node when a
	// step passes its deadline, and every process in it dies).
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	resp := Response{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		resp.Error = fmt.Sprintf("%s: %v (killed at its deadline)", name, ctx.Err())
		resp.ExitCode = -1
	case errors.As(err, &exit):
		resp.ExitCode = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// What a shell, and so an SSH session, reports.
			resp.ExitCode = 128 + int(ws.Signal())
		}
	default:
		resp.Error = fmt.Sprintf("%s: %v", name, err)
	}
	return resp
}
