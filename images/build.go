package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/mounts"
)

// Build stage names, as passed to the progress callback.
const (
	StageCached    = "cached" // cache hit; reported once with the lookup time
	StageLock      = "lock"   // waiting for another process building the same image
	StageRootfs    = "rootfs"
	StageConfigure = "configure"
	StageDisk      = "disk"
	StageConvert   = "convert"
	StageManifest  = "manifest"
)

// stage is one step of a build. The list is a field of builder, not a
// package variable, so tests can substitute stages without global state.
type stage struct {
	name string
	run  func(ctx context.Context, s *buildState) error
}

// buildState is what the stages share about one build.
type buildState struct {
	in      Inputs
	d       *digested
	dir     string // the temporary entry directory; renamed into place at the end
	rootfs  string
	rawDisk string
	log     *os.File
	started time.Time

	hostKey, clientKey *keyPair

	// Filled in by the stages for the manifest.
	kernelVersion string
	packages      []Package
	files         []LaidFile
	primeErr      error
}

type builder struct {
	stages []stage
	// preflight checks the host can run the stages; nil skips it.
	preflight func() error
}

// Build returns the image for in, from cacheRoot/<hash> if a complete entry
// is there (well under a second), else by building it (minutes: mmdebstrap
// downloads and installs the packages).
//
// A build happens in cacheRoot/.tmp-<hash>-<random> and is renamed to
// cacheRoot/<hash> only once complete, so a failed, canceled or killed build
// never leaves a half-written entry. Concurrent builds of the same inputs
// (other processes included) serialize on a lock file and the later ones
// reuse the first one's result.
//
// progress, if not nil, is called with elapsed == 0 when a stage starts and
// with the stage's duration when it ends; on a cache hit it is called once
// with StageCached.
//
// Building needs root (mmdebstrap --mode=root, chroot) and the mmdebstrap,
// mke2fs and qemu-img commands.
func Build(ctx context.Context, in Inputs, cacheRoot string, progress func(stage string, elapsed time.Duration)) (*Image, error) {
	b := &builder{stages: defaultStages(), preflight: checkHost}
	return b.build(ctx, in, cacheRoot, progress)
}

func defaultStages() []stage {
	return []stage{
		{StageRootfs, stageRootfs},
		{StageConfigure, stageConfigure},
		{StageDisk, stageDisk},
		{StageConvert, stageConvert},
		{StageManifest, stageManifest},
	}
}

func (b *builder) build(ctx context.Context, in Inputs, cacheRoot string, progress func(string, time.Duration)) (_ *Image, err error) {
	start := time.Now()
	if progress == nil {
		progress = func(string, time.Duration) {}
	}
	if cacheRoot == "" {
		return nil, errors.New("image cache directory not set")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := in.digest()
	if err != nil {
		return nil, fmt.Errorf("hashing image inputs: %w", err)
	}
	if img, err := Load(cacheRoot, d.hash); err == nil {
		markUsed(img.Dir)
		progress(StageCached, time.Since(start))
		return img, nil
	}
	if b.preflight != nil {
		if err := b.preflight(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating image cache directory: %w", err)
	}

	unlock, err := lockEntry(ctx, cacheRoot, d.hash, progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Whoever held the lock may just have built this very image.
	if img, err := Load(cacheRoot, d.hash); err == nil {
		markUsed(img.Dir)
		progress(StageCached, time.Since(start))
		return img, nil
	}
	final := filepath.Join(cacheRoot, d.hash)
	if _, err := os.Lstat(final); err == nil {
		// Entries only ever appear by rename of a finished build, and we
		// hold the lock, so this is damage from outside (a manual edit,
		// a full disk). Rebuilding is the only way forward.
		if err := mounts.SafeRemoveAll(final); err != nil {
			return nil, fmt.Errorf("removing unusable image entry %s: %w", final, err)
		}
	}
	// Holding the lock means no live build of this hash exists: any temp
	// directory for it is left over from a process that was killed.
	if stale, _ := filepath.Glob(filepath.Join(cacheRoot, ".tmp-"+d.hash+"-*")); len(stale) > 0 {
		for _, p := range stale {
			if err := mounts.SafeRemoveAll(p); err != nil {
				return nil, fmt.Errorf("removing leftover build directory: %w", err)
			}
		}
	}

	tmp, err := os.MkdirTemp(cacheRoot, ".tmp-"+d.hash+"-")
	if err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		if rmErr := mounts.SafeRemoveAll(tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up failed build: %w", rmErr))
		}
	}()
	// MkdirTemp makes it 0700; qemu may run as an unprivileged user and
	// must reach the base disk, kernel and initrd.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("build directory: %w", err)
	}

	s := &buildState{in: in, d: d, dir: tmp, started: start}
	s.log, err = os.OpenFile(filepath.Join(tmp, BuildLogName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating build log: %w", err)
	}
	defer s.log.Close()
	if s.hostKey, err = newKeyPair("pidreuse-node-host"); err != nil {
		return nil, err
	}
	if s.clientKey, err = newKeyPair("pidreuse-harness"); err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, ClientKeyName), s.clientKey.private, 0o600); err != nil {
		return nil, fmt.Errorf("saving client key: %w", err)
	}
	if err := writeFileSync(filepath.Join(tmp, ClientKeyName+".pub"), []byte(s.clientKey.authorized), 0o644); err != nil {
		return nil, fmt.Errorf("saving client key: %w", err)
	}

	for _, st := range b.stages {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("image build canceled before stage %s: %w", st.name, err)
		}
		fmt.Fprintf(s.log, "=== stage %s\n", st.name)
		t := time.Now()
		progress(st.name, 0)
		if err := st.run(ctx, s); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w (%w)", ctxErr, err)
			}
			return nil, fmt.Errorf("image build stage %s: %w", st.name, err)
		}
		progress(st.name, time.Since(t))
	}
	if err := s.log.Sync(); err != nil {
		return nil, fmt.Errorf("syncing build log: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("image build canceled before publishing: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("publishing image %s: %w", final, err)
	}
	done = true
	// Make the rename itself durable, so that after a crash the entry is
	// either there in full or not at all.
	if f, err := os.Open(cacheRoot); err == nil {
		_ = f.Sync()
		f.Close()
	}
	return Load(cacheRoot, d.hash)
}

// lockEntry takes the lock of one cache entry, cacheRoot/.lock-<hash>,
// waiting while another process builds it. The lock files stay: deleting
// one would race with another process opening it.
func lockEntry(ctx context.Context, cacheRoot, hash string, progress func(string, time.Duration)) (func(), error) {
	start := time.Now()
	waited := false
	l, err := flock.Wait(ctx, filepath.Join(cacheRoot, ".lock-"+hash), func(int) {
		waited = true
		progress(StageLock, 0)
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for another build of the same image: %w", err)
	}
	if waited {
		progress(StageLock, time.Since(start))
	}
	return func() { l.Release() }, nil
}
