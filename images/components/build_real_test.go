//go:build componentbuild

package components

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/elfcheck"
)

// TestRealBuild builds every component for real, one after the other
// (about 15 minutes cold on 2 cores; needs the Go module proxy, gcc,
// libc6-dev and libseccomp-dev), checks each binary's version, then checks
// that a second Build is a cache hit. Run with:
//
//	go test -tags componentbuild -run TestRealBuild -timeout 60m -v ./images/components
//
// It uses the shared cache (CacheRoot), so a run warms it for everyone;
// PIDREUSE_CACHE_DIR moves it.
func TestRealBuild(t *testing.T) {
	cacheRoot, err := CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range All() {
		t.Run(c.Name, func(t *testing.T) {
			start := time.Now()
			path, err := Build(ctx, cacheRoot, c.Name, func(s string) { t.Log(s) })
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %s, %.1f MB, took %s", c.Name, c.Version, path, float64(st.Size())/1e6, time.Since(start).Round(time.Second))
			checkVersion(t, c, path)

			start = time.Now()
			again, err := Build(ctx, cacheRoot, c.Name, func(s string) { t.Errorf("cache miss: %s", s) })
			if err != nil || again != path {
				t.Fatalf("second Build = %q, %v; want %q from the cache", again, err, path)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("cache hit took %s", d)
			}
		})
	}
}

func checkVersion(t *testing.T, c Component, path string) {
	t.Helper()
	if c.Name == Pinns {
		// pinns segfaults on an unknown option such as --version.
		if err := elfcheck.Static(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	t.Logf("%s --version:\n%s", c.Name, out)
	if err != nil {
		t.Fatalf("%s --version: %v", c.Name, err)
	}
	if want := strings.TrimPrefix(c.Version, "v"); !strings.Contains(string(out), want) {
		t.Errorf("%s --version does not say %s", c.Name, want)
	}
}
