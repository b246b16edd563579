package components

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/shell"
)

// run runs name with args in dir, appending the command line and all its
// output to the build log.
func (w *workspace) run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	_, err := w.runOut(ctx, dir, env, name, args...)
	return err
}

// runOut is run, but returns stdout instead of logging it; stderr is
// still logged. On failure it returns what stdout there was with the error
// (`go mod download -json` reports its error there).
func (w *workspace) runOut(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	fmt.Fprintf(w.log, "\n$ cd %s && %s\n", shell.Quote(dir), shell.Line(env, slices.Concat([]string{name}, args)))
	cmd := groupCommand(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, w.log
	start := time.Now()
	err := command.Run(ctx, cmd)
	fmt.Fprintf(w.log, "# %s took %s\n", name, time.Since(start).Round(time.Millisecond))
	if err != nil {
		w.log.Write(stdout.Bytes())
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

// groupCommand is exec.CommandContext that, when ctx ends, kills the command's
// whole process group: `go build` leaves its compile and cgo processes
// running if only it is killed, and a cancelled build must stop.
func groupCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild holding stdout must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// goEnv is the environment every go command runs with, after the caller's.
// GOTOOLCHAIN=local: only the module proxy is reachable, never a toolchain
// download. GOWORK=off: a go.work above the cache must not join the build.
// GOFLAGS is replaced, not extended: a user's -mod or -tags would change
// what gets built under an unchanged cache key.
func goEnv(goflags string, extra ...string) []string {
	return goEnvToolchain("local", goflags, extra...)
}

// goEnvToolchain is goEnv with another GOTOOLCHAIN, for a source tree that
// needs a newer go than this machine's (see goToolchain).
func goEnvToolchain(toolchain, goflags string, extra ...string) []string {
	return append([]string{"GOTOOLCHAIN=" + toolchain, "GOWORK=off", "GOFLAGS=" + goflags}, extra...)
}

// modInfo is what `go mod download -json` says about one module version.
type modInfo struct {
	Path, Version string
	Error         string
	Info          string // path of the .info file
	GoMod         string // path of the .mod file
	Dir           string // extracted source, read-only
	Sum, GoModSum string // go.sum hashes of the zip and the go.mod
}

// download fetches path@version into the module cache, checked against the
// checksum database like any other download.
func (w *workspace) download(ctx context.Context, path, version string) (*modInfo, error) {
	w.progress(fmt.Sprintf("downloading %s@%s", path, version))
	out, runErr := w.runOut(ctx, w.src, goEnv("-buildvcs=false"), "go", "mod", "download", "-json", path+"@"+version)
	var m modInfo
	if len(out) == 0 && runErr != nil {
		return nil, fmt.Errorf("download %s@%s (is the Go module proxy reachable?): %w", path, version, runErr)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("download %s@%s: bad `go mod download -json` output: %w", path, version, err)
	}
	if m.Error != "" {
		return nil, fmt.Errorf("download %s@%s (is the Go module proxy reachable?): %s", path, version, m.Error)
	}
	if runErr != nil {
		return nil, fmt.Errorf("download %s@%s: %w", path, version, runErr)
	}
	if m.GoMod == "" || m.Dir == "" || m.Info == "" {
		return nil, fmt.Errorf("download %s@%s: the go command did not report the module's files", path, version)
	}
	return &m, nil
}

// releaseTime is the module version's time as the proxy records it, which
// for a tag is its commit time. Builds stamp it as their build date, so
// two builds of a version are alike.
func releaseTime(m *modInfo) (string, error) {
	data, err := os.ReadFile(m.Info)
	if err != nil {
		return "", fmt.Errorf("read %s@%s info: %w", m.Path, m.Version, err)
	}
	var info struct{ Time time.Time }
	if err := json.Unmarshal(data, &info); err != nil || info.Time.IsZero() {
		return "", fmt.Errorf("%s@%s info %s has no time (%v): clear it with `go clean -modcache`", m.Path, m.Version, m.Info, err)
	}
	return info.Time.UTC().Format("2006-01-02T15:04:05Z"), nil
}
