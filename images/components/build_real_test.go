//go:build componentbuild

package components

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
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

// TestRealBuildLegacy builds the bug-era components for real (CRI-O
// v1.17.5 with pinns and v1.16.2 from their checked source trees, kubelet
// v1.17.5 from the module proxy; about 15-20 minutes cold on 2 cores) and
// checks that crio --version names the release and its pinned commit, that
// `crio config` runs (reflect2 v1.0.1 used to crash there under Go >=
// 1.18), and that kubelet --version says v1.17.5. Run with:
//
//	go test -tags componentbuild -run TestRealBuildLegacy -timeout 60m -v ./images/components
//
// The CRI-O sources come from SourceDirs ($PIDREUSE_CRIO_SOURCES or the
// shared dir next to the checkout).
func TestRealBuildLegacy(t *testing.T) {
	cacheRoot, err := CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var all []Component
	for _, s := range versions.CRIOSources() {
		cs, err := Legacy(s.Tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !slices.Contains(all, c) {
				all = append(all, c)
			}
		}
	}
	for _, c := range all {
		t.Run(c.Name+"-"+c.Version, func(t *testing.T) {
			start := time.Now()
			path, err := BuildComponent(ctx, cacheRoot, c, func(s string) { t.Log(s) })
			if err != nil {
				t.Fatal(err)
			}
			if path != Path(cacheRoot, c) {
				t.Errorf("built %s, Path says %s", path, Path(cacheRoot, c))
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %s, %.1f MB, took %s", c.Name, c.Version, path, float64(st.Size())/1e6, time.Since(start).Round(time.Second))
			checkVersion(t, c, path)
			if c.Name == CRIO {
				checkCRIORuns(t, c, path)
			}
		})
	}
}

// checkCRIORuns checks crio --version names the pinned commit and `crio
// config` prints a configuration, which marshals maps through jsoniter.
func checkCRIORuns(t *testing.T, c Component, path string) {
	t.Helper()
	for _, s := range versions.CRIOSources() {
		if s.Tag != c.Version {
			continue
		}
		out, _ := exec.Command(path, "--version").CombinedOutput()
		if !strings.Contains(string(out), s.Commit) {
			t.Errorf("crio --version does not name commit %s:\n%s", s.Commit, out)
		}
	}
	out, err := exec.Command(path, "config").CombinedOutput()
	if err != nil {
		t.Fatalf("crio config: %v\n%s", err, lastLines(string(out), 20))
	}
	if !strings.Contains(string(out), "[crio.runtime]") {
		t.Errorf("crio config printed no [crio.runtime] table:\n%s", lastLines(string(out), 20))
	}
}
