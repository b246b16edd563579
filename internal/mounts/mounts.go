// Package mounts reads the mount table so that removing a dir never
// descends into a mount: os.RemoveAll would delete the files a mount
// shows, which are not the dir's (a killed mmdebstrap's /proc, /sys or
// /dev bind mounts are the host's own).
package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// Under lists the mount points at or below dir, in mountinfo order
// (parents before children). dir must be absolute and clean.
func Under(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	out := make([]string, len(infos))
	for i, m := range infos {
		out[i] = m.Mountpoint
	}
	return out, nil
}

// SafeRemoveAll removes dir after detaching anything mounted below it.
// A killed mmdebstrap can leave /proc, /sys or /dev mounts in the rootfs,
// and a plain RemoveAll would then descend into the host's own files.
func SafeRemoveAll(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounts, err := Under(abs)
	if err != nil {
		return err
	}
	// Deepest first, so that nested mounts come off before their parents.
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmounting %s before removing %s: %w (unmount it by hand, then delete the directory)", mounts[i], abs, err)
		}
	}
	if left, err := Under(abs); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("not removing %s: %s is still mounted (unmount it by hand, then delete the directory)", abs, left[0])
	}
	if err := os.RemoveAll(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
