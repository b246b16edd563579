// Package filetest makes the trees of files, with chosen ages, that the
// tests of `pidreuse clean` and its policy (harness/reap) reap.
package filetest

import (
	"os"
	"testing"
	"time"
)

// Mkdir makes dir and its parents or fails the test.
func Mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// Write writes a small file at path, last modified at mtime.
func Write(t testing.TB, path string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	SetTimes(t, mtime, path)
}

// SetTimes sets the access and modification times of paths to mtime.
func SetTimes(t testing.TB, mtime time.Time, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}
