package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildCRIOExitCodes(t *testing.T) {
	// The failed build keeps its log in $TMPDIR: let the test remove it.
	t.Setenv("TMPDIR", t.TempDir())
	out := t.TempDir()
	notCRIO := t.TempDir()
	os.WriteFile(filepath.Join(notCRIO, "go.mod"), []byte("module example.com/x\n"), 0o644)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"build"}, exitUsage, "pidreuse build crio --src DIR --out DIR"},
		{[]string{"build", "containerd"}, exitUsage, "pidreuse build crio"},
		{[]string{"build", "crio", "--out", out}, exitUsage, "--src is required"},
		{[]string{"build", "crio", "--src", notCRIO}, exitUsage, "--out is required"},
		{[]string{"build", "crio", "--src", "/nonexistent", "--out", out}, exitUsage, "--src"},
		{[]string{"build", "crio", "--src", notCRIO, "--out", file}, exitUsage, "not a directory"},
		{[]string{"build", "crio", "--src", notCRIO, "--out", "/nonexistent/deeper/out"}, exitUsage, "--out: mkdir /nonexistent/deeper/out: no such file"},
		{[]string{"build", "crio", "--src", notCRIO, "--out", out, "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"build", "crio", "--bogus"}, exitUsage, "bogus"},
		// A tree that does not build is no verdict: skip, in a bisect.
		{[]string{"build", "crio", "--src", notCRIO, "--out", out}, exitNoVerdict, "not a CRI-O source tree"},
		{[]string{"build", "crio", "-h"}, exitGood, "-src DIR"}, // help goes to stdout
	} {
		r := runCLI(t, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.says) {
			t.Errorf("pidreuse %s: exit %d, want %d; stderr should say %q:\n%s", strings.Join(c.args, " "), r.code, c.code, c.says, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed builds left %v in --out", entries)
	}
}
