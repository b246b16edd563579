// Package reap removes what crashed runs left behind: libvirt domains (and
// a remote host's volumes), and the work dirs and files (with their
// overlay disks) under $TMPDIR. It takes only what is ours by name, no
// live process holds (internal/flock) and, when asked, has been idle long
// enough; `pidreuse clean` is its command.
package reap

import (
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/internal/flock"
)

// Prefix marks everything a run creates (see newRunID in cmd/pidreuse and
// the e2e suites): `clean` touches nothing else, so other tools' temp dirs
// (ginkgo*, go-build*) are safe however old they are.
const Prefix = "pidreuse-"

// keepNames are ours by name but are results, not leftovers: the e2e
// suites' default report dir holds the artifacts of failed specs that a
// developer still has to read.
var keepNames = map[string]bool{"pidreuse-e2e-report": true}

// Reaper removes what crashed runs left, and says on Out what it removed
// (or, with DryRun, would remove) and what it left because a live process
// holds it.
type Reaper struct {
	Out io.Writer // one line per thing removed, would be removed or left
	// Warn gets the notes that are not results, such as this machine's
	// libvirtd not running.
	Warn   io.Writer
	DryRun bool // say what would be removed, remove nothing
	// Now and OlderThan: only what has been idle for OlderThan at Now
	// goes (see selectStale); OlderThan 0 takes any age.
	Now       time.Time
	OlderThan time.Duration
	Filter    Filter
	Tmp       string // the dir the runs' work dirs are under: $TMPDIR
}

// Verb is how Out's lines begin: "removed", or with DryRun "would remove".
func (r *Reaper) Verb() string {
	if r.DryRun {
		return "would remove"
	}
	return "removed"
}

// leftover is one thing a run may have left behind, with the last time it
// showed any activity. A zero LastActive means the age is unknown.
type leftover struct {
	Name       string
	LastActive time.Time
	// Holder is the live process whose lock covers it (a run, a VM node,
	// a build), nil when none does.
	Holder *holder
}

// holder is a live process holding a lock clean found on its way.
type holder struct {
	PID int    // 0 when the lock file did not say
	Dir string // the locked dir
}

func (h *holder) String() string {
	who := "a live process"
	if h.PID > 0 {
		who = fmt.Sprintf("pid %d", h.PID)
	}
	return fmt.Sprintf("%s holds the lock of %s", who, h.Dir)
}

// Filter says which names clean looks at: ours by prefix, and, with
// --run (RunID), only that run's.
type Filter struct{ RunID string }

// Ours says whether name is one clean may look at.
func (f Filter) Ours(name string) bool {
	if keepNames[name] {
		return false
	}
	if f.RunID != "" {
		run := Prefix + f.RunID
		return name == run || strings.HasPrefix(name, run+"-")
	}
	// A dir being created (internal/flock) is ours too; it has no run
	// ID in its name yet.
	return strings.HasPrefix(name, Prefix) || strings.HasPrefix(name, flock.StagingPrefix)
}

// selectStale returns the names clean may remove: ours (see Filter), not
// held by a live process, and idle for at least olderThan at now. With
// olderThan 0 everything of ours that no live process holds goes; with an
// age limit, a thing whose age is unknown stays, because it may belong to
// a run that is still going.
func selectStale(items []leftover, f Filter, now time.Time, olderThan time.Duration) []string {
	var out []string
	for _, it := range items {
		if !f.Ours(it.Name) || it.Holder != nil {
			continue
		}
		if olderThan > 0 && (it.LastActive.IsZero() || now.Sub(it.LastActive) < olderThan) {
			continue
		}
		out = append(out, it.Name)
	}
	return out
}

// reportHeld prints one line per thing of ours that a live process holds,
// and returns how many there were.
func (r *Reaper) reportHeld(items []leftover, kind, prefix string) int {
	n := 0
	for _, it := range items {
		if r.Filter.Ours(it.Name) && it.Holder != nil {
			fmt.Fprintf(r.Out, "skipped %s %s%s: in use, %s\n", kind, prefix, it.Name, it.Holder)
			n++
		}
	}
	return n
}

// dirHolder is the live holder of dir's lock, or nil.
func dirHolder(dir string) *holder {
	held, pid, err := flock.DirHeld(dir)
	if err != nil {
		// Cannot tell: say it is held. Keeping is the safe mistake.
		return &holder{Dir: dir}
	}
	if !held {
		return nil
	}
	return &holder{PID: pid, Dir: dir}
}

// treeLastActive is the newest mtime in a tree: a dir's own mtime changes
// only when entries come and go, while a live run keeps writing files deep
// inside it. Zero when path does not exist.
func treeLastActive(path string) time.Time {
	var last time.Time
	// Unreadable parts are skipped: the age is then a lower bound, which
	// only errs towards keeping.
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
		return nil
	})
	return last
}
