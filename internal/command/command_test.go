package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"a\n\nb\n", 2, "\nb"}, // an empty line is a line
		{"\nb", 5, "\nb"},
		{"a\r\nb\r\n", 1, "b"},
		{"one line", 1, "one line"},
		{"a\nb\n\n\n", 1, "b"}, // trailing line breaks end the last line
		{"", 3, ""},
		{"a\nb", 0, ""},
	} {
		if got := LastLines(c.in, c.n); got != c.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestTail(t *testing.T) {
	for _, c := range []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"under the limit", 10, []string{"ab\n", "cd\n"}, "ab\ncd\n"},
		{"exactly the limit", 6, []string{"ab\n", "cd\n"}, "ab\ncd\n"},
		{"partial first line dropped", 5, []string{"ab\n", "cd\n"}, "cd\n"},
		{"one long line kept in part", 4, []string{"abcdefgh"}, "efgh"},
		{"compacted, then cut at a line", 4, []string{"a\nbc", "defghij", "k\nlm\n"}, "lm\n"},
		{"no broken UTF-8 at the cut", 3, []string{"xéé"}, "é"},
	} {
		tl := &tail{max: c.max}
		for _, w := range c.writes {
			if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", c.name, n, err)
			}
		}
		if got := tl.String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func sh(ctx context.Context, script string) *exec.Cmd {
	return exec.CommandContext(ctx, "sh", "-c", script, "sh")
}

// How the caller sends stdout and stderr.
const (
	apart   = iota // to two buffers: stdout is data
	oneBuf         // both to one buffer, as CombinedOutput
	nowhere        // both nil
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		script     string
		writers    int
		wantErr    string
		wantOut    string // what the caller's stdout writer got
		wantErrOut string // what the caller's stderr writer got
		tail       string // Error.Output
	}{
		{name: "success", script: "echo hi; echo err >&2", wantOut: "hi\n", wantErrOut: "err\n"},
		{name: "exit status, stderr in the tail", script: "echo out; echo err >&2; exit 3",
			wantErr: "`sh -c 'echo out; echo err >&2; exit 3' sh` failed: exit status 3", wantOut: "out\n", wantErrOut: "err\n", tail: "err"},
		{name: "one writer for both: both in order", script: "echo 1; echo 2 >&2; echo 3; exit 1", writers: oneBuf,
			wantErr: "exit status 1", wantOut: "1\n2\n3\n", tail: "1\n2\n3"},
		{name: "nowhere: both in order", script: "echo 1; echo 2 >&2; echo 3; exit 1", writers: nowhere,
			wantErr: "exit status 1", tail: "1\n2\n3"},
		{name: "data on stdout does not push the message out", script: "seq 1 1000; echo no such package >&2; exit 1",
			wantErr: "exit status 1", wantOut: "1\n2\n", tail: "no such package"},
		{name: "long output keeps the end", script: "seq 1 100 >&2; exit 1",
			wantErr: "exit status 1", tail: "61\n62"},
		{name: "no output", script: "exit 2", wantErr: "exit status 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := sh(ctx, c.script)
			var out, errOut bytes.Buffer
			switch c.writers {
			case apart:
				cmd.Stdout, cmd.Stderr = &out, &errOut
			case oneBuf:
				cmd.Stdout, cmd.Stderr = &out, &out
			}
			err := Run(ctx, cmd)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want an *Error containing %q", err, c.wantErr)
				}
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Errorf("%v does not wrap the *exec.ExitError", err)
				}
				if !strings.HasPrefix(e.Output, c.tail) {
					t.Errorf("Output %q, want it to start with %q", e.Output, c.tail)
				}
				if c.tail == "" && strings.Contains(err.Error(), "output") {
					t.Errorf("error speaks of output there was none of: %v", err)
				}
			}
			if !strings.HasPrefix(out.String(), c.wantOut) || !strings.HasPrefix(errOut.String(), c.wantErrOut) {
				t.Errorf("caller's writers got %q and %q, want %q and %q", out.String(), errOut.String(), c.wantOut, c.wantErrOut)
			}
		})
	}
}

func TestRunTailIsBounded(t *testing.T) {
	ctx := context.Background()
	err := Run(ctx, sh(ctx, "seq 1 100000; exit 1"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	var want []string
	for i := 100000 - TailLines + 1; i <= 100000; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if e.Output != strings.Join(want, "\n") {
		t.Errorf("Output is not the last %d lines: %q", TailLines, e.Output)
	}
}

func TestRunNotStarted(t *testing.T) {
	ctx := context.Background()
	err := Run(ctx, exec.CommandContext(ctx, "/nonexistent/tool", "--x"))
	if err == nil || !strings.Contains(err.Error(), "`/nonexistent/tool --x` failed") || !errors.Is(err, exec.ErrNotFound) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error %v", err)
	}
	if err := Run(ctx, exec.Command("true")); err == nil || !strings.Contains(err.Error(), "exec.CommandContext") {
		t.Errorf("a command without a context ran: %v", err)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Run(ctx, sh(ctx, "echo started; exec sleep 30"))
	if time.Since(start) > 10*time.Second {
		t.Errorf("Run outlived its context by %s", time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "started") {
		t.Errorf("error %v, want an interruption by the deadline with the output so far", err)
	}
}
