package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// cmdClean removes what crashed runs left behind. Sandbox nodes die with
// their harness (their PID 1 has a parent-death signal), so only their
// work dirs can be left.
func cmdClean(ctx context.Context, args []string) (int, error) {
	matches, err := filepath.Glob(filepath.Join(os.TempDir(), "pidreuse-*"))
	if err != nil {
		return exitNoVerdict, err
	}
	for _, m := range matches {
		if !strings.HasPrefix(filepath.Base(m), "pidreuse-") {
			continue
		}
		if err := os.RemoveAll(m); err != nil {
			return exitNoVerdict, fmt.Errorf("clean: %w", err)
		}
		fmt.Println("removed", m)
	}
	return exitGood, nil
}
