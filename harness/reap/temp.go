package reap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/mounts"
)

// stagingGrace is how old a dir being created (flock.StagingPrefix) must
// be before clean takes it for a killed creator's: creation takes
// microseconds between its mkdir and its lock.
const stagingGrace = time.Minute

// Temp removes our stale work dirs and files (overlay disks live in the VM
// work dirs) directly under r.Tmp, leaving those a live process holds (a
// run, a VM node, a build) alone.
func (r *Reaper) Temp() (dirs, files, held int, err error) {
	tmp, f, verb := r.Tmp, r.Filter, r.Verb()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("clean: read %s: %w (is TMPDIR set to a dir that exists?)", tmp, err)
	}
	var items []leftover
	isDir := map[string]bool{}
	for _, e := range entries {
		if !f.Ours(e.Name()) {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		// WalkDir does not follow a symlink at its root: a link's age is
		// its own, and RemoveAll removes the link, not its target.
		it := leftover{Name: e.Name(), LastActive: treeLastActive(p)}
		if e.IsDir() {
			it.Holder = dirHolder(p)
		}
		// A dir being created is locked a moment after its mkdir: a young
		// one may be in that moment. Only a killed creator leaves one.
		if strings.HasPrefix(e.Name(), flock.StagingPrefix) && r.Now.Sub(it.LastActive) < stagingGrace {
			continue
		}
		items = append(items, it)
		isDir[e.Name()] = e.IsDir()
	}
	held = r.reportHeld(items, "dir", tmp+string(filepath.Separator))
	stale := selectStale(items, f, r.Now, r.OlderThan)
	var errs []error
	for _, n := range stale {
		p := filepath.Join(tmp, n)
		// RemoveAll would descend into a mount and delete what it shows;
		// a crashed run should never leave one here, but if it did, the
		// files behind it are not ours.
		ms, mErr := mounts.Under(p)
		if mErr != nil {
			errs = append(errs, fmt.Errorf("clean: kept %s: cannot tell whether anything is mounted under it: %w", p, mErr))
			continue
		}
		if len(ms) > 0 {
			m := ms[0]
			errs = append(errs, fmt.Errorf("clean: kept %s: %s is mounted under it: unmount it (umount -R %s) and run clean again", p, m, m))
			continue
		}
		if !r.DryRun {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("clean: remove %s: %w (remove it by hand; is a process still using it?)", p, err))
				continue
			}
		}
		if isDir[n] {
			fmt.Fprintf(r.Out, "%s dir %s\n", verb, p)
			dirs++
		} else {
			fmt.Fprintf(r.Out, "%s file %s\n", verb, p)
			files++
		}
	}
	return dirs, files, held, errors.Join(errs...)
}
