package fileutil

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func TestSHA256(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "empty"), "", 0o644)
	write(t, filepath.Join(dir, "abc"), "abc", 0o644)
	if err := os.Symlink("abc", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for _, c := range []struct {
		name, sum string
		size      int64
		err       string
	}{
		{"empty", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0, ""},
		{"abc", abc, 3, ""},
		{"link", abc, 3, ""}, // the target's content
		{"missing", "", 0, "no such file"},
		{".", "", 0, "is a directory"},
	} {
		sum, size, err := SHA256(filepath.Join(dir, c.name))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SHA256(%s) error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || sum != c.sum || size != c.size {
			t.Errorf("SHA256(%s) = %s, %d, %v; want %s, %d", c.name, sum, size, err, c.sum, c.size)
		}
	}
}

func TestCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, src, "new", 0o600)
	if err := os.Symlink("src", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		src, dst string
		old      string // content already at dst, "" for none
		oldMode  os.FileMode
		mode     os.FileMode
		err      string
	}{
		{name: "new file", src: "src", dst: "a", mode: 0o755},
		{name: "through a symlink", src: "link", dst: "b", mode: 0o644},
		{name: "replaces a longer file and its mode", src: "src", dst: "c", old: "much older content", oldMode: 0o600, mode: 0o755},
		{name: "setuid kept", src: "src", dst: "d", mode: os.ModeSetuid | 0o755},
		{name: "missing source", src: "missing", dst: "e", mode: 0o644, err: "no such file"},
		{name: "missing dir", src: "src", dst: "nodir/f", mode: 0o644, err: "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(dir, c.dst)
			if c.old != "" {
				write(t, dst, c.old, c.oldMode)
			}
			n, err := Copy(filepath.Join(dir, c.src), dst, c.mode)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || n != 3 {
				t.Fatalf("Copy = %d, %v; want 3 bytes", n, err)
			}
			if got, _ := os.ReadFile(dst); string(got) != "new" {
				t.Errorf("dst holds %q", got)
			}
			fi, err := os.Stat(dst)
			if err != nil || fi.Mode() != c.mode {
				t.Errorf("dst mode %v, %v; want %v", fi.Mode(), err, c.mode)
			}
		})
	}
}

// The mode is what the caller asked for whatever the umask: a layer's
// binaries must be executable by all in the guest.
func TestCopyIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "src"), "x", 0o600)
	dst := filepath.Join(dir, "dst")
	if _, err := Copy(filepath.Join(dir, "src"), dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, %v; want 0755", fi.Mode(), err)
	}
}
