package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCRIStepNoRuntime(t *testing.T) {
	endpoint := "unix://" + filepath.Join(t.TempDir(), "crio.sock")
	for _, sub := range []string{"version", "pods", "containers"} {
		_, err := run(context.Background(), []string{"cri", sub, "--endpoint", endpoint, "--timeout", "2s"})
		want := "CRI-O not reachable at " + endpoint + ": is crio.service running?"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cri %s: error = %v, want %q", sub, err, want)
		}
	}
}

func TestCRIStepUsage(t *testing.T) {
	for _, args := range [][]string{
		{"cri", "images"},
		{"cri", "pods", "--timeout", "soon"},
		{"cri", "pods", "extra"},
	} {
		_, err := run(context.Background(), args)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: error = %v, want a usage error", args, err)
		}
	}
}
