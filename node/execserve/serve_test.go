package execserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve starts Serve on a pair of pipes and returns a Client talking to it
// and a func that ends the server's input and waits for it.
func serve(t *testing.T) (*Client, func() error) {
	t.Helper()
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(context.Background(), reqR, respW, nil)
		respW.Close()
		done <- err
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			reqW.Close()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return NewClient(reqW, respR), stop
}

func TestCall(t *testing.T) {
	c, stop := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		argv     []string
		stdout   string
		stderr   string
		exitCode int
		errText  string
	}{
		{"output", []string{"sh", "-c", "echo out; echo err >&2"}, "out\n", "err\n", 0, ""},
		{"exit code", []string{"sh", "-c", "exit 3"}, "", "", 3, ""},
		// A shell (and an SSH session) reports 128+N for signal N.
		{"killed by a signal", []string{"sh", "-c", "kill -9 $$"}, "", "", 137, ""},
		{"arguments after -c", []string{"sh", "-c", `echo "$1|$2"`, "sh", "a b", "c"}, "a b|c\n", "", 0, ""},
		{"not found", []string{"/nonexistent/cmd"}, "", "", 0, "no such file"},
		{"empty argv", nil, "", "", 0, "empty argv"},
		// stdin is /dev/null, as with a session that sends no input.
		{"no input", []string{"cat"}, "", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Call(ctx, tt.argv)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if string(resp.Stdout) != tt.stdout || string(resp.Stderr) != tt.stderr || resp.ExitCode != tt.exitCode {
				t.Errorf("got %q %q %d, want %q %q %d", resp.Stdout, resp.Stderr, resp.ExitCode, tt.stdout, tt.stderr, tt.exitCode)
			}
			if !strings.Contains(resp.Error, tt.errText) || (tt.errText == "") != (resp.Error == "") {
				t.Errorf("error %q, want one containing %q", resp.Error, tt.errText)
			}
		})
	}
	if err := stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// A client that gave up on a call refuses further calls: the late answer
// would be taken for the next one's.
func TestCallDeadline(t *testing.T) {
	c, _ := serve(t)
	// Cancelled, not timed out: the server gets no deadline and the
	// command outlives the call.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Call(ctx, []string{"sleep", "2"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call past its deadline: %v, want Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Call returned after %s", d)
	}
	if _, err := c.Call(context.Background(), []string{"true"}); !errors.Is(err, ErrBroken) {
		t.Errorf("Call after an abandoned one: %v, want ErrBroken", err)
	}
}

func TestServerKillsAtTheRequestDeadline(t *testing.T) {
	resp := handle(context.Background(), "/unused", Request{Argv: []string{"sleep", "30"}, TimeoutMs: 200}, nil)
	if !strings.Contains(resp.Error, "deadline") || resp.ExitCode != -1 {
		t.Errorf("got %+v, want an error saying it was killed at its deadline", resp)
	}
}

func TestCallServerGone(t *testing.T) {
	c, stop := serve(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Call(context.Background(), []string{"true"})
	if !errors.Is(err, ErrBroken) {
		t.Fatalf("Call to a server that ended: %v, want ErrBroken", err)
	}
}

// "nodeagent" names the server's own binary, wherever it is installed.
func TestNodeagentIsSelf(t *testing.T) {
	resp := execute(context.Background(), "/bin/echo", []string{"nodeagent", "boot"})
	if resp.Error != "" || string(resp.Stdout) != "boot\n" {
		t.Errorf("got %+v, want /bin/echo run with its argument", resp)
	}
}

// A request the InProcess takes is answered by it, within the request's
// deadline; the rest run as processes.
func TestInProcess(t *testing.T) {
	inproc := func(ctx context.Context, argv []string) (Response, bool) {
		if argv[0] != "inproc" {
			return Response{}, false
		}
		_, hasDeadline := ctx.Deadline()
		return Response{Stdout: []byte(fmt.Sprintf("deadline=%v", hasDeadline))}, true
	}
	resp := handle(context.Background(), "/unused", Request{Argv: []string{"inproc"}, TimeoutMs: 1000}, inproc)
	if string(resp.Stdout) != "deadline=true" {
		t.Errorf("in process: %+v", resp)
	}
	resp = handle(context.Background(), "/unused", Request{Argv: []string{"echo", "ran"}}, inproc)
	if string(resp.Stdout) != "ran\n" {
		t.Errorf("as a process: %+v", resp)
	}
}
