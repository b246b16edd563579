package deadline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRunTimesOutWithTheStepsName(t *testing.T) {
	ctx := WithScale(context.Background(), 0.001) // 2 min → 120 ms
	start := time.Now()
	err := Run(ctx, "CNI DEL", AgentStep, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	to, ok := As(err)
	if !ok {
		t.Fatalf("want a TimedOut, got %v", err)
	}
	if to.Step != "CNI DEL" || to.After != 120*time.Millisecond || err.Error() != "timed out: CNI DEL after 120ms" {
		t.Errorf("TimedOut = %+v (%v)", to, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("a TimedOut is not a DeadlineExceeded")
	}
}

func TestRunKeepsOtherErrorsAndTheCallersCancel(t *testing.T) {
	boom := errors.New("boom")
	if err := Run(context.Background(), "s", time.Minute, func(context.Context) error { return boom }); err != boom {
		t.Errorf("fn's own error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, "s", time.Minute, func(ctx context.Context) error { return ctx.Err() })
	if _, ok := As(err); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancel by the caller (Ctrl-C) is not a timeout: %v", err)
	}
	if err := Run(context.Background(), "s", time.Minute, func(context.Context) error { return nil }); err != nil {
		t.Error(err)
	}
}

func TestParseScale(t *testing.T) {
	for in, want := range map[string]float64{"1": 1, "2.5": 2.5, "0.1": 0.1, "100": 100} {
		if got, err := ParseScale(in); err != nil || got != want {
			t.Errorf("ParseScale(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "-1", "101", "NaN", "x", "", "Inf"} {
		if _, err := ParseScale(in); err == nil {
			t.Errorf("ParseScale(%q) took it", in)
		}
	}
	t.Setenv(ScaleEnv, "0")
	if _, err := ScaleFromEnv(); err == nil || !strings.Contains(err.Error(), ScaleEnv) {
		t.Errorf("a bad %s must be refused naming it: %v", ScaleEnv, err)
	}
	if Scaled(context.Background(), time.Second) != time.Second {
		t.Error("no scale is 1")
	}
}
