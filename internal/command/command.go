// Package command runs external commands so that a failure says what ran,
// how it ended and how its output ended, without the caller keeping that
// output or a log at hand.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/pidreuse/pidreuse/internal/shell"
)

// TailLines is how many of a failed command's last lines of output its
// Error carries.
const TailLines = 40

// tailBytes bounds what Run keeps of the output, however long its lines.
const tailBytes = 16 << 10

// Error is a command that did not start, did not exit 0, or was ended by
// its context.
type Error struct {
	// Line is the command line (cmd.Args, quoted to paste into a shell).
	Line string
	// Err is the context's error when the context ended the command, else
	// what exec.Cmd.Run returned (an *exec.ExitError when it ran).
	Err error
	// Output is the last TailLines lines of its diagnostics: of stdout and
	// stderr in the order written when they went to one writer (or both
	// nowhere), else of stderr alone.
	Output string
}

func (e *Error) Error() string {
	how := "failed"
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		how = "interrupted"
	}
	msg := fmt.Sprintf("`%s` %s: %v", e.Line, how, e.Err)
	if e.Output != "" {
		msg += "\n--- last lines of its output ---\n" + e.Output
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs cmd and waits for it. cmd must be made by
// exec.CommandContext(ctx, …) with the same ctx, so that the command ends
// with ctx. Whatever cmd.Stdout and cmd.Stderr point at still gets the
// output (nil still discards it). Run also keeps the last lines of the
// command's diagnostics, and a failure is an *Error carrying them. Those
// are stdout and stderr together when the caller sends both to one writer
// (a log, one buffer, or nowhere); a stdout the caller keeps apart is its
// data (a listing, JSON), which would only push the error message out of
// the tail, so then they are stderr's alone.
func Run(ctx context.Context, cmd *exec.Cmd) error {
	line := shell.Join(cmd.Args)
	if cmd.Cancel == nil {
		// CommandContext sets Cancel; exec.Command does not.
		return &Error{Line: line, Err: errors.New("made without exec.CommandContext, so it would outlive its context")}
	}
	t := &tail{max: tailBytes}
	if sameWriter(cmd.Stdout, cmd.Stderr) {
		// One writer stays one: exec then sends both streams through one
		// pipe, so the tail has them in the order written.
		cmd.Stdout = tee(t, cmd.Stdout)
		cmd.Stderr = cmd.Stdout
	} else {
		cmd.Stderr = tee(t, cmd.Stderr)
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return &Error{Line: line, Err: err, Output: LastLines(t.String(), TailLines)}
}

func tee(t *tail, w io.Writer) io.Writer {
	if w == nil {
		return t
	}
	return io.MultiWriter(t, w)
}

// sameWriter is a == b, false for writers that cannot be compared (as
// exec.Cmd itself decides whether stdout and stderr are one).
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// tail keeps about the last max bytes written to it.
type tail struct {
	max int
	buf []byte
	cut bool // bytes were dropped from the front
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

// String is the kept output; when its start was dropped, the partial first
// line goes too, unless it is the only one.
func (t *tail) String() string {
	b, cut := t.buf, t.cut
	if len(b) > t.max {
		b, cut = b[len(b)-t.max:], true
	}
	s := string(b)
	if cut {
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = strings.ToValidUTF8(s, "")
	}
	return s
}

// LastLines returns the last n lines of s, without the line break that
// ends the last one.
func LastLines(s string, n int) string {
	s = strings.TrimRight(s, "\r\n")
	if n <= 0 || s == "" {
		return ""
	}
	i := len(s)
	for ; n > 0 && i >= 0; n-- {
		i = strings.LastIndexByte(s[:i], '\n')
	}
	return s[i+1:]
}
