package flock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DirLockName is the lock file inside a dir a live process owns: a run's
// work dir, a VM's dir, a build's temp dir. `pidreuse clean` leaves a dir
// alone while its lock is held, whatever its age.
const DirLockName = ".pidreuse.lock"

// DirLockPath is the path of dir's lock file.
func DirLockPath(dir string) string { return filepath.Join(dir, DirLockName) }

// StagingPrefix names dirs being created, locked under this hidden name
// until they are renamed into place, so a dir is never seen under its
// real name before it is locked. A creator killed in between leaves one;
// clean removes those whose lock no live process holds.
const StagingPrefix = ".pidreuse-new-"

// CreateDir makes dir, which must not exist, with mode perm, and returns
// its lock, held. The dir is made and locked under a hidden name next to
// it and renamed into place, so nobody can find dir unlocked while its
// creator lives: there is no moment between mkdir and flock to race with.
func CreateDir(dir string, perm os.FileMode) (*Lock, error) {
	parent := filepath.Dir(dir)
	staging, err := os.MkdirTemp(parent, StagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	// MkdirTemp makes it 0700: QEMU (libvirt-qemu) must reach VM dirs.
	if err := os.Chmod(staging, perm); err != nil {
		os.RemoveAll(staging)
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	l, err := Try(DirLockPath(staging))
	if err != nil {
		os.RemoveAll(staging)
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: a plain rename would
		// silently replace an empty dir of that name, so check first; the
		// names are random or carry a run ID, so the check is enough.
		if _, statErr := os.Lstat(dir); statErr == nil {
			err = os.ErrExist
		} else {
			err = os.Rename(staging, dir)
		}
	}
	if err != nil {
		l.Release()
		os.RemoveAll(staging)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", dir, os.ErrExist)
		}
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	// The lock stays on the same file: it moved with its dir.
	l.path = DirLockPath(dir)
	return l, nil
}

// CreateTempDir is os.MkdirTemp with CreateDir's promise: a new dir in
// parent (os.TempDir() when empty) named pattern with a random string for
// its last "*" (appended when there is none), locked before anyone can see
// it. perm is the dir's mode.
func CreateTempDir(parent, pattern string, perm os.FileMode) (string, *Lock, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for range 100 {
		var b [6]byte
		_, _ = rand.Read(b[:])
		dir := filepath.Join(parent, prefix+hex.EncodeToString(b[:])+suffix)
		l, err := CreateDir(dir, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return dir, l, nil
	}
	return "", nil, fmt.Errorf("create a temp dir %s in %s: no free name", pattern, parent)
}

// LockDir locks dir, creating it (and its parents) when missing: for dirs
// whose name is the caller's choice (--work-dir) and may exist already.
// The lock is not held between the mkdir and the flock: use CreateDir
// when the dir is new and named for clean to find.
func LockDir(dir string, perm os.FileMode) (*Lock, error) {
	if err := os.MkdirAll(dir, perm); err != nil {
		return nil, fmt.Errorf("lock dir %s: %w", dir, err)
	}
	l, err := Try(DirLockPath(dir))
	if err != nil {
		return nil, fmt.Errorf("lock dir %s: %w (another run uses it: pick another dir)", dir, err)
	}
	return l, nil
}

// DirHeld reports whether a live process holds dir's lock, and its PID (0
// when unknown). A dir without a lock file is not held: it belongs to no
// live run (runs of older pidreuse versions never locked theirs).
func DirHeld(dir string) (bool, int, error) {
	p := DirLockPath(dir)
	held, err := Held(p)
	if err != nil || !held {
		return false, 0, err
	}
	return true, HolderPID(p), nil
}
