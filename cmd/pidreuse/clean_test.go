package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/filetest"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// The CLI against a private TMPDIR and no libvirtd: the real /tmp and any
// VMs on this machine are never touched.
func TestCleanCLI(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := time.Now().Add(-3 * time.Hour)
	// An idle VM work dir of a crashed run, an old dir whose disk is still
	// being written, a fresh dir, and things that are not ours to remove.
	for _, p := range []string{
		"pidreuse-0101-000000-aaaaaa/vm0/disk.qcow2",
		"pidreuse-e2e-1-1-legacy/disk.qcow2",
		"pidreuse-0101-000000-bbbbbb/sb0/console.log",
		"pidreuse-e2e-report/vm/console.log",
		"ginkgo123/x",
		"other/y",
	} {
		filetest.Mkdir(t, filepath.Dir(filepath.Join(tmp, p)))
		filetest.Write(t, filepath.Join(tmp, p), old)
	}
	filetest.Write(t, filepath.Join(tmp, "pidreuse-stray.qcow2"), old)
	filetest.Mkdir(t, filepath.Join(tmp, "pidreuse-0101-000001-cccccc"))
	filepath.WalkDir(tmp, func(p string, _ os.DirEntry, _ error) error { filetest.SetTimes(t, old, p); return nil })
	filetest.SetTimes(t, time.Now(), filepath.Join(tmp, "pidreuse-e2e-1-1-legacy/disk.qcow2"), filepath.Join(tmp, "pidreuse-0101-000001-cccccc"))

	noLibvirt := []string{"--libvirt-socket", filepath.Join(tmp, "no-libvirt-sock")}
	stale := []string{"dir " + filepath.Join(tmp, "pidreuse-0101-000000-aaaaaa"), "dir " + filepath.Join(tmp, "pidreuse-0101-000000-bbbbbb"), "file " + filepath.Join(tmp, "pidreuse-stray.qcow2")}

	r := runCLI(t, nil, append([]string{"clean", "--dry-run", "--older-than", "1h"}, noLibvirt...)...)
	if r.code != exitGood {
		t.Fatalf("clean --dry-run: exit %d; stderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "skipping libvirt domains") {
		t.Errorf("no libvirtd: stderr %q should say domains were skipped", r.stderr)
	}
	checkLines(t, r.stdout, "would remove", stale)
	if !strings.Contains(r.stdout, "would remove 0 domains, 2 dirs, 1 files") {
		t.Errorf("summary missing or wrong in %q", r.stdout)
	}
	for _, s := range stale {
		if _, err := os.Lstat(strings.SplitN(s, " ", 2)[1]); err != nil {
			t.Errorf("--dry-run removed %s: %v", s, err)
		}
	}

	r = runCLI(t, nil, append([]string{"clean", "--older-than", "1h"}, noLibvirt...)...)
	if r.code != exitGood {
		t.Fatalf("clean: exit %d; stderr: %s", r.code, r.stderr)
	}
	checkLines(t, r.stdout, "removed", stale)
	entries, _ := os.ReadDir(tmp)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"ginkgo123", "other", "pidreuse-0101-000001-cccccc", "pidreuse-e2e-1-1-legacy", "pidreuse-e2e-report"}
	if !slices.Equal(left, want) {
		t.Errorf("left in TMPDIR: %q, want %q", left, want)
	}

	// Without an age every run's leftovers go, still not other tools'
	// dirs nor the reports.
	r = runCLI(t, nil, append([]string{"clean"}, noLibvirt...)...)
	if r.code != exitGood {
		t.Fatalf("clean: exit %d; stderr: %s", r.code, r.stderr)
	}
	entries, _ = os.ReadDir(tmp)
	left = nil
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"ginkgo123", "other", "pidreuse-e2e-report"}; !slices.Equal(left, want) {
		t.Errorf("left in TMPDIR after clean without --older-than: %q, want %q", left, want)
	}

	if r := runCLI(t, nil, "clean", "--older-than", "soon"); r.code != exitUsage {
		t.Errorf("--older-than soon: exit %d, want %d", r.code, exitUsage)
	}
}

// checkLines asserts that out has exactly one "VERB what" line per want and
// no other VERB lines.
func checkLines(t *testing.T, out, verb string, want []string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, verb+" ") && !strings.HasPrefix(l, "clean:") {
			got = append(got, strings.TrimPrefix(l, verb+" "))
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%q lines:\n got %q\nwant %q\noutput:\n%s", verb, got, want, out)
	}
}

// A live run's dir is skipped whatever its age and whatever the flags,
// with one line saying who holds it; once its holder lets go (a run that
// was killed: the kernel drops the lock), the next clean removes it.
func TestCleanCLISkipsLiveRuns(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := time.Now().Add(-72 * time.Hour)
	live := filepath.Join(tmp, "pidreuse-0101-000000-aaaaaa")
	lock, err := flock.CreateDir(live, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	filetest.Mkdir(t, filepath.Join(live, "vm0"))
	filetest.Write(t, filepath.Join(live, "vm0", "disk.qcow2"), old)
	dead := filepath.Join(tmp, "pidreuse-0101-000000-bbbbbb")
	filetest.Mkdir(t, dead)
	filetest.Write(t, filepath.Join(dead, flock.DirLockName), old) // its run died
	// Dirs being created: a young one may be between its mkdir and its
	// lock, an old one's creator was killed.
	young, stale := filepath.Join(tmp, flock.StagingPrefix+"young"), filepath.Join(tmp, flock.StagingPrefix+"stale")
	filetest.Mkdir(t, young)
	filetest.Mkdir(t, stale)
	filetest.SetTimes(t, old, stale)
	filetest.SetTimes(t, old, live, filepath.Join(live, "vm0"), filepath.Join(live, flock.DirLockName), dead)

	noLibvirt := []string{"--libvirt-socket", filepath.Join(tmp, "no-libvirt-sock")}
	for _, args := range [][]string{{"clean"}, {"clean", "--older-than", "1h"}, {"clean", "--run", "0101-000000-aaaaaa"}} {
		r := runCLI(t, nil, append(args, noLibvirt...)...)
		if r.code != exitGood {
			t.Fatalf("%v: exit %d; stderr: %s", args, r.code, r.stderr)
		}
		want := fmt.Sprintf("skipped dir %s: in use, pid %d holds the lock of %s", live, os.Getpid(), live)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("%v: no line %q in:\n%s", args, want, r.stdout)
		}
		if !strings.Contains(r.stdout, "skipped 0 domains and 1 dirs in use by live processes") {
			t.Errorf("%v: summary: %s", args, r.stdout)
		}
		if _, err := os.Stat(filepath.Join(live, "vm0", "disk.qcow2")); err != nil {
			t.Fatalf("%v removed a live run's files: %v", args, err)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead run's dir is still there: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a killed creator's staging dir is still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a staging dir in its first minute was removed: %v", err)
	}

	lock.Release()
	r := runCLI(t, nil, append([]string{"clean", "--run", "0101-000000-aaaaaa"}, noLibvirt...)...)
	checkLines(t, r.stdout, "removed", []string{"dir " + live})
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("the released run's dir is still there: %v", err)
	}
	if r := runCLI(t, nil, "clean", "--run", "a/b"); r.code != exitUsage {
		t.Errorf("--run a/b: exit %d, want %d", r.code, exitUsage)
	}
}

// Inputs clean cannot use are refused with exit 2 before anything is
// looked at: a script must never read "removed 0" for a host it did not
// clean, nor reap a whole day's runs for a prefix.
func TestCleanRefusesWhatItCannotUse(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--libvirt-uri", "xen:///system"}, "clean: --libvirt-uri", exitUsage},
		{[]string{"--libvirt-uri", "::::"}, "clean: --libvirt-uri", exitUsage},
		{[]string{"--libvirt-uri", "qemu:///session"}, "clean: --libvirt-uri", exitUsage},
		{[]string{"--run", "1207"}, "give a whole run ID", exitUsage},
		{[]string{"--images-unused-for", "-5h"}, "--images-unused-for -5h0m0s is negative", exitUsage},
		// A host named on purpose that does not answer is an error, not
		// an empty host.
		{[]string{"--libvirt-uri", "qemu:///system", "--libvirt-socket", "/nonexistent/libvirt-sock"}, "clean: libvirt host qemu:///system", exitNoVerdict},
	} {
		r := runCLI(t, nil, append([]string{"clean", "--dry-run"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stdout, "would remove 0") && c.code == exitUsage {
			t.Errorf("clean %v: exit %d, stderr %q, stdout %q; want exit %d and %q", c.args, r.code, r.stderr, r.stdout, c.code, c.want)
		}
	}
}
