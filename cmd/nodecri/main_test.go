package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestNoRuntime(t *testing.T) {
	endpoint := "unix://" + filepath.Join(t.TempDir(), "crio.sock")
	for _, sub := range []string{"version", "pods", "containers"} {
		_, code, err := run(context.Background(), []string{sub, "--endpoint", endpoint, "--timeout", "2s"})
		want := "CRI runtime not reachable at " + endpoint + ": is its service (crio, cri-docker) running?"
		if err == nil || code != 1 || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: exit %d, error = %v, want 1 and %q", sub, code, err, want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"images"},
		{"pods", "--timeout", "soon"},
		{"pods", "extra"},
	} {
		if _, code, err := run(context.Background(), args); err == nil || code != 2 {
			t.Errorf("%v: exit %d, error = %v, want a usage error (2)", args, code, err)
		}
	}
}
