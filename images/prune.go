package images

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/internal/mounts"
)

// LastUsedName is touched in a cache entry each time a build finds it, so
// entries that no run uses any more can be told from the ones in use.
const LastUsedName = "last-used"

var entryName = regexp.MustCompile(`^[0-9a-f]{64}$`)

func markUsed(dir string) {
	p := filepath.Join(dir, LastUsedName)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		if f, err := os.Create(p); err == nil {
			f.Close()
		}
	}
}

// LastUsed is when a build last found the entry in dir (or built it).
func LastUsed(dir string) time.Time {
	for _, name := range []string{LastUsedName, ManifestName} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return st.ModTime()
		}
	}
	return time.Time{}
}

// Prune removes the cache entries, and the cached Debian installs, no
// build has used for unusedFor (every one with 0) and returns their paths. Every change to an image input —
// the node agent included — makes a new entry of about a gigabyte, so old
// ones pile up. An entry in use by a running VM was marked when the run
// started, so an age of an hour or more keeps it.
func Prune(cacheRoot string, unusedFor time.Duration, now time.Time, dryRun bool) ([]string, error) {
	entries, err := os.ReadDir(cacheRoot)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !entryName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(cacheRoot, e.Name())
		used := LastUsed(dir)
		if unusedFor > 0 && (used.IsZero() || now.Sub(used) < unusedFor) {
			continue
		}
		if !dryRun {
			if err := mounts.SafeRemoveAll(dir); err != nil {
				return removed, fmt.Errorf("prune images: %w", err)
			}
		}
		removed = append(removed, dir)
	}
	// The Debian installs, one tarball per package set (~750 MB each):
	// their mtime is when a build last unpacked one.
	tars, err := filepath.Glob(filepath.Join(cacheRoot, RootfsCacheDir, "*.tar"))
	if err != nil {
		return removed, fmt.Errorf("prune images: %w", err)
	}
	for _, tar := range tars {
		if !entryName.MatchString(strings.TrimSuffix(filepath.Base(tar), ".tar")) {
			continue
		}
		st, err := os.Stat(tar)
		if err != nil || (unusedFor > 0 && now.Sub(st.ModTime()) < unusedFor) {
			continue
		}
		if !dryRun {
			if err := os.Remove(tar); err != nil {
				return removed, fmt.Errorf("prune images: %w", err)
			}
		}
		removed = append(removed, tar)
	}
	return removed, nil
}
