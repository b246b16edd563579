package reap

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/filetest"
)

func TestSelectStale(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	live := &holder{PID: 4242, Dir: "/tmp/pidreuse-0102-000000-ffffff"}
	items := []leftover{
		{"pidreuse-0102-090000-aaaaaa", now.Add(-3 * time.Hour), nil},      // a crashed run
		{"pidreuse-0102-115900-bbbbbb", now.Add(-time.Minute), nil},        // a run still going
		{"pidreuse-e2e-12345-1-legacy", now.Add(-2 * time.Hour), nil},      // a crashed e2e VM dir
		{"pidreuse-e2e-bin-42", now.Add(-time.Hour), nil},                  // exactly at the limit
		{"pidreuse-unknown-age", time.Time{}, nil},                         // no file told its age
		{"pidreuse-e2e-report", now.Add(-48 * time.Hour), nil},             // results, not leftovers
		{"ginkgo123456", now.Add(-48 * time.Hour), nil},                    // not ours
		{"pidreuse", now.Add(-48 * time.Hour), nil},                        // not a run's name
		{"go-build99", now.Add(-48 * time.Hour), nil},                      // not ours
		{"xpidreuse-0102-090000-cccccc", now.Add(-48 * time.Hour), nil},    // prefix, not substring
		{"pidreuse-0102-130000-dddddd", now.Add(time.Hour), nil},           // clock skew: in the future
		{"pidreuse-0101-090000-eeeeee-vm0", now.Add(-27 * time.Hour), nil}, // a domain
		{"pidreuse-0102-000000-ffffff", now.Add(-50 * time.Hour), live},    // a live run, idle for days
		{"pidreuse-0102-000000-ffffff-vm0", now.Add(-50 * time.Hour), live},
		{".pidreuse-new-123", now.Add(-2 * time.Hour), nil}, // a creator killed before its rename
	}
	cases := []struct {
		olderThan time.Duration
		runID     string
		want      []string
	}{
		{0, "", []string{
			"pidreuse-0102-090000-aaaaaa", "pidreuse-0102-115900-bbbbbb", "pidreuse-e2e-12345-1-legacy",
			"pidreuse-e2e-bin-42", "pidreuse-unknown-age", "pidreuse-0102-130000-dddddd", "pidreuse-0101-090000-eeeeee-vm0",
			".pidreuse-new-123",
		}},
		{time.Hour, "", []string{
			"pidreuse-0102-090000-aaaaaa", "pidreuse-e2e-12345-1-legacy", "pidreuse-e2e-bin-42", "pidreuse-0101-090000-eeeeee-vm0",
			".pidreuse-new-123",
		}},
		{24 * time.Hour, "", []string{"pidreuse-0101-090000-eeeeee-vm0"}},
		{100 * time.Hour, "", nil},
		// One run: its dir and domains, nothing else, not a sibling whose
		// ID only starts the same; a live run's nothing, even named.
		{0, "0101-090000-eeeeee", []string{"pidreuse-0101-090000-eeeeee-vm0"}},
		{0, "0102-090000-aaa", nil},
		{0, "0102-000000-ffffff", nil},
	}
	for _, c := range cases {
		if got := selectStale(items, Filter{RunID: c.runID}, now, c.olderThan); !slices.Equal(got, c.want) {
			t.Errorf("older than %s, run %q:\n got %q\nwant %q", c.olderThan, c.runID, got, c.want)
		}
	}
}

func TestTreeLastActive(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-5 * time.Hour).Truncate(time.Second)
	disk := filepath.Join(dir, "vm0", "disk.qcow2")
	filetest.Mkdir(t, filepath.Dir(disk))
	filetest.Write(t, disk, old)
	filetest.SetTimes(t, old, filepath.Join(dir, "vm0"), dir)
	if got := treeLastActive(dir); !got.Equal(old) {
		t.Fatalf("idle tree: last active %s, want %s", got, old)
	}
	// A live VM writes its overlay deep inside an old dir: that counts.
	recent := time.Now().Add(-time.Minute).Truncate(time.Second)
	filetest.SetTimes(t, recent, disk)
	if got := treeLastActive(dir); !got.Equal(recent) {
		t.Fatalf("tree with a fresh disk: last active %s, want %s", got, recent)
	}
	if got := treeLastActive(filepath.Join(dir, "missing")); !got.IsZero() {
		t.Fatalf("missing path: %s, want zero (unknown)", got)
	}
}

// A stale dir with something mounted under it is kept (RemoveAll would
// delete what the mount shows), whatever characters its name holds; a
// sibling whose name only starts the same is removed.
func TestTempKeepsMountedDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	tmp := t.TempDir()
	// Space and backslash are octal-escaped in the mount table.
	mounted := filepath.Join(tmp, `pidreuse-a b\c`)
	sibling := mounted + "d"
	run := filepath.Join(mounted, "run")
	filetest.Mkdir(t, run)
	filetest.Mkdir(t, sibling)
	if err := syscall.Mount("tmpfs", run, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(run, syscall.MNT_DETACH) })

	r := &Reaper{Out: io.Discard, Warn: io.Discard, Now: time.Now(), Tmp: tmp}
	dirs, files, _, err := r.Temp()
	if err == nil || !strings.Contains(err.Error(), run+" is mounted under it") {
		t.Errorf("error %v, want one naming the mount %s", err, run)
	}
	if dirs != 1 || files != 0 {
		t.Errorf("removed %d dirs and %d files, want only the sibling", dirs, files)
	}
	if _, err := os.Stat(run); err != nil {
		t.Errorf("the dir with a mount under it was removed: %v", err)
	}
	if _, err := os.Stat(sibling); !os.IsNotExist(err) {
		t.Errorf("the sibling %s was kept: %v", sibling, err)
	}
}
