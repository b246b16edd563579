// Package cniplugins builds the CNI loopback plugin at pinned released
// versions from the Go module proxy, and caches each build by version.
package cniplugins

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/images/cachedir"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/node/cniplugin"
)

// Plugins are the binaries built for each version: the loopback plugin is
// the one the bug lives in.
var Plugins = []string{cniplugin.Loopback}

// CacheRoot is where builds are kept, one dir per version (see cachedir).
func CacheRoot() (string, error) { return cachedir.Dir("cni-plugins") }

// ParseVersions reads --plugin-version: "all", or a comma-separated list
// of the pinned tags (versions.CNIPlugins) and "debian", each once. Only
// pinned versions are built (from the module proxy): any other build comes
// in through --cni-bin-dir. A value is also a file name in the cache, so
// nothing else may pass.
func ParseVersions(spec string) ([]string, error) {
	if spec == "all" {
		return append(append([]string{}, versions.CNIPlugins...), versions.DebianCNIPlugins), nil
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range strings.Split(spec, ",") {
		v = strings.TrimSpace(v)
		switch {
		case !known(v):
			return nil, fmt.Errorf("CNI plugin version %q: want one of %s, %s or all (a comma-separated list; any other build: --cni-bin-dir DIR)",
				v, strings.Join(versions.CNIPlugins, ", "), versions.DebianCNIPlugins)
		case seen[v]:
			return nil, fmt.Errorf("CNI plugin version %q is named twice in %q: name each once", v, spec)
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}

// known says whether v is a pinned version or Debian's.
func known(v string) bool {
	return v == versions.DebianCNIPlugins || slices.Contains(versions.CNIPlugins, v)
}

// Dir returns the plugin dir for version, building it first if it is not
// cached. version "debian" is Debian's package, which is never built.
func Dir(ctx context.Context, cacheRoot, version string, progress func(string)) (string, error) {
	if version == versions.DebianCNIPlugins {
		if _, err := os.Stat(filepath.Join(versions.DebianCNIPluginDir, "loopback")); err != nil {
			return "", fmt.Errorf("Debian's CNI plugins are not installed (%v): run `make deps`", err)
		}
		return versions.DebianCNIPluginDir, nil
	}
	if !known(version) {
		_, err := ParseVersions(version)
		return "", err
	}
	dir := filepath.Join(cacheRoot, version)
	if complete(dir) {
		return dir, nil
	}
	if progress == nil {
		progress = func(string) {}
	}
	// One build per version at a time on this machine: a second process
	// (another make e2e, a parallel suite) waits and takes the result.
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	lock, err := flock.Wait(ctx, filepath.Join(cacheRoot, ".lock-"+version), func(pid int) {
		progress(fmt.Sprintf("waiting for another build of CNI plugins %s (pid %d)", version, pid))
	})
	if err != nil {
		return "", fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	defer lock.Release()
	if complete(dir) {
		return dir, nil
	}
	// Holding the version's lock, no live build of it exists: a temp dir
	// of it is a killed build's.
	if stale, _ := filepath.Glob(filepath.Join(cacheRoot, ".build-"+version+"-*")); len(stale) > 0 {
		for _, p := range stale {
			os.RemoveAll(p)
		}
	}
	progress(fmt.Sprintf("building CNI plugins %s from the Go module proxy", version))
	start := time.Now()
	if err := build(ctx, cacheRoot, version); err != nil {
		return "", err
	}
	progress(fmt.Sprintf("built CNI plugins %s in %s", version, time.Since(start).Round(time.Millisecond)))
	return dir, nil
}

func complete(dir string) bool {
	for _, p := range Plugins {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// build installs into a temporary dir and renames it into place, so an
// interrupted build never looks cached.
func build(ctx context.Context, cacheRoot, version string) error {
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	tmp, err := os.MkdirTemp(cacheRoot, ".build-"+version+"-")
	if err != nil {
		return fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	defer os.RemoveAll(tmp)
	for _, p := range Plugins {
		pkg := fmt.Sprintf("%s/plugins/main/%s@%s", versions.CNIPluginsModule, p, version)
		ldflags := fmt.Sprintf("-X %s/pkg/utils/buildversion.BuildVersion=%s", versions.CNIPluginsModule, version)
		cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "-ldflags", ldflags, pkg)
		// Outside any module, with no toolchain switching: only the module
		// proxy is reachable, never a toolchain download.
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+tmp, "GOTOOLCHAIN=local", "GOFLAGS=")
		if err := command.Run(ctx, cmd); err != nil {
			return fmt.Errorf("build CNI plugin %s: %w", version, err)
		}
	}
	dir := filepath.Join(cacheRoot, version)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("build CNI plugins %s: %w", version, err)
	}
	return nil
}

// CheckDir is cniplugin.CheckDir: the node agent runs the same check.
func CheckDir(ctx context.Context, dir string) error { return cniplugin.CheckDir(ctx, dir) }

// All returns the dir of every pinned version (version → dir), building
// the ones not cached yet: the node image carries all of them.
func All(ctx context.Context, progress func(string)) (map[string]string, error) {
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, v := range versions.CNIPlugins {
		if dirs[v], err = Dir(ctx, root, v, progress); err != nil {
			return nil, err
		}
	}
	return dirs, nil
}
