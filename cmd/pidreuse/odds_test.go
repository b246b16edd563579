package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// odds refuses bad flags as usage (2) and what it cannot run with as no
// verdict (125), each in one line, before any VM starts.
func TestOddsBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --reboots", []string{"odds"}, exitUsage, "--reboots N is required"},
		{"pid_max below the kernel's minimum", []string{"odds", "--reboots", "2", "--pid-max", "100"}, exitUsage, "--pid-max 100: the kernel takes 301 to 4194304"},
		{"negative pods", []string{"odds", "--reboots", "2", "--pods", "-1"}, exitUsage, "--pods must be 0 or more"},
		{"unknown node", []string{"odds", "--reboots", "2", "--node", "crio-0.1"}, exitUsage, `unknown node "crio-0.1"`},
		{"stray argument", []string{"odds", "--reboots", "2", "now"}, exitUsage, `unexpected argument "now"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, nil, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, c.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("stderr %q: want one line containing %q", r.stderr, c.want)
			}
		})
	}
}

// The recorder must sit next to the agent: without it odds stops before
// it builds an image or boots anything.
func TestOddsNeedsTheRecorder(t *testing.T) {
	needRoot(t)
	agents := t.TempDir()
	for _, name := range nodebin.All() {
		if name != nodebin.CNIRecord {
			if err := os.Symlink(filepath.Join(binDir, name), filepath.Join(agents, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := runCLI(t, nil, "odds", "--node", "crio-1.34", "--reboots", "1", "--libvirt-socket", "/nonexistent/libvirt-sock", "--agent", filepath.Join(agents, nodebin.Agent))
	if r.code != exitNoVerdict || !strings.Contains(r.stderr, "the recording CNI plugin") || !strings.Contains(r.stderr, "make build") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
