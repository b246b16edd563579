package components

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// regexpLogPath finds the kept log of a failed BuildCRIOTree in its error.
var regexpLogPath = regexp.MustCompile(`/\S*pidreuse-build-crio-[0-9a-f]+\.log`)

func TestCopyTree(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"go.mod": "module github.com/cri-o/cri-o\n", "hack/tag.sh": "#!/bin/sh\n", ".git/HEAD": "ref",
		"vendor/a/.git": "gitdir: elsewhere", ".github/workflows/x.yml": "x",
		"bin/crio": "old build", "_output/src/x": "gopath", "build/bin/ginkgo": "tool", "pinns/src/pinns.o": "stale",
		"pinns/src/pinns.c": "int main;", "vendor/b/bin/x.go": "package x", "test/build/y.go": "package y",
	})
	os.Chmod(filepath.Join(src, "hack", "tag.sh"), 0o555)
	os.Symlink("hack/tag.sh", filepath.Join(src, "link"))
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyTree(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	for _, kept := range []string{"pinns/src/pinns.c", "vendor/b/bin/x.go", "test/build/y.go"} {
		if _, err := os.Stat(filepath.Join(dst, kept)); err != nil {
			t.Errorf("%s not copied: %v", kept, err)
		}
	}
	for _, gone := range []string{".git", "vendor/a/.git", "bin", "_output", "build", "pinns/src/pinns.o"} {
		if _, err := os.Lstat(filepath.Join(dst, gone)); !os.IsNotExist(err) {
			t.Errorf("%s copied (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, ".github", "workflows", "x.yml")); err != nil {
		t.Errorf("other dot dirs must be copied: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dst, "hack", "tag.sh")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("script mode %v, %v; want 0755 (executable, and writable for the build)", st.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "hack/tag.sh" {
		t.Errorf("symlink %q, %v", l, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := copyTree(ctx, src, filepath.Join(t.TempDir(), "copy")); err == nil {
		t.Error("copyTree ignored a cancelled context")
	}
}

func TestInstallAll(t *testing.T) {
	stage, out := t.TempDir(), t.TempDir()
	writeTree(t, stage, map[string]string{"crio": "new crio", "pinns": "new pinns"})
	writeTree(t, out, map[string]string{"crio": "old crio"})
	built := map[string]string{CRIO: filepath.Join(stage, "crio"), Pinns: filepath.Join(stage, "pinns")}

	// Cancelled before the renames: out keeps what it had, and no
	// temporary file.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := installAll(ctx, built, out); err == nil {
		t.Fatal("installAll ignored a cancelled context")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("out holds %v after a cancelled install, want the old crio only", entries)
	}
	if data, _ := os.ReadFile(filepath.Join(out, "crio")); string(data) != "old crio" {
		t.Errorf("crio = %q after a cancelled install", data)
	}

	paths, err := installAll(context.Background(), built, out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{CRIO: "new crio", Pinns: "new pinns"} {
		data, err := os.ReadFile(paths[name])
		st, _ := os.Stat(paths[name])
		if err != nil || string(data) != want || st.Mode().Perm() != 0o755 || paths[name] != filepath.Join(out, name) {
			t.Errorf("%s at %s: %q, %v, mode %v", name, paths[name], data, err, st.Mode())
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 2 {
		t.Errorf("out holds %v, want crio and pinns only", entries)
	}
}

func TestBuildCRIOTreeNotCRIO(t *testing.T) {
	// A tree that is not CRI-O fails before any compiling, says why, and
	// leaves the out dir empty.
	src, out := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]string{"go.mod": "module example.com/not/crio\n"})
	_, err := BuildCRIOTree(context.Background(), src, out, nil)
	if err == nil || !strings.Contains(err.Error(), "not a CRI-O source tree") || !strings.Contains(err.Error(), "last lines of the build log") {
		t.Errorf("err = %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("out holds %v", entries)
	}
	// The failed build's log is kept next to its (removed) work dir.
	m := regexpLogPath.FindString(err.Error())
	if _, serr := os.Stat(m); m == "" || serr != nil {
		t.Errorf("no kept log named in the error (%q, %v)", m, serr)
	}
	os.Remove(m)
}
