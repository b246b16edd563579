//go:build componentbuild

package components

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/command"
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
// The CRI-O sources come from FindCRIOSource ($PIDREUSE_CRIO_SOURCES or
// the cached clone of upstream): without one the test skips, saying why.
func TestRealBuildLegacy(t *testing.T) {
	cacheRoot, err := CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	skipWithoutSources(t)
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
		t.Fatalf("crio config: %v\n%s", err, command.LastLines(string(out), 20))
	}
	if !strings.Contains(string(out), "[crio.runtime]") {
		t.Errorf("crio config printed no [crio.runtime] table:\n%s", command.LastLines(string(out), 20))
	}
}

// TestRealBuildTree runs BuildCRIOTree, the code of `pidreuse build crio`,
// on a git repository made from the v1.17.5 release tree, as a bisect step
// would: crio and pinns land in the out dir, crio names the repository's
// commit, and the source tree is left as it was. After TestRealBuildLegacy
// the go build cache makes it about a minute.
func TestRealBuildTree(t *testing.T) {
	ctx := context.Background()
	pin := versions.CRIOSources()[1]
	skipWithoutSources(t)
	loc, err := FindCRIOSource(ctx, pin)
	if err != nil {
		t.Fatal(err)
	}
	w := &workspace{src: t.TempDir(), log: io.Discard, progress: func(string) {}}
	tree, err := w.extractCRIOSource(ctx, pin, loc, w.src)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "release tree"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", tree.dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", tree.dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	start := time.Now()
	res, err := BuildCRIOTree(ctx, tree.dir, out, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s and %s in %s", res.CRIO, res.Pinns, time.Since(start).Round(time.Second))
	if res.CRIO != filepath.Join(out, CRIO) || res.Pinns != filepath.Join(out, Pinns) {
		t.Errorf("BuildCRIOTree = %+v, want crio and pinns in %s", res, out)
	}
	if err := elfcheck.Static(res.Pinns); err != nil {
		t.Error(err)
	}
	version, _ := exec.Command(res.CRIO, "--version").CombinedOutput()
	if !strings.Contains(string(version), strings.TrimSpace(string(head))) || !strings.Contains(string(version), "1.17.5") {
		t.Errorf("crio --version does not name 1.17.5 and commit %s:\n%s", head, version)
	}
	if status, _ := exec.Command("git", "-C", tree.dir, "status", "--porcelain").Output(); len(status) != 0 {
		t.Errorf("the build changed the source tree:\n%s", status)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Errorf("out dir holds %d entries, want crio and pinns", len(entries))
	}
}

// skipWithoutSources skips t when a bug-era CRI-O source is not at hand.
func skipWithoutSources(t *testing.T) {
	t.Helper()
	for _, s := range versions.CRIOSources() {
		if _, err := FindCRIOSource(context.Background(), s); IsNoSource(err) {
			t.Skip(err)
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
