// Package cniplugin checks that a CNI plugin dir holds a loopback plugin
// pidreuse can judge: one that runs here and speaks the CNI version of the
// network list the node agent runs. The agent checks a dir before its
// first ADD or DEL with each plugin file (node side, recorded by
// node/agent); the plugin builder and the CLI check a dir before a run
// (host side): both use this package, so they cannot disagree.
package cniplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/internal/elfcheck"
)

// NetworkListVersion is the cniVersion of the network list the node agent
// runs: every loopback version in the matrix (v0.8.x to current) speaks it.
const NetworkListVersion = "0.4.0"

// Loopback is the plugin the bug lives in.
const Loopback = "loopback"

// CheckDir fails unless dir holds a loopback plugin that runs here and
// speaks NetworkListVersion; a bad plugin dir must never reach a verdict.
func CheckDir(ctx context.Context, dir string) error {
	p := filepath.Join(dir, Loopback)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("CNI plugin dir %s has no loopback plugin", dir)
	}
	if err := elfcheck.Executable(p); err != nil {
		return fmt.Errorf("CNI plugin: %w", err)
	}
	return checkVersion(ctx, p)
}

// versionTimeout bounds a plugin's VERSION answer: milliseconds for a
// real plugin.
const versionTimeout = 10 * time.Second

// checkVersion runs the plugin's VERSION command, which every CNI plugin
// answers without touching anything.
func checkVersion(ctx context.Context, plugin string) error {
	return checkVersionWithin(ctx, plugin, versionTimeout)
}

func checkVersionWithin(ctx context.Context, plugin string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
	cmd.Stdin = strings.NewReader("{}")
	// Its own process group, killed whole at the deadline: a plugin that
	// leaves a child holding its stdout must not make the check outlast
	// it (Output waits for the pipe's EOF; WaitDelay stops that wait).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("CNI plugin %s does not answer CNI_COMMAND=VERSION within %s (killed)", plugin, timeout)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The plugin answered and exited; a child it left holds stdout.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("CNI plugin %s does not run (CNI_COMMAND=VERSION): %w", plugin, err)
	}
	supported, err := ParseVersionReply(out)
	if err != nil {
		return fmt.Errorf("CNI plugin %s: %w", plugin, err)
	}
	for _, s := range supported {
		if s == NetworkListVersion {
			return nil
		}
	}
	return fmt.Errorf("CNI plugin %s supports CNI %v, not %s", plugin, supported, NetworkListVersion)
}

// ParseVersionReply reads a plugin's answer to CNI_COMMAND=VERSION.
func ParseVersionReply(out []byte) ([]string, error) {
	var v struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("answered VERSION with %q: %w", strings.TrimSpace(string(out)), err)
	}
	return v.Supported, nil
}
