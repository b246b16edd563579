//go:build imagebuild

package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/mounts"
)

// TestRealBuild builds the node image for real (minutes on a cold cache;
// needs root, mmdebstrap, e2fsprogs, qemu-utils and the host's apt mirror),
// then builds it again to check the cache hit. Run with:
//
//	go test -tags imagebuild -run TestRealBuild -timeout 30m -v ./images
//
// PIDREUSE_IMAGE_CACHE overrides the cache directory.
func TestRealBuild(t *testing.T) {
	cacheRoot := os.Getenv("PIDREUSE_IMAGE_CACHE")
	if cacheRoot == "" {
		cacheRoot = "/var/tmp/pidreuse-image-test"
	}
	in, err := DefaultInputs()
	if err != nil {
		t.Fatal(err)
	}
	// One laid-in file exercises the Files path. Its content and location
	// are fixed so that a second run of this test hits the cache.
	extraDir := filepath.Join(cacheRoot, "test-inputs")
	if err := os.MkdirAll(extraDir, 0o755); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(extraDir, "pidreuse-image-test")
	if err := os.WriteFile(extra, []byte("#!/bin/sh\necho pidreuse image test\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	in.Files = []File{{Src: extra, Dst: "/usr/local/bin/pidreuse-image-test", Mode: 0o755}}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	progress := func(stage string, d time.Duration) {
		if d == 0 {
			t.Logf("stage %s: started", stage)
		} else {
			t.Logf("stage %s: %v", stage, d.Round(time.Millisecond))
		}
	}
	start := time.Now()
	img, err := Build(ctx, in, cacheRoot, progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Build: %v", time.Since(start).Round(time.Millisecond))
	m := img.Manifest
	t.Logf("image %s: kernel %s, %d packages, base disk %d bytes, host key %s",
		img.Dir, m.KernelVersion, len(m.Packages), m.BaseDisk.Size, m.HostPublicKey)

	for _, want := range []string{"openssh-server", "systemd", "linux-image-amd64"} {
		found := false
		for _, p := range m.Packages {
			if p.Name == want && p.Version != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("package %s not in manifest", want)
		}
	}
	if !strings.HasPrefix(m.HostPublicKey, "ssh-ed25519 ") || !strings.HasPrefix(m.ClientPublicKey, "ssh-ed25519 ") {
		t.Errorf("bad keys in manifest: %q %q", m.HostPublicKey, m.ClientPublicKey)
	}
	if m.KernelVersion == "" || len(m.Files) != 1 {
		t.Errorf("manifest kernel %q files %v", m.KernelVersion, m.Files)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheRoot, ".tmp-*")); len(left) > 0 {
		t.Errorf("temp build directories left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(img.Dir, "work")); err == nil {
		t.Errorf("work directory kept in the entry")
	}

	start = time.Now()
	again, err := Build(ctx, in, cacheRoot, progress)
	if err != nil {
		t.Fatal(err)
	}
	hit := time.Since(start)
	t.Logf("second Build (cache hit): %v", hit.Round(time.Microsecond))
	if hit > 5*time.Second {
		t.Errorf("cache hit took %v, want < 5s", hit)
	}
	if again.Dir != img.Dir || again.Manifest.HostPublicKey != m.HostPublicKey {
		t.Errorf("second Build returned a different image")
	}
}

// TestRealBuildCanceled cancels a real build while mmdebstrap is installing
// packages (with /proc, /sys and /dev mounted in the rootfs) and checks that
// nothing is left: no entry, no temp directory, no mount.
func TestRealBuildCanceled(t *testing.T) {
	cacheRoot := t.TempDir()
	in, err := DefaultInputs()
	if err != nil {
		t.Fatal(err)
	}
	after := 40 * time.Second
	if s := os.Getenv("PIDREUSE_CANCEL_AFTER"); s != "" {
		if after, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), after)
	defer cancel()
	start := time.Now()
	_, err = Build(ctx, in, cacheRoot, func(stage string, d time.Duration) {
		t.Logf("stage %s %v", stage, d.Round(time.Millisecond))
	})
	if err == nil {
		t.Skip("build finished before the cancel: set PIDREUSE_CANCEL_AFTER lower")
	}
	t.Logf("Build returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap the context's: %v", err)
	}
	ents, _ := os.ReadDir(cacheRoot)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".lock-") {
			t.Errorf("canceled build left %s", e.Name())
		}
	}
	if m, err := mounts.Under(cacheRoot); err != nil || len(m) > 0 {
		t.Errorf("mounts left under the cache: %v %v", m, err)
	}
}
