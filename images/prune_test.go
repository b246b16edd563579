package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrune(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	mk := func(name string, age time.Duration) string {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, ManifestName), []byte("{}"), 0o644)
		os.Chtimes(filepath.Join(dir, ManifestName), now.Add(-age), now.Add(-age))
		return dir
	}
	old := mk(strings.Repeat("a", 64), 48*time.Hour)
	recent := mk(strings.Repeat("b", 64), 48*time.Hour)
	markUsed(recent) // built long ago, used just now
	notOurs := mk(".tmp-"+strings.Repeat("c", 64)+"-1", 48*time.Hour)

	got, err := Prune(root, 24*time.Hour, now, true)
	if err != nil || len(got) != 1 || got[0] != old {
		t.Fatalf("dry run: %v %v, want only %s", got, err, old)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("a dry run removed something")
	}
	if got, err = Prune(root, 24*time.Hour, now, false); err != nil || len(got) != 1 {
		t.Fatalf("prune: %v %v", got, err)
	}
	for dir, want := range map[string]bool{old: false, recent: true, notOurs: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

func TestPruneRootfsTarballs(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	tars := filepath.Join(root, RootfsCacheDir)
	os.MkdirAll(tars, 0o755)
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(tars, name)
		os.WriteFile(p, []byte("tar"), 0o644)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
		return p
	}
	old := mk(strings.Repeat("d", 64)+".tar", 48*time.Hour)
	recent := mk(strings.Repeat("e", 64)+".tar", time.Hour)
	partial := mk(".tmp-"+strings.Repeat("f", 64)+".tar", 48*time.Hour) // a build in progress names its own

	got, err := Prune(root, 24*time.Hour, now, false)
	if err != nil || len(got) != 1 || got[0] != old {
		t.Fatalf("prune: %v %v, want only %s", got, err, old)
	}
	for p, want := range map[string]bool{old: false, recent: true, partial: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
