package mounts

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// mountTmpfs mounts a small tmpfs at dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// Under finds what is mounted at or below a dir, parents first, under the
// names the kernel escapes in the mount table, and nothing that only
// shares the start of the dir's name.
func TestMountsUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "a b\\c\tx") // space, backslash, tab
	nested := filepath.Join(dir, "run")
	sibling := dir + "d"
	mountTmpfs(t, dir)
	mountTmpfs(t, nested)
	mountTmpfs(t, sibling)
	for _, c := range []struct {
		dir  string
		want []string
	}{
		{base, []string{dir, nested, sibling}},
		{dir, []string{dir, nested}},
		{nested, []string{nested}},
		{filepath.Join(base, "a"), nil},
		{filepath.Join(nested, "x"), nil},
	} {
		got, err := Under(c.dir)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Under(%q) = %q, %v; want %q", c.dir, got, err, c.want)
		}
	}
}

// SafeRemoveAll detaches what is mounted under the dir before removing it,
// so the files a mount shows are left alone.
func TestSafeRemoveAllLeavesMountedFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind-mounting needs root")
	}
	host := t.TempDir()
	keep := filepath.Join(host, "keep")
	if err := os.WriteFile(keep, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	proc := filepath.Join(dir, "pr oc")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(host, proc, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(proc, syscall.MNT_DETACH) })
	mountTmpfs(t, filepath.Join(proc, "sub"))

	if err := SafeRemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dir, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file behind the mount was removed: %v", err)
	}
	if m, err := Under(dir); err != nil || len(m) > 0 {
		t.Errorf("mounts left: %q %v", m, err)
	}
}
