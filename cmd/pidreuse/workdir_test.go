package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pidreuse/pidreuse/internal/flock"
)

// A run's dir goes when nothing in it is kept; when artifacts are kept,
// they are all that is left (no lock file beside them); a dir the user
// named stays, without the run's lock file.
func TestRunDirClose(t *testing.T) {
	open := func(t *testing.T, own bool) *runDir {
		dir := filepath.Join(t.TempDir(), "pidreuse-run")
		l, err := flock.CreateDir(dir, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		return &runDir{path: dir, own: own, lock: l}
	}
	t.Run("own, nothing kept", func(t *testing.T) {
		d := open(t, true)
		os.MkdirAll(filepath.Join(d.path, "crio", "crio0"), 0o755) // a node that removed its files
		d.close()
		if _, err := os.Stat(d.path); !os.IsNotExist(err) {
			t.Fatalf("run dir still there: %v", err)
		}
	})
	t.Run("own, artifacts kept", func(t *testing.T) {
		d := open(t, true)
		art := filepath.Join(d.path, "crio", "artifacts", "crio0")
		os.MkdirAll(art, 0o755)
		os.WriteFile(filepath.Join(art, "console.log"), []byte("x"), 0o644)
		d.close()
		var left []string
		filepath.WalkDir(d.path, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel(d.path, p)
				left = append(left, rel)
			}
			return nil
		})
		if len(left) != 1 || left[0] != filepath.Join("crio", "artifacts", "crio0", "console.log") {
			t.Fatalf("left %v, want only the artifact", left)
		}
	})
	t.Run("named by the user", func(t *testing.T) {
		d := open(t, false)
		d.close()
		entries, err := os.ReadDir(d.path)
		if err != nil || len(entries) != 0 {
			t.Fatalf("want the dir, empty: %v %v", entries, err)
		}
	})
}
