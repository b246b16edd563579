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

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// RepoRoot finds the module root from this source file, so suites work
// whatever directory `go test` runs them in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildAgent builds the node-side binaries (internal/nodebin; static,
// like the image's) into dir and returns the nodeagent path.
func BuildAgent(ctx context.Context, dir string) (string, error) {
	for _, name := range nodebin.All() {
		if err := goBuild(ctx, dir, name); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, nodebin.Agent), nil
}

// BuildCLI builds the pidreuse CLI with the agent binaries next to it,
// where it looks for them, and returns the CLI's path.
func BuildCLI(ctx context.Context, dir string) (string, error) {
	if _, err := BuildAgent(ctx, dir); err != nil {
		return "", err
	}
	if err := goBuild(ctx, dir, "pidreuse"); err != nil {
		return "", err
	}
	return filepath.Join(dir, "pidreuse"), nil
}

func goBuild(ctx context.Context, dir, name string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, name), "./cmd/"+name)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := command.Run(ctx, cmd); err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	return nil
}

// LockedTempDir makes a new dir under $TMPDIR named after pattern (see
// os.MkdirTemp), locked for as long as the spec or suite that made it
// runs (see internal/flock), so a `pidreuse clean` on the same machine
// leaves it alone; it is removed, then unlocked, at cleanup.
func LockedTempDir(pattern string) string {
	GinkgoHelper()
	dir, lock, err := flock.CreateTempDir("", pattern, 0o700)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(lock.Release)
	DeferCleanup(os.RemoveAll, dir)
	return dir
}

// CLIDir builds the CLI (see BuildCLI) into a dir of the current spec or
// container, for specs that run `pidreuse` as a user does, and returns
// the CLI's path.
func CLIDir(ctx context.Context) string {
	GinkgoHelper()
	cli, err := BuildCLI(ctx, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	return cli
}

// VMTempDir makes a dir for a CLI run's TMPDIR that the spec removes at
// cleanup. It is world-readable because QEMU, running as its own user,
// opens the VM's disks in it.
func VMTempDir(pattern string) string {
	GinkgoHelper()
	dir, err := os.MkdirTemp("", pattern)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(dir, 0o755)).To(Succeed())
	DeferCleanup(os.RemoveAll, dir)
	return dir
}
