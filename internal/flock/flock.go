// Package flock is the one way pidreuse processes on a machine tell each
// other "this is mine while I live": an flock(2) on a file. The kernel
// drops the lock when its holder dies, SIGKILL included, so a lock never
// outlives a crashed run and nobody has to guess from ages.
//
// A lock file holds the holder's PID, written after the lock is taken, so
// whoever finds it held can say who holds it.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrHeld is wrapped by Try's error when a live process holds the lock.
var ErrHeld = errors.New("held by a live process")

// Lock is one held lock.
type Lock struct {
	f    *os.File
	path string
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release drops the lock. Safe to call more than once and on nil.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Closing the last descriptor drops the lock; unlocking first makes
	// the order plain for a reader.
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := f.Close(); err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	return nil
}

// ReleaseAndRemove drops the lock and removes its file, for locks whose
// files would otherwise pile up (one per port). It removes the file while
// still holding the lock; a process that opened the old file in between
// sees, once it gets the lock, that the path no longer names its file
// (Try and Wait check) and starts over.
func (l *Lock) ReleaseAndRemove() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("remove lock file: %w", err)
	} else {
		err = nil
	}
	return errors.Join(err, l.Release())
}

// Try takes the lock at path (creating the file) without waiting. When a
// live process holds it, the error wraps ErrHeld and names that process.
func Try(path string) (*Lock, error) {
	for range 10 {
		l, stale, err := try(path)
		if stale {
			continue // the holder removed the file as we took it: again
		}
		return l, err
	}
	return nil, fmt.Errorf("lock %s: its file keeps being replaced", path)
}

// try returns stale when the lock was taken on a file that is no longer at
// path (see ReleaseAndRemove).
func try(path string) (_ *Lock, stale bool, _ error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("lock %s: %w%s", path, ErrHeld, holderSuffix(path))
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, true, nil
	}
	// Who holds it, for the messages of those who find it held. A lock
	// whose PID could not be written is still a lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, false, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// pollInterval is how often Wait retries: flock cannot be interrupted by a
// context, and builds that hold these locks take seconds to minutes.
const pollInterval = 500 * time.Millisecond

// Wait takes the lock at path, waiting while another process holds it,
// until ctx is done. waiting, if not nil, is called once, with the
// holder's PID (0 when unknown), when the lock is found held.
func Wait(ctx context.Context, path string, waiting func(pid int)) (*Lock, error) {
	told := false
	for {
		l, err := Try(path)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrHeld) {
			return nil, err
		}
		if !told && waiting != nil {
			told = true
			waiting(HolderPID(path))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock %s%s: %w", path, holderSuffix(path), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// Held reports whether a live process holds the lock at path. A missing
// file is not held. It probes with a shared lock, dropped at once, so it
// never blocks a holder; a Try racing with the probe may see the lock held
// for that instant, which callers that wait (Wait) ride out.
func Held(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open lock %s: %w", path, err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probe lock %s: %w", path, err)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

// HolderPID is the PID the lock's last holder wrote, 0 when unknown. It
// names the holder only while the lock is held.
func HolderPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func holderSuffix(path string) string {
	if pid := HolderPID(path); pid > 0 {
		return fmt.Sprintf(" (pid %d)", pid)
	}
	return ""
}
