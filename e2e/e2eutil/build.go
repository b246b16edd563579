// Package e2eutil holds what both Ginkgo suites need: building the node
// agent for a run and watching the real machine's network state.
package e2eutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// RepoRoot finds the module root from this source file, so suites work
// whatever directory `go test` runs them in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildAgent builds nodeagent, failonce and podserver (static, like the image's) into
// dir and returns the nodeagent path.
func BuildAgent(ctx context.Context, dir string) (string, error) {
	for _, name := range []string{"nodeagent", "failonce", "podserver"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("build %s: %w\n%s", name, err, strings.TrimSpace(string(out)))
		}
	}
	return filepath.Join(dir, "nodeagent"), nil
}
