package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/pidreuse/pidreuse/harness/reap"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// runDir is the run's work dir, locked for the run's whole life: nodes
// keep their files under it, and `pidreuse clean`, which goes by the
// pidreuse- prefix, leaves it (and the run's domains) alone while the lock
// is held, however old it is. The kernel drops the lock when the run dies,
// SIGKILL included, so a crashed run's dir is clean's to remove.
type runDir struct {
	path string
	// own: pidreuse picked the dir (no --work-dir), so it may remove it.
	own  bool
	lock *flock.Lock
}

// openRunDir creates (or, for --work-dir, locks) the run's work dir. A
// run ID whose dir exists already (two runs started in the same second
// drew the same 3 random bytes) gets a new ID.
func (c *runConfig) openRunDir() (*runDir, error) {
	return openRunDir(c.workDir, &c.runID)
}

// openRunDir is runConfig.openRunDir for any command that runs nodes
// (run, bisect, odds): workDir is --work-dir, runID is replaced when its
// dir is taken.
func openRunDir(workDir string, runID *string) (*runDir, error) {
	if workDir != "" {
		abs, err := filepath.Abs(workDir)
		if err != nil {
			return nil, err
		}
		l, err := flock.LockDir(abs, 0o755)
		if err != nil {
			return nil, fmt.Errorf("--work-dir: %w", err)
		}
		return &runDir{path: abs, lock: l}, nil
	}
	for range 5 {
		dir := filepath.Join(os.TempDir(), reap.Prefix+*runID)
		l, err := flock.CreateDir(dir, 0o755)
		if errors.Is(err, os.ErrExist) {
			*runID = newRunID()
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run work dir: %w (is TMPDIR a dir that exists?)", err)
		}
		return &runDir{path: dir, own: true, lock: l}, nil
	}
	return nil, errors.New("run work dir: five run IDs in a row were taken")
}

// close removes what the run left empty (node dirs remove themselves;
// kept nodes and artifacts stay), the dir itself when pidreuse picked it
// and nothing in it is kept, else the lock file, and drops the lock last.
func (d *runDir) close() {
	if d == nil {
		return
	}
	defer d.lock.Release()
	removeEmptyDirs(d.path)
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return
	}
	onlyLock := len(entries) == 1 && entries[0].Name() == flock.DirLockName
	if (onlyLock || len(entries) == 0) && d.own {
		os.RemoveAll(d.path)
		return
	}
	// What is kept (artifacts, a kept node) outlives the run: its lock
	// file goes, so the dir holds only what was asked for and `clean`
	// sees a finished run's dir.
	os.Remove(flock.DirLockPath(d.path))
}

// removeEmptyDirs removes the empty dirs below root, deepest first (the
// parent of a node's dir, e.g. crio/, once its nodes are gone).
func removeEmptyDirs(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		os.Remove(d) // fails, as it should, on a dir that is not empty
	}
}
