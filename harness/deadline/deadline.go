// Package deadline gives every blocking step of a run its deadline: one
// default per step, fitted to a TCG guest on a busy 2-core machine with
// margin, all multiplied by one scale a run carries in its context
// (`--timeout-scale`, PIDREUSE_TIMEOUT_SCALE). A step past its deadline
// ends with a *TimedOut, which says which step and after how long: no
// verdict, never a judgement of the component.
package deadline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// ScaleEnv names the variable that scales every deadline, as
// --timeout-scale does.
const ScaleEnv = "PIDREUSE_TIMEOUT_SCALE"

// MaxScale bounds a scale: a deadline 100 times the default is already
// hours for a boot, and past that a typo (1000 for 10.00) would make a
// stuck step wait for days.
const MaxScale = 100

// Defaults for the steps of a run; Scaled multiplies them.
const (
	// AgentStep bounds one node agent call (sandbox create, CNI ADD or
	// DEL, PID reuse, a probe): milliseconds on the sandbox, seconds over
	// SSH to a TCG guest; a plugin that never returns is what it catches.
	AgentStep = 2 * time.Minute
	// ShellStep bounds one shell command in a node (a journal read, a
	// systemctl call).
	ShellStep = 3 * time.Minute
	// LibvirtCall bounds one libvirt RPC (define, start, destroy, a
	// lookup): milliseconds on a healthy libvirtd, seconds over qemu+ssh;
	// a libvirtd re-probing QEMU can take a minute.
	LibvirtCall = 2 * time.Minute
	// Teardown bounds collecting a node's artifacts (journals, console,
	// state over SSH) and tearing it down (destroy, undefine, remove).
	Teardown = 5 * time.Minute
	// Transfer bounds one volume upload or download to a remote host: the
	// ~800 MiB base disk takes seconds on a LAN, minutes on a slow link.
	Transfer = 30 * time.Minute
)

type scaleKey struct{}

// WithScale returns ctx carrying scale for every deadline taken from it.
func WithScale(ctx context.Context, scale float64) context.Context {
	return context.WithValue(ctx, scaleKey{}, scale)
}

// Scale is the scale ctx carries, 1 when none.
func Scale(ctx context.Context) float64 {
	if s, ok := ctx.Value(scaleKey{}).(float64); ok && s > 0 {
		return s
	}
	return 1
}

// Scaled is d multiplied by ctx's scale.
func Scaled(ctx context.Context, d time.Duration) time.Duration {
	return time.Duration(float64(d) * Scale(ctx))
}

// ParseScale reads a scale as a flag or ScaleEnv gives it: a number
// above 0 and at most MaxScale.
func ParseScale(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > MaxScale {
		return 0, fmt.Errorf("timeout scale %q: want a number above 0 and at most %d (2 doubles every deadline)", s, MaxScale)
	}
	return f, nil
}

// ScaleFromEnv is ScaleEnv's scale, 1 when unset; a bad value is an error
// naming the variable.
func ScaleFromEnv() (float64, error) {
	v := os.Getenv(ScaleEnv)
	if v == "" {
		return 1, nil
	}
	f, err := ParseScale(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", ScaleEnv, err)
	}
	return f, nil
}

// TimedOut is a step that passed its deadline.
type TimedOut struct {
	Step  string
	After time.Duration
}

func (e *TimedOut) Error() string {
	return fmt.Sprintf("timed out: %s after %s", e.Step, e.After.Round(time.Millisecond))
}

// Is makes errors.Is(err, context.DeadlineExceeded) hold for a TimedOut,
// so code that checks for an ended context still sees one.
func (e *TimedOut) Is(target error) bool { return target == context.DeadlineExceeded }

// As returns the *TimedOut in err's chain, if any.
func As(err error) (*TimedOut, bool) {
	var t *TimedOut
	ok := errors.As(err, &t)
	return t, ok
}

// Run runs fn with a context that ends base×scale from now. If that
// deadline, and not ctx, ended fn, the error is a *TimedOut naming step
// (wrapping what fn returned is not useful: it is the cancellation).
func Run(ctx context.Context, step string, base time.Duration, fn func(context.Context) error) error {
	d := Scaled(ctx, base)
	cause := &TimedOut{Step: step, After: d}
	end := time.Now().Add(d)
	sctx, cancel := context.WithDeadlineCause(ctx, end, cause)
	defer cancel()
	err := fn(sctx)
	// fn may fail a moment before sctx says so: the far side of an exec
	// can enforce the same deadline itself (the sandbox's init kills the
	// command when the request's time is up) and answer first.
	if err != nil && ctx.Err() == nil && (errors.Is(context.Cause(sctx), cause) || !time.Now().Before(end)) {
		return cause
	}
	return err
}
