package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/pidreuse/pidreuse/harness/deadline"
)

// timeoutScaleFlag is --timeout-scale, shared by the commands that run
// nodes: it multiplies every step's deadline (harness/deadline).
type timeoutScaleFlag struct{ value string }

func (t *timeoutScaleFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&t.value, "timeout-scale", "", "multiply every step's deadline by `X` (agent calls, plugin runs, boots, pod waits), e.g. 3 on a slow or busy host (default 1, or $"+deadline.ScaleEnv+")")
}

// scale is the flag's value, else the variable's, else 1; a bad value is
// a usage error naming where it came from.
func (t *timeoutScaleFlag) scale() (float64, error) {
	if t.value == "" {
		s, err := deadline.ScaleFromEnv()
		if err != nil {
			return 0, usageErr{err.Error()}
		}
		return s, nil
	}
	s, err := deadline.ParseScale(t.value)
	if err != nil {
		return 0, usageErr{fmt.Sprintf("--timeout-scale: %v", err)}
	}
	return s, nil
}

// withDeadlines returns ctx carrying the run's timeout scale.
func withDeadlines(ctx context.Context, scale float64) context.Context {
	return deadline.WithScale(ctx, scale)
}
